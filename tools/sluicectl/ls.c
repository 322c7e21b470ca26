/* ls — `sluicectl ls`: the keys under a prefix, in key order, one store
 * page at a time so that memory stays at one page however many objects the
 * store holds. --long adds size and mtime, --limit stops early. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define LS_PAGE 1000 /* keys asked for per list call (S3's page size) */

struct ls_cfg {
    char *store;
    bool long_format;
    int64_t limit;
};

static const struct pipe_conf_opt ls_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct ls_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"long", PIPE_CONF_BOOL, "false", offsetof(struct ls_cfg, long_format),
     "print size (bytes), mtime (RFC 3339, UTC) and key on each line", 0, 0, NULL},
    {"limit", PIPE_CONF_INT, "0", offsetof(struct ls_cfg, limit),
     "print at most N keys (0: no limit)", 0, INT64_MAX, "N"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program ls_program = {
    .name = "sluicectl ls",
    .summary = "Lists the keys of the object store that start with PREFIX (default: every "
               "key), in byte-wise key order, paging through the store's listing. A PREFIX "
               "is a plain string match: \"split/page_view\" also lists "
               "\"split/page_view2/...\"; end it with '/' for one folder.",
    .usage_args = "[PREFIX]",
    .version = SLUICE_VERSION,
    .tables = {ls_opts, NULL},
};

static void ls_print(const struct pipe_store_obj *o, bool long_format, bool have_mtime)
{
    if (!long_format) {
        printf("%s\n", o->key);
        return;
    }
    char when[PIPE_CLOCK_RFC3339_LEN + 1] = "-";
    if (have_mtime)
        pipe_clock_format_rfc3339(o->mtime_ms, when);
    printf("%12" PRIu64 "  %-24s  %s\n", o->size, when, o->key);
}

/* Pages through the listing. The marker for the next call is owned by the
 * previous page, so that page is released only after the call. */
static int ls_run(struct pipe_store *s, const char *prefix, const struct ls_cfg *cfg)
{
    bool have_mtime = pipe_store_has(s, PIPE_STORE_CAP_MTIME);
    uint64_t left = cfg->limit > 0 ? (uint64_t)cfg->limit : UINT64_MAX;
    struct pipe_store_list page = {0};
    int rc = 0;
    for (bool first = true; left > 0 && (first || page.truncated); first = false) {
        struct pipe_store_list next = {0};
        size_t want = left < LS_PAGE ? (size_t)left : LS_PAGE;
        rc = pipe_store_list(s, prefix, page.next_marker, want, &next);
        if (rc < 0) {
            const char *why = pipe_store_last_error(s);
            fprintf(stderr, "sluicectl ls: cannot list %s%s%s: %s\n", prefix[0] ? "\"" : "",
                    prefix[0] ? prefix : "the store", prefix[0] ? "\"" : "",
                    why[0] ? why : pipe_strerror(rc));
            goto out;
        }
        pipe_store_list_cleanup(&page);
        page = next;
        for (size_t i = 0; i < page.count && left > 0; i++, left--)
            ls_print(&page.items[i], cfg->long_format, have_mtime);
        /* An empty but truncated page would loop forever without a marker. */
        if (page.count == 0)
            break;
    }
out:
    pipe_store_list_cleanup(&page);
    return rc;
}

int ctl_ls_main(int argc, char **argv)
{
    struct ls_cfg cfg = {0};
    struct pipe_store *s = NULL;
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&ls_program, &cfg, argc, argv, &first_arg);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (argc - first_arg > 1) {
        fprintf(stderr, "sluicectl ls: one PREFIX at most (got \"%s\" and \"%s\")\n",
                argv[first_arg], argv[first_arg + 1]);
        goto out;
    }
    const char *prefix = first_arg < argc ? argv[first_arg] : "";
    exit_code = CTL_EXIT_FAIL;
    rc = ctl_store_open("ls", cfg.store, &s);
    if (rc < 0)
        goto out;
    rc = ls_run(s, prefix, &cfg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl ls: stdout");
        goto out;
    }
    if (rc == 0)
        exit_code = CTL_EXIT_OK;
out:
    pipe_store_free(s);
    pipe_conf_cleanup(&ls_program, &cfg);
    return exit_code;
}
