/* Unit tests for codec's sluice record (a skippable frame saying what an
 * object's frames hold) and its frame walk, which checks frames without
 * decoding them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "libpipe/buf.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"

#define TEXT "{\"event\":\"a\",\"id\":\"1\"}\n{\"event\":\"b\",\"id\":\"2\"}\n"

/* Appends text to z as one whole frame, as the filter writes it. */
static void add_frame(struct pipe_buf *z, const char *text, size_t n)
{
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, z, &w), 0);
    assert_int_equal(pipe_zwriter_frame(w, text, n, z), 0);
    pipe_zwriter_free(w);
}

/* Appends n bytes of lines that are not all alike (several blocks' worth
 * when n is large). */
static void make_lines(struct pipe_buf *b, size_t n)
{
    for (unsigned i = 0; b->len < n; i++)
        assert_int_equal(
            pipe_buf_printf(b, "{\"event\":\"e\",\"id\":\"%u\",\"v\":%u}\n", i, i * 2654435761u),
            0);
}

static void test_codec_record_round_trips_and_every_decoder_passes_over_it(void **state)
{
    (void)state;
    struct pipe_buf z, back;
    pipe_buf_init(&z, 1 << 20);
    pipe_buf_init(&back, 1 << 20);
    const struct pipe_codec_record rec = {2, strlen(TEXT)};
    assert_int_equal(pipe_codec_record_write(&z, &rec), 0);
    assert_int_equal(z.len, PIPE_CODEC_RECORD_LEN);
    /* A skippable frame (RFC 8878 3.1.2): magic 0x184D2A5?, then its size. */
    assert_int_equal((unsigned char)z.data[0] & 0xF0, 0x50);
    assert_memory_equal(z.data + 1, "\x2A\x4D\x18", 3);
    assert_memory_equal(z.data + 4, "\x18\0\0\0", 4);
    add_frame(&z, TEXT, strlen(TEXT));
    struct pipe_codec_record got = {0, 0};
    assert_int_equal(pipe_codec_record_read(z.data, z.len, &got), 0);
    assert_int_equal(got.events, 2);
    assert_int_equal(got.bytes, strlen(TEXT));
    /* Read as zstd, not plain text, and decoded as the frame alone. */
    assert_true(pipe_codec_is_zstd(z.data, z.len));
    assert_true(pipe_codec_is_zstd(z.data, 4));
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), 0);
    assert_string_equal(back.data, TEXT);
    char plain[256]; /* libzstd's own one-shot decoder */
    assert_int_equal(ZSTD_decompress(plain, sizeof plain, z.data, z.len), strlen(TEXT));
    assert_memory_equal(plain, TEXT, strlen(TEXT));
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(z.data, z.len, 1000, &r), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_memory_equal(line, "{\"event\":\"a\"", 12);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    pipe_line_reader_free(r);
    /* An empty object: a record of nothing. */
    pipe_buf_reset(&z);
    assert_int_equal(pipe_codec_record_write(&z, &(struct pipe_codec_record){0, 0}), 0);
    assert_int_equal(pipe_codec_record_read(z.data, z.len, &got), 0);
    assert_int_equal(got.events, 0);
    assert_int_equal(got.bytes, 0);
    /* The cap holds. */
    struct pipe_buf small;
    pipe_buf_init(&small, PIPE_CODEC_RECORD_LEN - 1);
    assert_int_equal(pipe_codec_record_write(&small, &rec), PIPE_ETOOBIG);
    assert_int_equal(small.len, 0);
    pipe_buf_cleanup(&small);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

/* Reads b[0..n) as a record and checks the outcome; *rec must stay as it
 * was on failure. */
static void assert_read(const void *b, size_t n, int want)
{
    struct pipe_codec_record got = {77, 88};
    assert_int_equal(pipe_codec_record_read(b, n, &got), want);
    if (want < 0) {
        assert_int_equal(got.events, 77);
        assert_int_equal(got.bytes, 88);
    }
}

static void test_codec_record_short_garbled_or_foreign_is_refused(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, 1 << 20);
    assert_int_equal(pipe_codec_record_write(&z, &(struct pipe_codec_record){3, 100}), 0);
    unsigned char b[PIPE_CODEC_RECORD_LEN];
    memcpy(b, z.data, sizeof b);
    assert_read(b, sizeof b, 0);
    /* Cut anywhere: too short to be a record of ours, or a cut one. */
    for (size_t n = 0; n < 4; n++)
        assert_read(b, n, PIPE_ENOTFOUND);
    for (size_t n = 4; n < sizeof b; n++)
        assert_read(b, n, PIPE_ECORRUPT);
    /* Not a record: plain text, a zstd frame, another skippable frame,
     * another producer's payload under the same magic, a later version. */
    assert_read(TEXT, strlen(TEXT), PIPE_ENOTFOUND);
    pipe_buf_reset(&z);
    add_frame(&z, TEXT, strlen(TEXT));
    assert_read(z.data, z.len, PIPE_ENOTFOUND);
    unsigned char g[PIPE_CODEC_RECORD_LEN];
    memcpy(g, b, sizeof g);
    g[0] ^= 0x01; /* 0x184D2A52: still skippable, not ours */
    assert_true(pipe_codec_is_zstd(g, sizeof g));
    assert_read(g, sizeof g, PIPE_ENOTFOUND);
    memcpy(g, b, sizeof g);
    g[8] = 'X'; /* the tag */
    assert_read(g, sizeof g, PIPE_ENOTFOUND);
    memcpy(g, b, sizeof g);
    g[12] = 2; /* version 2 */
    assert_read(g, sizeof g, PIPE_ENOTFOUND);
    /* Ours, garbled: another frame size; counts no content can have. */
    memcpy(g, b, sizeof g);
    g[4] = 25;
    assert_read(g, sizeof g, PIPE_ECORRUPT);
    memcpy(g, b, sizeof g);
    g[16] = 51; /* 51 events in 100 bytes: one takes two at least */
    assert_read(g, sizeof g, PIPE_ECORRUPT);
    g[16] = 50;
    assert_read(g, sizeof g, 0);
    g[16] = 0; /* bytes without an event */
    assert_read(g, sizeof g, PIPE_ECORRUPT);
    memcpy(g, b, sizeof g);
    g[31] = 0x80; /* 2^63 + 100 bytes, 3 events: possible, and read as such */
    struct pipe_codec_record got;
    assert_int_equal(pipe_codec_record_read(g, sizeof g, &got), 0);
    assert_int_equal(got.bytes, (1ull << 63) + 100);
    pipe_buf_cleanup(&z);
}

static void test_codec_frames_size_sums_whole_checked_frames(void **state)
{
    (void)state;
    struct pipe_buf text, z;
    pipe_buf_init(&text, 1 << 22);
    pipe_buf_init(&z, 1 << 22);
    make_lines(&text, 600000); /* several blocks */
    add_frame(&z, text.data, text.len);
    size_t first = z.len;
    add_frame(&z, TEXT, strlen(TEXT));
    add_frame(&z, "", 0);
    uint64_t bytes = 1;
    assert_int_equal(pipe_codec_frames_size(z.data, z.len, &bytes), 0);
    assert_int_equal(bytes, text.len + strlen(TEXT));
    assert_int_equal(pipe_codec_frames_size("", 0, &bytes), 0);
    assert_int_equal(bytes, 0);
    /* Cut anywhere but between frames: the walk finds it. */
    size_t cuts[] = {1, 4, 5, 10, first / 3, first / 2, first - 4, first - 1, first + 3, z.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        bytes = 7;
        assert_int_equal(pipe_codec_frames_size(z.data, cuts[i], &bytes), PIPE_ECORRUPT);
        assert_int_equal(bytes, 7);
    }
    /* Cut between frames, the sum says so. */
    assert_int_equal(pipe_codec_frames_size(z.data, first, &bytes), 0);
    assert_int_equal(bytes, text.len);
    /* A byte flipped inside a block is not seen without decoding; the
     * checksum of whoever decodes it is. */
    z.data[first / 2] ^= 0x10;
    assert_int_equal(pipe_codec_frames_size(z.data, z.len, &bytes), 0);
    struct pipe_buf back;
    pipe_buf_init(&back, 1 << 22);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), PIPE_ECORRUPT);
    pipe_buf_cleanup(&back);
    pipe_buf_cleanup(&text);
    pipe_buf_cleanup(&z);
}

static void test_codec_frames_size_refuses_unsized_unchecked_or_skippable_frames(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, 1 << 20);
    uint64_t bytes = 5;
    /* A skippable frame (the record itself) among the frames. */
    assert_int_equal(pipe_codec_record_write(&z, &(struct pipe_codec_record){2, 48}), 0);
    add_frame(&z, TEXT, strlen(TEXT));
    assert_int_equal(pipe_codec_frames_size(z.data, z.len, &bytes), PIPE_ECORRUPT);
    assert_int_equal(pipe_codec_frames_size(z.data + PIPE_CODEC_RECORD_LEN,
                                            z.len - PIPE_CODEC_RECORD_LEN, &bytes),
                     0);
    assert_int_equal(bytes, strlen(TEXT));
    /* Frames without a checksum, or without their content size. */
    for (int unchecked = 0; unchecked < 2; unchecked++) {
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        assert_non_null(cc);
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, !unchecked)));
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, unchecked)));
        char out[256];
        size_t n = ZSTD_compress2(cc, out, sizeof out, TEXT, strlen(TEXT));
        assert_false(ZSTD_isError(n));
        bytes = 5;
        assert_int_equal(pipe_codec_frames_size(out, n, &bytes), PIPE_ECORRUPT);
        assert_int_equal(bytes, 5);
        ZSTD_freeCCtx(cc);
    }
    /* Plain text is no frame. */
    assert_int_equal(pipe_codec_frames_size(TEXT, strlen(TEXT), &bytes), PIPE_ECORRUPT);
    pipe_buf_cleanup(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_record_round_trips_and_every_decoder_passes_over_it),
        cmocka_unit_test(test_codec_record_short_garbled_or_foreign_is_refused),
        cmocka_unit_test(test_codec_frames_size_sums_whole_checked_frames),
        cmocka_unit_test(test_codec_frames_size_refuses_unsized_unchecked_or_skippable_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
