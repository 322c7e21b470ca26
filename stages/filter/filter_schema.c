/* filter_schema — the filter's schema set: loaded at start (a broken
 * directory stops the start), reloaded on SIGHUP (a broken directory keeps
 * the set in use), and shared with the raw/ worker thread by reference, so
 * a reload frees the old set only once no batch is being checked with it. */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/schema.h"
#include "stages/filter/filter.h"

/* read_key — the key is the file's bytes without a trailing newline. */
static int read_key(struct filter *f, const char *path)
{
    unsigned char buf[256];
    FILE *in = fopen(path, "rb");
    if (in == NULL) {
        fprintf(stderr, "sluice-filter: redact_key_file %s: %s\n", path, strerror(errno));
        return -errno;
    }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n < crypto_generichash_KEYBYTES_MIN || n > sizeof f->redact_key) {
        fprintf(stderr,
                "sluice-filter: redact_key_file %s must hold %d to %zu bytes (e.g. "
                "`openssl rand -hex 16 >%s`)\n",
                path, crypto_generichash_KEYBYTES_MIN, sizeof f->redact_key, path);
        sodium_memzero(buf, sizeof buf);
        return PIPE_ECONFIG;
    }
    memcpy(f->redact_key, buf, n);
    f->redact_key_len = n;
    sodium_memzero(buf, sizeof buf);
    return 0;
}

static double schemas_loaded(void *arg)
{
    return (double)pipe_schema_set_count(((struct filter *)arg)->schemas);
}

static int load(struct filter *f, struct pipe_schema_set **out, char *err, size_t errlen)
{
    const struct pipe_schema_opts o = {.hash_key = f->redact_key,
                                       .hash_key_len = f->redact_key_len};
    return pipe_schema_set_load(f->cfg->schemas, &o, out, err, errlen);
}

int filter_schemas_start(struct filter *f)
{
    const struct filter_cfg *cfg = f->cfg;
    pthread_mutex_init(&f->schemas_lock, NULL);
    pipe_metrics_gauge_fn(pipe_stage_metrics(f->st), "sluice_filter_schemas",
                          "Schemas (event type versions) in use.", NULL, schemas_loaded, f);
    int rc = 0;
    if (cfg->redact_key_file && (rc = read_key(f, cfg->redact_key_file)) < 0)
        return rc;
    if (cfg->schemas == NULL)
        return 0;
    char err[512];
    if ((rc = load(f, &f->schemas, err, sizeof err)) < 0) {
        fprintf(stderr, "sluice-filter: cannot load schemas: %s\n", err);
        pipe_log_error("cannot load schemas", "dir=\"%s\"", cfg->schemas);
        return rc;
    }
    pipe_log_info("schemas loaded", "dir=\"%s\" schemas=%zu", cfg->schemas,
                  pipe_schema_set_count(f->schemas));
    return 0;
}

int filter_schemas_reload(struct filter *f)
{
    struct pipe_schema_set *set = NULL;
    char err[512];
    int rc = load(f, &set, err, sizeof err);
    if (rc < 0) {
        /* The quotes in err would break the logfmt value. */
        for (char *p = err; *p; p++)
            if (*p == '"')
                *p = '\'';
        pipe_log_error("schema reload failed; keeping the schemas in use", "err=\"%s\"", err);
        pipe_counter_inc(f->m.schema_reloads[1]);
        return rc;
    }
    pthread_mutex_lock(&f->schemas_lock);
    struct pipe_schema_set *old = f->schemas;
    f->schemas = set;
    pthread_mutex_unlock(&f->schemas_lock);
    /* The raw/ worker may still hold a reference: the old set goes with
     * the last one. */
    pipe_schema_set_free(old);
    pipe_counter_inc(f->m.schema_reloads[0]);
    pipe_log_info("schemas reloaded", "dir=\"%s\" schemas=%zu", f->cfg->schemas,
                  pipe_schema_set_count(set));
    return 0;
}

static void sighup_cb(uv_signal_t *h, int signum)
{
    (void)signum;
    filter_schemas_reload(h->data);
}

static void free_handle(uv_handle_t *h)
{
    pipe_free(h);
}

void filter_schemas_watch(struct filter *f)
{
    if (f->cfg->schemas == NULL || f->sighup)
        return;
    f->sighup = pipe_calloc(1, sizeof *f->sighup);
    uv_signal_init(pipe_stage_loop(f->st), f->sighup);
    f->sighup->data = f;
    uv_signal_start(f->sighup, sighup_cb, SIGHUP);
    /* Never the reason the loop stays up. */
    uv_unref((uv_handle_t *)f->sighup);
}

struct pipe_schema_set *filter_schemas_get(struct filter *f)
{
    pthread_mutex_lock(&f->schemas_lock);
    struct pipe_schema_set *set = f->schemas ? pipe_schema_set_ref(f->schemas) : NULL;
    pthread_mutex_unlock(&f->schemas_lock);
    return set;
}

void filter_schemas_put(struct pipe_schema_set *set)
{
    pipe_schema_set_free(set);
}

void filter_schemas_stop(struct filter *f)
{
    if (f->sighup) {
        /* The handle is freed by its close callback, after f is gone. */
        uv_close((uv_handle_t *)f->sighup, free_handle);
        f->sighup = NULL;
    }
    pipe_schema_set_free(f->schemas);
    f->schemas = NULL;
    sodium_memzero(f->redact_key, sizeof f->redact_key);
    pthread_mutex_destroy(&f->schemas_lock);
}
