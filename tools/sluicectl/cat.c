/* cat — `sluicectl cat`: writes objects to stdout, zstd ones decompressed
 * chunk by chunk (memory: the stored object, capped by --max-bytes, plus one
 * 128 KiB window of output), or counts their lines. A key that fails is
 * reported and skipped; the exit status says whether any did. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "libpipe/buf.h"
#include "libpipe/codec.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

/* Lines longer than this are still counted by --lines (the reader skips
 * their bytes); the cap only bounds the reader's buffer. */
#define CAT_COUNT_LINE_MAX (64 * 1024)

struct cat_cfg {
    char *store;
    bool lines;
    bool raw;
    uint64_t max_bytes;
};

static const struct pipe_conf_opt cat_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct cat_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"lines", PIPE_CONF_BOOL, "false", offsetof(struct cat_cfg, lines),
     "print \"COUNT KEY\" (lines of the decompressed content) instead of the content", 0, 0, NULL},
    {"raw", PIPE_CONF_BOOL, "false", offsetof(struct cat_cfg, raw),
     "write the stored bytes as they are, without decompressing", 0, 0, NULL},
    {"max_bytes", PIPE_CONF_SIZE, "1GiB", offsetof(struct cat_cfg, max_bytes),
     "largest stored (compressed) object fetched; it is held in memory", 1, INT64_MAX, "BYTES"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program cat_program = {
    .name = "sluicectl cat",
    .summary = "Writes each object's content to stdout, in the order given. zstd objects "
               "(one or more frames) are decompressed as a stream, so the output may be much "
               "larger than memory; other objects are copied as they are. A missing or "
               "unreadable key is reported on stderr and skipped, and the exit status is 1.",
    .usage_args = "KEY...",
    .version = SLUICE_VERSION,
    .tables = {cat_opts, NULL},
};

/* Why a cat of one key failed; with the key, for the message. */
enum cat_fail { CAT_OK, CAT_FAIL_STORE, CAT_FAIL_CORRUPT, CAT_FAIL_WRITE, CAT_FAIL_DECODER };

static bool cat_write(const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, stdout) == n;
}

static int write_chunk(void *failed, const char *chunk, size_t len)
{
    if (cat_write(chunk, len))
        return 0;
    *(bool *)failed = true;
    return PIPE_EIO;
}

/* Streams the decompressed content of a zstd object to stdout, chunk by
 * chunk (concatenated and skippable frames as the codec reads them). */
static enum cat_fail cat_zstd(const struct pipe_buf *obj)
{
    struct pipe_zdecoder *zd = NULL;
    if (pipe_zdecoder_new(&zd) < 0)
        return CAT_FAIL_DECODER;
    bool write_failed = false;
    int rc = pipe_zdecoder_each(zd, obj->data, obj->len, write_chunk, &write_failed);
    pipe_zdecoder_free(zd);
    if (rc == 0)
        return CAT_OK;
    return write_failed          ? CAT_FAIL_WRITE
           : rc == PIPE_ECORRUPT ? CAT_FAIL_CORRUPT
                                 : CAT_FAIL_DECODER;
}

/* Counts lines as pipe_line_reader sees them: a last line without "\n"
 * counts, an empty object has none. */
static enum cat_fail cat_count(const struct pipe_buf *obj, const char *key)
{
    struct pipe_line_reader *r = NULL;
    if (pipe_line_reader_new(obj->data, obj->len, CAT_COUNT_LINE_MAX, &r) < 0)
        return CAT_FAIL_DECODER;
    int rc;
    const char *line;
    size_t len;
    do
        rc = pipe_line_reader_next(r, &line, &len);
    while (rc == 1 || rc == PIPE_ETOOBIG);
    uint64_t n = pipe_line_reader_line_no(r);
    pipe_line_reader_free(r);
    if (rc < 0)
        return CAT_FAIL_CORRUPT;
    return printf("%" PRIu64 " %s\n", n, key) < 0 ? CAT_FAIL_WRITE : CAT_OK;
}

/* Fetches one object into obj (reused across keys) and writes it out. */
static enum cat_fail cat_one(struct pipe_store *s, const struct cat_cfg *cfg, const char *key,
                             struct pipe_buf *obj, int *store_rc)
{
    pipe_buf_reset(obj);
    int rc = pipe_store_get(s, key, obj);
    if (rc < 0) {
        *store_rc = rc;
        return CAT_FAIL_STORE;
    }
    if (cfg->lines)
        return cat_count(obj, key);
    if (!cfg->raw && pipe_codec_is_zstd(obj->data, obj->len))
        return cat_zstd(obj);
    return cat_write(obj->data, obj->len) ? CAT_OK : CAT_FAIL_WRITE;
}

static void cat_report(struct pipe_store *s, const struct cat_cfg *cfg, const char *key,
                       enum cat_fail fail, int store_rc)
{
    char cap[32];
    const char *why = "";
    switch (fail) {
    case CAT_FAIL_STORE:
        if (store_rc == PIPE_ENOTFOUND) {
            why = "no such object";
        } else if (store_rc == PIPE_ETOOBIG) {
            fprintf(stderr, "sluicectl cat: %s: object is larger than --max-bytes %s\n", key,
                    pipe_conf_format_size(cfg->max_bytes, cap, sizeof cap));
            return;
        } else if (store_rc == PIPE_EINVAL && !pipe_store_key_valid(key)) {
            why = "not a valid key";
        } else {
            why = pipe_store_last_error(s);
            if (why[0] == '\0')
                why = pipe_strerror(store_rc);
        }
        break;
    case CAT_FAIL_CORRUPT:
        why = "corrupt or truncated zstd data (output so far may be incomplete)";
        break;
    case CAT_FAIL_DECODER:
        why = "cannot create a zstd decoder";
        break;
    case CAT_FAIL_WRITE:
        perror("sluicectl cat: stdout");
        return;
    case CAT_OK:
        return;
    }
    fprintf(stderr, "sluicectl cat: %s: %s\n", key, why);
}

int ctl_cat_main(int argc, char **argv)
{
    struct cat_cfg cfg = {0};
    struct pipe_store *s = NULL;
    struct pipe_buf obj;
    pipe_buf_init(&obj, 0);
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&cat_program, &cfg, argc, argv, &first_arg);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (first_arg == argc) {
        fprintf(stderr, "sluicectl cat: no KEY given (see sluicectl cat --help)\n");
        goto out;
    }
    exit_code = CTL_EXIT_FAIL;
    rc = ctl_store_open("cat", cfg.store, &s);
    if (rc < 0)
        goto out;
    pipe_buf_init(&obj, cfg.max_bytes > SIZE_MAX ? SIZE_MAX : (size_t)cfg.max_bytes);
    bool failed = false;
    for (int i = first_arg; i < argc; i++) {
        int store_rc = 0;
        enum cat_fail fail = cat_one(s, &cfg, argv[i], &obj, &store_rc);
        cat_report(s, &cfg, argv[i], fail, store_rc);
        failed |= fail != CAT_OK;
        /* Once stdout is gone, the other keys have nowhere to go. */
        if (fail == CAT_FAIL_WRITE)
            break;
    }
    if (fflush(stdout) != 0) {
        perror("sluicectl cat: stdout");
        failed = true;
    }
    if (!failed)
        exit_code = CTL_EXIT_OK;
out:
    pipe_buf_cleanup(&obj);
    pipe_store_free(s);
    pipe_conf_cleanup(&cat_program, &cfg);
    return exit_code;
}
