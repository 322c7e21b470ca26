/* sluicectl — the operator tool. This file only dispatches: each command
 * lives in its own file, named after it, and is one line in the table below
 * (plus its declaration in ctl.h). `load` is the PostgreSQL loader, a stage
 * whose code lives in stages/loader/ and is linked in (stages/loader/loader.h);
 * `gen` and `send` are the test-load tools, in loadgen_gen.c and loadgen_send.c. */
#include <stdio.h>
#include <string.h>

#include "stages/loader/loader.h"
#include "tools/sluicectl/ctl.h"

static const struct ctl_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cmds[] = {
    {"gen", ctl_gen_main, "generate seeded synthetic events as NDJSON on stdout"},
    {"send", ctl_send_main, "POST NDJSON events to the filter, with retries"},
    {"ls", ctl_ls_main, "list object keys under a prefix (--long: size and mtime)"},
    {"cat", ctl_cat_main, "print objects, decompressed (--lines: count lines)"},
    {"status", ctl_status_main, "objects, bytes and ages per key prefix (--json)"},
    {"replay", ctl_replay_main, "re-run a stage over a time range (filter, combine, split)"},
    {"sweep", ctl_sweep_main, "delete what retention allows and the next stage consumed"},
    {"reconcile", ctl_reconcile_main, "check the ledgers and counts of a time range"},
    {"load", loader_main, "load split files into PostgreSQL, each exactly once"},
    {"schema", ctl_schema_main, "check schema compatibility; generate OpenAPI and table DDL"},
    {"redrive", ctl_redrive_main, "re-submit rejected events to the filter after a schema fix"},
    {"warehouse", ctl_warehouse_main, "generate Snowflake and Redshift load SQL from the schemas"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluicectl COMMAND [FLAGS] [ARGS]\n"
               "       sluicectl COMMAND --help\n"
               "       sluicectl --version\n\n"
               "Operator tool for the sluice event pipeline.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\nexit status: 0 ok, 1 failure, 2 usage error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("sluicectl %s\n", SLUICE_VERSION);
        return CTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(name, cmds[i].name) == 0)
            return cmds[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluicectl: unknown command \"%s\" (see sluicectl --help)\n", name);
    return CTL_EXIT_USAGE;
}
