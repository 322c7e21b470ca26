/* Unit tests for the combiner's job (stages/combiner/), run in this process
 * through libcombiner.a: the stage descriptor on the runtime with --once
 * over a file:// store. A job descriptor is written here, and the test
 * checks the committed object, the manifest's ledger arithmetic (events
 * per input, in = out), and that a job whose input changed commits
 * nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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

/* Puts an input and adds it, with its size and etag, to the descriptor. */
static void put_input(struct tu_env *e, struct pipe_manifest_job *job, const char *key,
                      const char *text)
{
    assert_int_equal(pipe_store_put(e->store, key, text, strlen(text)), 0);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(e->store, key, &info), 0);
    pipe_manifest_job_add_input(job, key, info.size, info.etag);
}

/* Writes jobs/combine/JOB.json naming IN_A and IN_B. */
static void write_job(struct tu_env *e)
{
    struct pipe_manifest_job job;
    pipe_manifest_job_init(&job);
    job.job_id = pipe_strdup(JOB);
    job.generation = 1;
    job.created_ms = pipe_clock_from_civil(2026, 3, 1, 5, 30, 0, 0);
    job.output_key = pipe_strdup(OUT_KEY);
    put_input(e, &job, IN_A, A_LINES);
    put_input(e, &job, IN_B, B_LINES);
    struct pipe_buf json, key;
    pipe_buf_init(&json, 1u << 20);
    pipe_buf_init(&key, 1024);
    assert_int_equal(pipe_manifest_job_to_json(&job, &json), 0);
    assert_int_equal(pipe_keys_job(&key, JOB), 0);
    assert_int_equal(pipe_store_put(e->store, key.data, json.data, json.len), 0);
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&key);
    pipe_manifest_job_cleanup(&job);
}

/* sluice-combiner --once on e's store, in this process. */
static int run_combiner(struct tu_env *e)
{
    char store[4096], leases[4096];
    snprintf(store, sizeof store, "--store=%s", e->store_url);
    snprintf(leases, sizeof leases, "--leases=%s", e->lease_url);
    char *argv[] = {"sluice-combiner",   store, leases, "--admin=off", "--once",
                    "--mode=recompress", NULL};
    return pipe_stage_main(&combiner_stage, 5, argv);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_combiner_job_merges_inputs_and_balances_its_ledger),
        cmocka_unit_test(test_combiner_job_with_a_changed_input_commits_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
