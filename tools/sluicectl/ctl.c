/* ctl — the helpers every sluicectl command shares (declared in ctl.h):
 * exit codes from the configuration loader, opening the store, a fraction
 * flag and the progress line. Kept apart from main.c's dispatch so that a
 * command can be built alone (its fuzz target links it with this file). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "libpipe/err.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

int ctl_exit_from_conf(int rc)
{
    return rc == PIPE_EHELP ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

int ctl_parse_rate(const char *cmd, const char *flag, const char *s, double *out)
{
    if (s == NULL)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 1) {
        fprintf(stderr, "sluicectl %s: --%s: \"%s\" is not a fraction between 0 and 1\n", cmd, flag,
                s);
        return PIPE_ECONFIG;
    }
    *out = v;
    return 0;
}

int ctl_store_open(const char *cmd, const char *url, struct pipe_store **out)
{
    int rc = pipe_store_open(url, out);
    if (rc < 0) {
        const char *why = pipe_store_last_error(NULL);
        fprintf(stderr, "sluicectl %s: cannot open the store: %s\n", cmd,
                why[0] ? why : pipe_strerror(rc));
    }
    return rc;
}

void ctl_progress_clear(bool *shown)
{
    if (*shown)
        fprintf(stderr, "\r\033[K");
    *shown = false;
}
