/* libFuzzer target: `sluicectl redrive`, which reads rejected/ objects
 * (stored bytes holding clients' raw text) and writes their selected
 * records back to raw/redrive/. Each input is one rejected/ object of a
 * file:// store on tmpfs (bit 0 of the first byte: zstd-compressed, as the
 * filter writes it, or plain), redriven for every reason through
 * ctl_redrive_main, twice. Invariants: no crash, no leak; both runs exit 0
 * (the object is readable); every line of every raw/ object written is the
 * "raw" text of a line of the input whose "reason" is a string, newlines
 * folded to spaces, and no text comes out more often than it went in; the
 * filter's body reader sees as many records in a raw/ object as it has
 * lines; every raw/ object has its state/redrive/ marker; the second run writes nothing
 * (same objects, no "wrote" line). */
#include <fcntl.h>
#include <jansson.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "libpipe/buf.h"
#include "libpipe/codec.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"
#include "tools/sluicectl/ctl.h"

#define HOUR_MS 1704067200000LL /* 2024-01-01T00:00:00Z, the object's hour */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char root[80], url[96], out_path[96];

/* Weak: the seed replay of `make test` (tests/fuzz/seeds_main.c) runs
 * without sanitizers, and then without their runtime. */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static void remove_dir(void)
{
    tu_rmrf(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    tu_unsetenv_prefix("SLUICE_"); /* no setting changes the run */
    /* tmpfs when there is one: the store fsyncs every object it writes */
    snprintf(dir, sizeof dir, "%s/fuzz-redrive-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(remove_dir);
    snprintf(root, sizeof root, "%s/store", dir);
    snprintf(url, sizeof url, "file://%s", root);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    /* stderr goes to /dev/null during a run: sanitizer reports must not */
    if (__sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)dup(STDERR_FILENO));
    return 0;
}

/* One text the input selects, and how often. */
struct want {
    char *text;
    size_t len;
    size_t count;
};

static int want_cmp(const void *a, const void *b)
{
    const struct want *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The raw texts of the plain object's lines whose reason is a string, with
 * newlines folded as redrive writes them; sorted, *n entries. */
static struct want *wanted(const char *text, size_t len, size_t *n)
{
    struct want *w = NULL;
    size_t k = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, ll = end - at;
        if (ll > 0 && text[at + ll - 1] == '\r' && nl)
            ll--;
        json_t *o = json_loadb(text + at, ll, 0, NULL);
        const json_t *raw = json_object_get(o, "raw");
        if (json_is_string(json_object_get(o, "reason")) && json_is_string(raw)) {
            w = pipe_realloc(w, (k + 1) * sizeof *w);
            w[k].len = json_string_length(raw);
            w[k].text = pipe_malloc(w[k].len + 1);
            memcpy(w[k].text, json_string_value(raw), w[k].len + 1);
            for (size_t i = 0; i < w[k].len; i++)
                if (w[k].text[i] == '\n' || w[k].text[i] == '\r')
                    w[k].text[i] = ' ';
            w[k++].count = 1;
        }
        json_decref(o);
        at = end + 1;
    }
    if (k > 0)
        qsort(w, k, sizeof *w, want_cmp);
    size_t u = 0; /* merge equal texts into counts */
    for (size_t i = 0; i < k; i++) {
        if (u > 0 && want_cmp(&w[u - 1], &w[i]) == 0) {
            w[u - 1].count++;
            pipe_free(w[i].text);
        } else {
            w[u++] = w[i];
        }
    }
    *n = u;
    return w;
}

/* Runs redrive over the object's hour for every reason, its stdout in
 * out_path and its stderr dropped; returns its exit code. */
static int redrive_once(void)
{
    char a0[] = "redrive", a1[] = "--store", a3[] = "--from", a4[] = "2024-01-01T00", a5[] = "--to",
         a6[] = "2024-01-01T01", a7[] = "--reason", a8[] = "any";
    char *argv[] = {a0, a1, url, a3, a4, a5, a6, a7, a8, NULL};
    fflush(stdout);
    fflush(stderr);
    int out = dup(STDOUT_FILENO), err = dup(STDERR_FILENO);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open("/dev/null", O_WRONLY);
    if (out < 0 || err < 0 || fo < 0 || fe < 0 || dup2(fo, STDOUT_FILENO) < 0 ||
        dup2(fe, STDERR_FILENO) < 0)
        abort();
    close(fo);
    close(fe);
    int code = ctl_redrive_main(9, argv);
    fflush(stdout);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    close(out);
    close(err);
    return code;
}

struct seen {
    struct pipe_store *s;
    struct want *w;
    size_t n;
    struct pipe_buf listing; /* key, size and etag of every object */
    size_t raw_objects;
};

/* One raw/ object: its marker exists, each line is a wanted text. */
static int check_raw(struct seen *x, const struct pipe_store_obj *o)
{
    char channel[80], hash[20], marker[PIPE_STORE_KEY_MAX];
    int used = 0;
    if (sscanf(o->key, "raw/redrive/%79[^/]/%16[0-9a-f].ndjson.zst%n", channel, hash, &used) != 2 ||
        (size_t)used != strlen(o->key))
        abort(); /* a raw/ object redrive does not name */
    snprintf(marker, sizeof marker, "state/redrive/%s/%s.json", channel, hash);
    struct pipe_store_obj st;
    struct pipe_buf z, plain;
    pipe_buf_init(&z, 1 << 24);
    pipe_buf_init(&plain, 1 << 26);
    if (pipe_store_stat(x->s, marker, &st) != 0 || pipe_store_get(x->s, o->key, &z) != 0 ||
        pipe_codec_decompress(z.data, z.len, &plain) != 0 || plain.len == 0 ||
        plain.data[plain.len - 1] != '\n')
        abort(); /* no marker, or not a readable NDJSON object */
    for (size_t at = 0; at < plain.len;) {
        const char *nl = memchr(plain.data + at, '\n', plain.len - at);
        struct want key = {plain.data + at, (size_t)(nl - plain.data) - at, 0};
        struct want *hit = x->n ? bsearch(&key, x->w, x->n, sizeof *x->w, want_cmp) : NULL;
        if (hit == NULL || hit->count == 0)
            abort(); /* a line the input did not select, or more copies than it had */
        hit->count--;
        at = (size_t)(nl - plain.data) + 1;
    }
    /* the filter reads raw/ objects by form (ndjson.h): it must see one
     * record per line, never one event made of several lines or a wrapper */
    struct pipe_body_iter it;
    struct pipe_body_record rec;
    struct pipe_json_result jr;
    size_t lines = 0, records = 0;
    for (size_t i = 0; i < plain.len; i++)
        lines += plain.data[i] == '\n';
    if (pipe_body_iter_init(&it, plain.data, plain.len, PIPE_BODY_AUTO, SIZE_MAX, &jr) != 0)
        abort();
    while (pipe_body_iter_next(&it, &rec))
        records++;
    if (records != lines)
        abort();
    x->raw_objects++;
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
    return 0;
}

static int on_object(void *arg, const struct pipe_store_obj *o)
{
    struct seen *x = arg;
    pipe_buf_printf(&x->listing, "%s %llu %s\n", o->key, (unsigned long long)o->size, o->etag);
    return strncmp(o->key, "raw/", 4) == 0 ? check_raw(x, o) : 0;
}

/* Lists the store into x->listing, checking raw/ objects against w. */
static void survey(struct seen *x, struct want *w, size_t n)
{
    x->w = w;
    x->n = n;
    x->raw_objects = 0;
    pipe_buf_reset(&x->listing);
    if (pipe_store_walk(x->s, "", NULL, 0, on_object, x) != 0)
        abort();
}

/* The object's plain text into plain, stored (compressed if asked). */
static int store_object(struct pipe_store *s, int compress, const uint8_t *in, size_t n,
                        struct pipe_buf *plain)
{
    struct pipe_buf key, obj;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&obj, SIZE_MAX);
    int rc = pipe_buf_append(plain, in, n);
    if (compress) {
        size_t cap = ZSTD_compressBound(n);
        rc = pipe_buf_reserve(&obj, cap);
        size_t zn = rc == 0 ? ZSTD_compress(obj.data, cap, in, n, 1) : 0;
        if (rc < 0 || ZSTD_isError(zn))
            abort();
        obj.len = zn;
    } else if (rc == 0) {
        rc = pipe_buf_append(&obj, in, n);
    }
    if (rc < 0 || pipe_keys_rejected(&key, HOUR_MS + 1234, "g1-fuzz-0") < 0 ||
        pipe_store_put(s, key.data, obj.data ? obj.data : "", obj.len) < 0)
        abort();
    pipe_buf_cleanup(&obj);
    pipe_buf_cleanup(&key);
    return 0;
}

/* Whether the second run's stdout says it wrote something. */
static int second_run_wrote(void)
{
    size_t len = 0;
    char *text = tu_read_file(out_path, &len);
    int wrote = text && (strncmp(text, "wrote ", 6) == 0 || strstr(text, "\nwrote ") != NULL);
    free(text);
    return wrote;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    int compress = data[0] & 1;
    if (!compress && pipe_codec_is_zstd(in, n))
        return 0; /* a plain object that reads as zstd: the codec's targets cover it */
    struct seen x = {0};
    struct pipe_buf plain, first;
    pipe_buf_init(&x.listing, SIZE_MAX);
    pipe_buf_init(&first, SIZE_MAX);
    pipe_buf_init(&plain, SIZE_MAX);
    tu_rmrf(root);
    if (pipe_store_open(url, &x.s) < 0)
        abort();
    store_object(x.s, compress, in, n, &plain);
    size_t nw = 0;
    struct want *w = wanted(plain.data ? plain.data : "", plain.len, &nw);
    if (redrive_once() != CTL_EXIT_OK)
        abort(); /* a readable object never fails */
    survey(&x, w, nw);
    pipe_buf_append(&first, x.listing.data, x.listing.len);
    if (redrive_once() != CTL_EXIT_OK || second_run_wrote())
        abort();
    for (size_t i = 0; i < nw; i++) /* all back: the first run's lines again */
        w[i].count = SIZE_MAX;
    survey(&x, w, nw);
    if (x.listing.len != first.len || memcmp(x.listing.data, first.data, first.len) != 0)
        abort(); /* the second run changed the store */
    for (size_t i = 0; i < nw; i++)
        pipe_free(w[i].text);
    pipe_free(w);
    pipe_store_free(x.s);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&first);
    pipe_buf_cleanup(&x.listing);
    return 0;
}
