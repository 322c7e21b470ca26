/* Unit tests for the combiner's job (stages/combiner/), run in this process
 * through libcombiner.a: the stage descriptor on the runtime with --once
 * over a file:// store. A job descriptor is written here, and the test
 * checks the committed object, the manifest's ledger arithmetic (events
 * per input, in = out), that inputs copied as zstd frames and inputs
 * recompressed give the same content, counts and checksum, and that a job
 * whose input changed or cannot be decoded commits nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <xxhash.h>
#include <zstd.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

extern const struct pipe_stage_desc combiner_stage;

#define JOB     "g1-job-0001"
#define IN_A    "filtered/dt=2026-03-01/hr=05/g1-a-00000001.ndjson.zst"
#define IN_B    "filtered/dt=2026-03-01/hr=05/g1-b-00000001.ndjson.zst"
#define OUT_KEY "combined/dt=2026-03-01/hr=05/" JOB ".ndjson.zst"
#define A_LINES "{\"event\":\"page\",\"id\":\"1\"}\n{\"event\":\"page\",\"id\":\"2\"}\n\n"
#define B_LINES "{\"event\":\"signup\",\"id\":\"3\"}\n"

/* Puts data[0..n) as key and adds it, with its size and etag, to job. */
static void put_bytes(struct tu_env *e, struct pipe_manifest_job *job, const char *key,
                      const void *data, size_t n)
{
    assert_int_equal(pipe_store_put(e->store, key, data, n), 0);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(e->store, key, &info), 0);
    pipe_manifest_job_add_input(job, key, info.size, info.etag);
}

/* Starts the descriptor of JOB, without inputs. */
static void job_begin(struct pipe_manifest_job *job)
{
    pipe_manifest_job_init(job);
    job->job_id = pipe_strdup(JOB);
    job->generation = 1;
    job->created_ms = pipe_clock_from_civil(2026, 3, 1, 5, 30, 0, 0);
    job->output_key = pipe_strdup(OUT_KEY);
}

/* Puts the descriptor as jobs/combine/JOB.json and releases it. */
static void job_put(struct tu_env *e, struct pipe_manifest_job *job)
{
    struct pipe_buf json, key;
    pipe_buf_init(&json, 1u << 20);
    pipe_buf_init(&key, 1024);
    assert_int_equal(pipe_manifest_job_to_json(job, &json), 0);
    assert_int_equal(pipe_keys_job(&key, JOB), 0);
    assert_int_equal(pipe_store_put(e->store, key.data, json.data, json.len), 0);
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&key);
    pipe_manifest_job_cleanup(job);
}

/* Writes jobs/combine/JOB.json naming IN_A and IN_B. */
static void write_job(struct tu_env *e)
{
    struct pipe_manifest_job job;
    job_begin(&job);
    put_bytes(e, &job, IN_A, A_LINES, strlen(A_LINES));
    put_bytes(e, &job, IN_B, B_LINES, strlen(B_LINES));
    job_put(e, &job);
}

/* sluice-combiner --once --mode=mode [extra] on e's store, in this process. */
static int run_combiner_with(struct tu_env *e, const char *mode, const char *extra)
{
    char store[4096], leases[4096], mode_arg[64];
    snprintf(store, sizeof store, "--store=%s", e->store_url);
    snprintf(leases, sizeof leases, "--leases=%s", e->lease_url);
    snprintf(mode_arg, sizeof mode_arg, "--mode=%s", mode);
    char *argv[] = {"sluice-combiner", store,    leases,        "--admin=off",
                    "--once",          mode_arg, (char *)extra, NULL};
    return pipe_stage_main(&combiner_stage, extra ? 7 : 6, argv);
}

static int run_combiner_mode(struct tu_env *e, const char *mode)
{
    return run_combiner_with(e, mode, NULL);
}

static int run_combiner(struct tu_env *e)
{
    return run_combiner_mode(e, "recompress");
}

static bool exists(struct tu_env *e, const char *key)
{
    struct pipe_store_obj info;
    return pipe_store_stat(e->store, key, &info) == 0;
}

static void test_combiner_job_merges_inputs_and_balances_its_ledger(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("comb-job");
    assert_non_null(e);
    write_job(e);
    assert_int_equal(run_combiner(e), 0);
    /* The output is both inputs' bytes, in descriptor order (a blank line
     * is kept, but is not an event). */
    struct pipe_buf z, plain;
    pipe_buf_init(&z, 1u << 20);
    pipe_buf_init(&plain, 1u << 20);
    assert_int_equal(pipe_store_get(e->store, OUT_KEY, &z), 0);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &plain), 0);
    assert_int_equal(plain.len, strlen(A_LINES B_LINES));
    assert_memory_equal(plain.data, A_LINES B_LINES, plain.len);
    /* The manifest: events per input, and a ledger with in = out. */
    struct pipe_buf mkey, mjson;
    pipe_buf_init(&mkey, 1024);
    pipe_buf_init(&mjson, 1u << 20);
    assert_int_equal(pipe_keys_manifest(&mkey, "combined", JOB), 0);
    assert_int_equal(pipe_store_get(e->store, mkey.data, &mjson), 0);
    struct pipe_manifest_combined m;
    assert_int_equal(pipe_manifest_combined_from_json(mjson.data, mjson.len, &m), 0);
    assert_int_equal(m.n_inputs, 2);
    assert_int_equal(m.inputs[0].events, 2);
    assert_int_equal(m.inputs[1].events, 1);
    assert_int_equal(m.events, 3);
    assert_int_equal(m.ledger.in, 3);
    assert_int_equal(m.ledger.out, 3);
    assert_true(pipe_ledger_balanced(&m.ledger));
    assert_int_equal(m.bytes, z.len);
    assert_int_equal(m.uncompressed_bytes, plain.len);
    /* Committed: the descriptor is gone, a split job is queued. */
    struct pipe_buf k;
    pipe_buf_init(&k, 1024);
    assert_int_equal(pipe_keys_job(&k, JOB), 0);
    assert_false(exists(e, k.data));
    assert_int_equal(pipe_keys_split_job(&k, JOB), 0);
    assert_true(exists(e, k.data));
    pipe_manifest_combined_cleanup(&m);
    pipe_buf_cleanup(&k);
    pipe_buf_cleanup(&mkey);
    pipe_buf_cleanup(&mjson);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&plain);
    tu_env_free(e);
}

static void test_combiner_job_with_a_changed_input_commits_nothing(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("comb-stale");
    assert_non_null(e);
    write_job(e);
    /* The input is rewritten after the plan: its etag and size differ. */
    assert_int_equal(pipe_store_put(e->store, IN_B, B_LINES B_LINES, strlen(B_LINES B_LINES)), 0);
    run_combiner(e);
    struct pipe_buf k;
    pipe_buf_init(&k, 1024);
    assert_false(exists(e, OUT_KEY));
    assert_int_equal(pipe_keys_manifest(&k, "combined", JOB), 0);
    assert_false(exists(e, k.data));
    assert_int_equal(pipe_keys_split_job(&k, JOB), 0);
    assert_false(exists(e, k.data));
    /* The job is dropped (its inputs go back to the dispatcher, which
     * plans them again), and the inputs are left as they are. */
    assert_int_equal(pipe_keys_job(&k, JOB), 0);
    assert_false(exists(e, k.data));
    assert_true(exists(e, IN_A));
    assert_true(exists(e, IN_B));
    pipe_buf_cleanup(&k);
    tu_env_free(e);
}

/* ---- zstd inputs: copied frames and recompression ----------------------- */

#define IN_C "filtered/dt=2026-03-01/hr=05/g1-c-00000001.ndjson.zst"

/* Text of about n bytes whose lines cross every decoder chunk boundary in
 * different ways: events of varying lengths, blank lines, "\r\n" endings
 * and lone "\r" lines (neither of the last two kinds is an event). */
static char *mixed_lines(size_t n, uint64_t *events)
{
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    *events = 0;
    for (unsigned i = 0; b.len < n; i++) {
        if (i % 17 == 0) {
            pipe_buf_append_str(&b, "\n");
        } else if (i % 23 == 0) {
            pipe_buf_append_str(&b, "\r\n");
        } else {
            pipe_buf_printf(&b, "{\"event\":\"e\",\"id\":\"%u\",\"pad\":\"%.*s\"}%s", i,
                            (int)(i * 7919 % 3000), "", i % 5 == 0 ? "\r\n" : "\n");
            (*events)++;
        }
    }
    return pipe_buf_steal(&b, NULL);
}

/* Appends text to z, zstd-compressed in two frames when split, after the
 * sluice record rec when there is one (as the filter writes objects). */
static void zstd_bytes(const char *text, bool split, const struct pipe_codec_record *rec,
                       struct pipe_buf *z)
{
    struct pipe_zwriter *zw;
    assert_int_equal(pipe_zwriter_new(1, z, &zw), 0);
    if (rec)
        assert_int_equal(pipe_codec_record_write(z, rec), 0);
    size_t n = strlen(text), half = split ? n / 2 : n;
    assert_int_equal(pipe_zwriter_frame(zw, text, half, z), 0);
    if (split)
        assert_int_equal(pipe_zwriter_frame(zw, text + half, n - half, z), 0);
    pipe_zwriter_free(zw);
}

/* Puts text as key, zstd-compressed (in two frames when split), and adds it
 * to job. */
static void put_zstd_input(struct tu_env *e, struct pipe_manifest_job *job, const char *key,
                           const char *text, bool split)
{
    struct pipe_buf z;
    pipe_buf_init(&z, SIZE_MAX);
    zstd_bytes(text, split, NULL, &z);
    put_bytes(e, job, key, z.data, z.len);
    pipe_buf_cleanup(&z);
}

/* Writes jobs/combine/JOB.json over n zstd inputs (the first in two frames). */
static void write_zstd_job(struct tu_env *e, const char *const *keys, const char *const *texts,
                           size_t n)
{
    struct pipe_manifest_job job;
    job_begin(&job);
    for (size_t i = 0; i < n; i++)
        put_zstd_input(e, &job, keys[i], texts[i], i == 0);
    job_put(e, &job);
}

/* Reads the committed object (decoded) and its manifest. */
static void read_result(struct tu_env *e, struct pipe_buf *z, struct pipe_buf *plain,
                        struct pipe_manifest_combined *m)
{
    struct pipe_buf mkey, mjson;
    pipe_buf_init(&mkey, 1024);
    pipe_buf_init(&mjson, 1u << 20);
    assert_int_equal(pipe_store_get(e->store, OUT_KEY, z), 0);
    assert_int_equal(pipe_codec_decompress(z->data, z->len, plain), 0);
    assert_int_equal(pipe_keys_manifest(&mkey, "combined", JOB), 0);
    assert_int_equal(pipe_store_get(e->store, mkey.data, &mjson), 0);
    assert_int_equal(pipe_manifest_combined_from_json(mjson.data, mjson.len, m), 0);
    pipe_buf_cleanup(&mkey);
    pipe_buf_cleanup(&mjson);
}

/* Runs a job over a large mixed input (two frames, decoded in many chunks)
 * and one whose last line has no "\n", in mode; checks content, counts and
 * checksum. The stored bytes go to *z. */
static void combine_mixed(const char *mode, struct pipe_buf *z)
{
    struct tu_env *e = tu_env_new("comb-mixed");
    assert_non_null(e);
    uint64_t events_a;
    char *a = mixed_lines(1u << 20, &events_a);
    const char *c_text = "{\"event\":\"x\",\"id\":\"9\"}";
    const char *keys[] = {IN_A, IN_C};
    const char *texts[] = {a, c_text};
    write_zstd_job(e, keys, texts, 2);
    assert_int_equal(run_combiner_mode(e, mode), 0);
    struct pipe_buf plain, want;
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&want, SIZE_MAX);
    struct pipe_manifest_combined m;
    read_result(e, z, &plain, &m);
    /* The unterminated line gets its "\n"; nothing else changes. */
    pipe_buf_printf(&want, "%s%s\n", a, c_text);
    assert_int_equal(plain.len, want.len);
    assert_memory_equal(plain.data, want.data, want.len);
    assert_int_equal(m.n_inputs, 2);
    assert_int_equal(m.inputs[0].events, events_a);
    assert_int_equal(m.inputs[1].events, 1);
    assert_int_equal(m.events, events_a + 1);
    assert_true(pipe_ledger_balanced(&m.ledger));
    assert_int_equal(m.uncompressed_bytes, want.len);
    assert_int_equal(m.bytes, z->len);
    /* The checksum is of the object as stored. */
    char sum[17];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)XXH3_64bits(z->data, z->len));
    assert_string_equal(m.checksum, sum);
    pipe_manifest_combined_cleanup(&m);
    pipe_buf_cleanup(&want);
    pipe_buf_cleanup(&plain);
    pipe_free(a);
    tu_env_free(e);
}

static void test_combiner_job_concat_copies_frames_and_counts_what_it_copies(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, SIZE_MAX);
    combine_mixed("concat", &z);
    /* More than the one frame that recompressing writes: copied as stored. */
    size_t frames = 0;
    for (size_t off = 0; off < z.len; frames++) {
        size_t n = ZSTD_findFrameCompressedSize(z.data + off, z.len - off);
        assert_false(ZSTD_isError(n));
        off += n;
    }
    assert_true(frames >= 3);
    pipe_buf_cleanup(&z);
}

static void test_combiner_job_recompress_writes_one_frame_of_the_same_content(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, SIZE_MAX);
    combine_mixed("recompress", &z);
    assert_int_equal(ZSTD_findFrameCompressedSize(z.data, z.len), z.len);
    pipe_buf_cleanup(&z);
}

static void test_combiner_job_with_a_truncated_input_commits_nothing(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("comb-cut");
    assert_non_null(e);
    uint64_t events;
    char *a = mixed_lines(300000, &events);
    const char *keys[] = {IN_A, IN_C};
    const char *texts[] = {B_LINES, a};
    write_zstd_job(e, keys, texts, 2);
    /* Cut the second input short, and name the cut version in the job. */
    struct pipe_buf z, key, json;
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&key, 1024);
    pipe_buf_init(&json, 1u << 20);
    assert_int_equal(pipe_store_get(e->store, IN_C, &z), 0);
    assert_int_equal(pipe_store_put(e->store, IN_C, z.data, z.len - 100), 0);
    assert_int_equal(pipe_keys_job(&key, JOB), 0);
    assert_int_equal(pipe_store_get(e->store, key.data, &json), 0);
    struct pipe_manifest_job job;
    struct pipe_store_obj info;
    assert_int_equal(pipe_manifest_job_from_json(json.data, json.len, &job), 0);
    assert_int_equal(pipe_store_stat(e->store, IN_C, &info), 0);
    job.inputs[1].size = info.size;
    pipe_free(job.inputs[1].etag);
    job.inputs[1].etag = pipe_strdup(info.etag);
    job_put(e, &job);
    /* Concat copies it without recompressing, and still refuses it. */
    assert_int_not_equal(run_combiner_mode(e, "concat"), 0);
    assert_false(exists(e, OUT_KEY));
    assert_true(exists(e, key.data)); /* left for an operator */
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&z);
    pipe_free(a);
    tu_env_free(e);
}

/* ---- inputs with a sluice record (as the filter writes them) ------------ */

/* n lines as the filter writes them: each an event ending in "\n". */
static char *event_lines(unsigned n)
{
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    for (unsigned i = 0; i < n; i++)
        pipe_buf_printf(&b, "{\"event\":\"e\",\"id\":\"%u\",\"v\":%u}\n", i, i * 2654435761u);
    return pipe_buf_steal(&b, NULL);
}

/* The record that text, n lines made by event_lines, truly has. */
static struct pipe_codec_record true_record(const char *text, unsigned n)
{
    return (struct pipe_codec_record){n, strlen(text)};
}

/* Whether every frame of z is a zstd frame (none skippable). */
static bool only_zstd_frames(const struct pipe_buf *z)
{
    for (size_t off = 0; off < z->len;) {
        size_t n = ZSTD_findFrameCompressedSize(z->data + off, z->len - off);
        if (ZSTD_isError(n) || memcmp(z->data + off, "\x28\xb5\x2f\xfd", 4) != 0)
            return false;
        off += n;
    }
    return true;
}

static void test_combiner_job_copies_recorded_inputs_without_their_records(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("comb-rec");
    assert_non_null(e);
    char *a = event_lines(3000), *c = event_lines(2000);
    struct pipe_codec_record ra = true_record(a, 3000), rc_ = true_record(c, 2000);
    struct pipe_buf za, zc;
    pipe_buf_init(&za, SIZE_MAX);
    pipe_buf_init(&zc, SIZE_MAX);
    zstd_bytes(a, true, &ra, &za);
    zstd_bytes(c, false, &rc_, &zc);
    /* Recorded inputs among an old-style zstd one and a plain one. */
    struct pipe_manifest_job job;
    job_begin(&job);
    put_bytes(e, &job, IN_A, za.data, za.len);
    put_zstd_input(e, &job, IN_B, B_LINES, false);
    put_bytes(e, &job, IN_C, zc.data, zc.len);
    put_bytes(e, &job, "filtered/dt=2026-03-01/hr=05/g1-d-00000001.ndjson.zst", A_LINES,
              strlen(A_LINES));
    job_put(e, &job);
    assert_int_equal(run_combiner_mode(e, "concat"), 0);
    struct pipe_buf z, plain, want;
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&want, SIZE_MAX);
    struct pipe_manifest_combined m;
    read_result(e, &z, &plain, &m);
    pipe_buf_printf(&want, "%s%s%s%s", a, B_LINES, c, A_LINES);
    assert_int_equal(plain.len, want.len);
    assert_memory_equal(plain.data, want.data, want.len);
    /* The records' frames are copied, the records are not. */
    assert_true(only_zstd_frames(&z));
    assert_memory_equal(z.data, za.data + PIPE_CODEC_RECORD_LEN, za.len - PIPE_CODEC_RECORD_LEN);
    assert_int_equal(m.n_inputs, 4);
    assert_int_equal(m.inputs[0].events, 3000);
    assert_int_equal(m.inputs[1].events, 1);
    assert_int_equal(m.inputs[2].events, 2000);
    assert_int_equal(m.inputs[3].events, 2);
    assert_int_equal(m.events, 5003);
    assert_int_equal(m.uncompressed_bytes, want.len);
    assert_int_equal(m.bytes, z.len);
    char sum[17];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)XXH3_64bits(z.data, z.len));
    assert_string_equal(m.checksum, sum);
    pipe_manifest_combined_cleanup(&m);
    pipe_buf_cleanup(&want);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&za);
    pipe_buf_cleanup(&zc);
    pipe_free(a);
    pipe_free(c);
    tu_env_free(e);
}

static void test_combiner_job_counts_a_recorded_input_without_decoding_it(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("comb-rec-flip");
    assert_non_null(e);
    char *a = event_lines(4000);
    struct pipe_codec_record ra = true_record(a, 4000);
    struct pipe_buf za;
    pipe_buf_init(&za, SIZE_MAX);
    zstd_bytes(a, false, &ra, &za);
    /* A byte flipped inside a block: whole frames still, bad content. */
    za.data[PIPE_CODEC_RECORD_LEN + (za.len - PIPE_CODEC_RECORD_LEN) / 2] ^= 0x10;
    struct pipe_manifest_job job;
    job_begin(&job);
    put_bytes(e, &job, IN_A, za.data, za.len);
    job_put(e, &job);
    /* Copied, it is committed on its record's word... */
    assert_int_equal(run_combiner_mode(e, "concat"), 0);
    struct pipe_buf z, key, mjson;
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&key, 1024);
    pipe_buf_init(&mjson, 1u << 20);
    assert_int_equal(pipe_store_get(e->store, OUT_KEY, &z), 0);
    assert_int_equal(pipe_keys_manifest(&key, "combined", JOB), 0);
    assert_int_equal(pipe_store_get(e->store, key.data, &mjson), 0);
    struct pipe_manifest_combined m;
    assert_int_equal(pipe_manifest_combined_from_json(mjson.data, mjson.len, &m), 0);
    assert_int_equal(m.events, 4000);
    assert_int_equal(m.uncompressed_bytes, strlen(a));
    /* ...and whoever decodes it (the splitter) finds the damage. */
    struct pipe_buf plain;
    pipe_buf_init(&plain, SIZE_MAX);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &plain), PIPE_ECORRUPT);
    /* Recompressing decodes it, and refuses it. */
    tu_env_free(e);
    e = tu_env_new("comb-rec-flip2");
    assert_non_null(e);
    job_begin(&job);
    put_bytes(e, &job, IN_A, za.data, za.len);
    job_put(e, &job);
    assert_int_not_equal(run_combiner_mode(e, "recompress"), 0);
    assert_false(exists(e, OUT_KEY));
    pipe_manifest_combined_cleanup(&m);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&mjson);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&za);
    pipe_free(a);
    tu_env_free(e);
}

/* One way a recorded input can fail to be what its record says. */
struct bad_input {
    const char *what;
    const char *mode;
    const char *extra;         /* a further combiner flag, or NULL */
    const char *then_ok;       /* a flag with which the same job commits, or NULL */
    int64_t d_events, d_bytes; /* added to the true record */
    bool split;
    size_t cut;     /* bytes dropped from the end */
    bool drop_tail; /* the second frame dropped: cut between frames */
    bool plain;     /* the text follows the record as it is, not compressed */
};

/* Runs a job whose only input is made as bad says; the job must commit
 * nothing and stay for an operator. */
static void assert_refused(const struct bad_input *bad)
{
    struct tu_env *e = tu_env_new("comb-rec-bad");
    assert_non_null(e);
    char *a = event_lines(3000);
    struct pipe_codec_record r = true_record(a, 3000);
    r.events = (uint64_t)((int64_t)r.events + bad->d_events);
    r.bytes = (uint64_t)((int64_t)r.bytes + bad->d_bytes);
    struct pipe_buf z, key;
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&key, 1024);
    if (bad->plain) {
        assert_int_equal(pipe_codec_record_write(&z, &r), 0);
        assert_int_equal(pipe_buf_append_str(&z, a), 0);
    } else {
        zstd_bytes(a, bad->split, &r, &z);
    }
    if (bad->drop_tail)
        z.len = PIPE_CODEC_RECORD_LEN +
                ZSTD_findFrameCompressedSize(z.data + PIPE_CODEC_RECORD_LEN, z.len);
    z.len -= bad->cut;
    struct pipe_manifest_job job;
    job_begin(&job);
    put_bytes(e, &job, IN_A, z.data, z.len);
    job_put(e, &job);
    print_message("# %s (%s)\n", bad->what, bad->mode);
    assert_int_not_equal(run_combiner_with(e, bad->mode, bad->extra), 0);
    assert_false(exists(e, OUT_KEY));
    assert_int_equal(pipe_keys_manifest(&key, "combined", JOB), 0);
    assert_false(exists(e, key.data));
    assert_int_equal(pipe_keys_job(&key, JOB), 0);
    assert_true(exists(e, key.data));
    /* The refusal came from the flag under test, not from elsewhere. */
    if (bad->then_ok) {
        assert_int_equal(run_combiner_with(e, bad->mode, bad->then_ok), 0);
        assert_true(exists(e, OUT_KEY));
    }
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&z);
    pipe_free(a);
    tu_env_free(e);
}

static void test_combiner_job_refuses_recorded_inputs_that_are_not_what_they_say(void **state)
{
    (void)state;
    const struct bad_input bad[] = {
        {"record says a byte more", "concat", NULL, NULL, 0, 1, false, 0, false, false},
        {"record says a byte less", "concat", NULL, NULL, 0, -1, true, 0, false, false},
        {"record says a byte more", "recompress", NULL, NULL, 0, 1, false, 0, false, false},
        {"record says an event more", "recompress", NULL, NULL, 1, 0, false, 0, false, false},
        {"record says an event less", "auto", NULL, NULL, -1, 0, false, 0, false, false},
        {"cut inside its frame", "concat", NULL, NULL, 0, 0, false, 100, false, false},
        {"cut inside its frame", "recompress", NULL, NULL, 0, 0, false, 100, false, false},
        {"cut between its frames", "concat", NULL, NULL, 0, 0, true, 0, true, false},
        {"cut between its frames", "recompress", NULL, NULL, 0, 0, true, 0, true, false},
        {"garbled record: more events than bytes allow", "concat", NULL, NULL, 100000, 0, false, 0,
         false, false},
        {"decodes to more than max_input", "concat", "--max-input=64KiB", "--max-input=1MiB", 0, 0,
         false, 0, false, false},
        {"plain text after its record", "concat", NULL, NULL, 0, 0, false, 0, false, true},
        {"plain text after its record", "recompress", NULL, NULL, 0, 0, false, 0, false, true},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(&bad[i]);
}

/* n events whose ids are pseudo-random hex, so that they compress to
 * about half: big inputs make a combined object over a MiB. */
static char *hex_lines(unsigned n, uint64_t seed)
{
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    for (unsigned i = 0; i < n; i++) {
        pipe_buf_printf(&b, "{\"event\":\"h\",\"id\":\"");
        for (int k = 0; k < 4; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            pipe_buf_printf(&b, "%016llx", (unsigned long long)seed);
        }
        pipe_buf_printf(&b, "\"}\n");
    }
    return pipe_buf_steal(&b, NULL);
}

/* Puts the auto-mode job of the test below in a new env: a small input
 * (recompressed), a big recorded one and a big one without a final "\n"
 * (both copied as stored), a small plain one. */
static struct tu_env *parts_job(const struct pipe_buf *zb, const struct pipe_buf *zc)
{
    struct tu_env *e = tu_env_new("comb-parts");
    assert_non_null(e);
    struct pipe_manifest_job job;
    job_begin(&job);
    put_zstd_input(e, &job, IN_B, B_LINES, false);
    put_bytes(e, &job, IN_A, zb->data, zb->len);
    put_bytes(e, &job, IN_C, zc->data, zc->len);
    put_bytes(e, &job, "filtered/dt=2026-03-01/hr=05/g1-d-00000001.ndjson.zst", A_LINES,
              strlen(A_LINES));
    job_put(e, &job);
    return e;
}

/* The object is the inputs' frames and the combiner's own in order: the
 * copied inputs' bytes appear in it as stored (the record left out), the
 * manifest's size and checksum are the object's, and max_output bounds
 * the whole object, what the combiner writes after the copies included:
 * exactly its size passes and gives the same bytes, a byte less refuses. */
static void test_combiner_job_object_is_its_parts_in_order_within_max_output(void **state)
{
    (void)state;
    char *b = hex_lines(24000, 7), *c = hex_lines(18000, 11);
    struct pipe_codec_record rb = true_record(b, 24000);
    c[strlen(c) - 1] = '\0'; /* no final "\n": the combiner adds a frame of one */
    struct pipe_buf zb, zc, z, plain, want, key;
    pipe_buf_init(&zb, SIZE_MAX);
    pipe_buf_init(&zc, SIZE_MAX);
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&want, SIZE_MAX);
    pipe_buf_init(&key, 1024);
    zstd_bytes(b, true, &rb, &zb);
    zstd_bytes(c, false, NULL, &zc);
    struct tu_env *e = parts_job(&zb, &zc);
    assert_int_equal(run_combiner_mode(e, "auto"), 0);
    struct pipe_manifest_combined m;
    read_result(e, &z, &plain, &m);
    pipe_buf_printf(&want, "%s%s%s\n%s", B_LINES, b, c, A_LINES);
    assert_int_equal(plain.len, want.len);
    assert_memory_equal(plain.data, want.data, want.len);
    size_t f0 = ZSTD_findFrameCompressedSize(z.data, z.len); /* B_LINES, recompressed */
    size_t nb = zb.len - PIPE_CODEC_RECORD_LEN;
    assert_true(z.len > (1u << 20) && f0 + nb + zc.len < z.len);
    assert_memory_equal(z.data + f0, zb.data + PIPE_CODEC_RECORD_LEN, nb);
    assert_memory_equal(z.data + f0 + nb, zc.data, zc.len);
    assert_int_equal(m.bytes, z.len);
    char sum[17], opt[64];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)XXH3_64bits(z.data, z.len));
    assert_string_equal(m.checksum, sum);
    pipe_manifest_combined_cleanup(&m);
    tu_env_free(e);

    e = parts_job(&zb, &zc);
    snprintf(opt, sizeof opt, "--max-output=%zu", z.len);
    assert_int_equal(run_combiner_with(e, "auto", opt), 0);
    pipe_buf_reset(&want);
    assert_int_equal(pipe_store_get(e->store, OUT_KEY, &want), 0);
    assert_int_equal(want.len, z.len);
    assert_memory_equal(want.data, z.data, z.len);
    tu_env_free(e);

    e = parts_job(&zb, &zc);
    snprintf(opt, sizeof opt, "--max-output=%zu", z.len - 1);
    assert_int_not_equal(run_combiner_with(e, "auto", opt), 0);
    assert_false(exists(e, OUT_KEY));
    assert_int_equal(pipe_keys_job(&key, JOB), 0);
    assert_true(exists(e, key.data));
    tu_env_free(e);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&want);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&zc);
    pipe_buf_cleanup(&zb);
    pipe_free(b);
    pipe_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_combiner_job_merges_inputs_and_balances_its_ledger),
        cmocka_unit_test(test_combiner_job_with_a_changed_input_commits_nothing),
        cmocka_unit_test(test_combiner_job_concat_copies_frames_and_counts_what_it_copies),
        cmocka_unit_test(test_combiner_job_recompress_writes_one_frame_of_the_same_content),
        cmocka_unit_test(test_combiner_job_with_a_truncated_input_commits_nothing),
        cmocka_unit_test(test_combiner_job_copies_recorded_inputs_without_their_records),
        cmocka_unit_test(test_combiner_job_object_is_its_parts_in_order_within_max_output),
        cmocka_unit_test(test_combiner_job_counts_a_recorded_input_without_decoding_it),
        cmocka_unit_test(test_combiner_job_refuses_recorded_inputs_that_are_not_what_they_say),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
