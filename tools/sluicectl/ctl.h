/* ctl — what the sluicectl command files share: each command is one
 * `int ctl_<name>_main(int argc, char **argv)` listed in main.c's table.
 * argv[0] is the command name; the return value is the process exit code. */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

#include <stdint.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

/* Exit codes common to every command. */
enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,  /* the command ran and failed */
    CTL_EXIT_USAGE = 2, /* bad flags or arguments; nothing was done */
};

/* ctl_exit_from_conf — the exit code for a pipe_conf_load result that is not
 * 0: PIPE_EHELP (help or version printed) -> 0, anything else -> 2. */
int ctl_exit_from_conf(int rc);

/* ctl_parse_rate — parses a fraction "0.05" in [0, 1] into *out (written
 * only on success); prints "sluicectl NAME: --FLAG ..." to stderr and
 * returns PIPE_ECONFIG when s is not one. NULL s leaves *out unchanged. */
int ctl_parse_rate(const char *cmd, const char *flag, const char *s, double *out);

/* The commands. */
int ctl_gen_main(int argc, char **argv);
int ctl_send_main(int argc, char **argv);
int ctl_ls_main(int argc, char **argv);
int ctl_cat_main(int argc, char **argv);
int ctl_status_main(int argc, char **argv);
int ctl_replay_main(int argc, char **argv);
int ctl_sweep_main(int argc, char **argv);
int ctl_reconcile_main(int argc, char **argv);

#endif
