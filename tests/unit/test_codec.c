/* Unit tests for codec: zstd writer, whole-buffer decoders (zstd, gzip),
 * line reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "libpipe/buf.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

#define MB (1024 * 1024)

/* Compresses n bytes into a new frame appended to out. */
static void compress_into(const void *p, size_t n, struct pipe_buf *out)
{
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(PIPE_CODEC_LEVEL_DEFAULT, out, &w), 0);
    assert_int_equal(pipe_zwriter_write(w, p, n), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    assert_int_equal(pipe_zwriter_bytes_in(w), n);
    pipe_zwriter_free(w);
}

static void assert_round_trip(const void *p, size_t n)
{
    struct pipe_buf z, back;
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    compress_into(p, n, &z);
    assert_true(pipe_codec_is_zstd(z.data, z.len));
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), 0);
    assert_int_equal(back.len, n);
    if (n)
        assert_memory_equal(back.data, p, n);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

/* Deterministic pseudo-random bytes (xorshift), NULs included. */
static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* "{"i":0}\n{"i":1}\n..." */
static void make_lines(struct pipe_buf *b, int count)
{
    for (int i = 0; i < count; i++)
        assert_int_equal(pipe_buf_printf(b, "{\"event\":\"e%d\",\"i\":%d}\n", i % 7, i), 0);
}

static void test_codec_round_trips_empty_one_line_and_100k_lines(void **state)
{
    (void)state;
    assert_round_trip("", 0);
    assert_round_trip("{\"a\":1}\n", 8);
    struct pipe_buf lines;
    pipe_buf_init(&lines, 64 * MB);
    make_lines(&lines, 100000);
    assert_round_trip(lines.data, lines.len);
    pipe_buf_cleanup(&lines);
}

static void test_codec_round_trips_binary_content(void **state)
{
    (void)state;
    size_t n = 3 * MB + 17;
    unsigned char *p = pipe_malloc(n);
    fill_random(p, n, 42);
    assert_round_trip(p, n);
    pipe_free(p);
}

static void test_codec_many_tiny_writes_equal_one_big_write(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    make_lines(&lines, 50000);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &z, &w), 0);
    for (size_t i = 0; i < lines.len; i++)
        assert_int_equal(pipe_zwriter_write(w, lines.data + i, 1), 0);
    assert_int_equal(pipe_zwriter_bytes_in(w), lines.len);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    pipe_zwriter_free(w);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), 0);
    assert_int_equal(back.len, lines.len);
    assert_memory_equal(back.data, lines.data, lines.len);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

static void test_codec_writer_records_checksum_and_content_size(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, MB);
    compress_into("hello\n", 6, &z);
    assert_int_equal(ZSTD_getFrameContentSize(z.data, z.len), 6);
    /* Frame header descriptor, byte 4: bit 2 is the checksum flag. */
    assert_true((unsigned char)z.data[4] & 0x04);
    pipe_buf_cleanup(&z);
}

static void test_codec_whole_frame_appends_a_checked_frame_with_content_size(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back, other;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    pipe_buf_init(&other, MB);
    make_lines(&lines, 20000);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &other, &w), 0);
    assert_int_equal(pipe_buf_append(&z, "prefix", 6), 0);
    assert_int_equal(pipe_zwriter_frame(w, lines.data, lines.len, &z), 0);
    assert_int_equal(other.len, 0); /* the writer's own buffer is untouched */
    assert_true(z.len > 6 && z.len < lines.len / 2);
    assert_int_equal(ZSTD_getFrameContentSize(z.data + 6, z.len - 6), lines.len);
    assert_true((unsigned char)z.data[6 + 4] & 0x04); /* checksum flag */
    /* A second whole frame after the first: the two decode as one stream. */
    assert_int_equal(pipe_zwriter_frame(w, "tail\n", 5, &z), 0);
    assert_int_equal(pipe_codec_decompress(z.data + 6, z.len - 6, &back), 0);
    assert_int_equal(back.len, lines.len + 5);
    assert_memory_equal(back.data, lines.data, lines.len);
    assert_memory_equal(back.data + lines.len, "tail\n", 5);
    /* Streaming needs a reset after a whole frame, then works as before. */
    assert_int_equal(pipe_zwriter_write(w, "x", 1), PIPE_EINVAL);
    assert_int_equal(pipe_zwriter_reset(w, &other), 0);
    assert_int_equal(pipe_zwriter_write(w, "hi\n", 3), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    pipe_buf_reset(&back);
    assert_int_equal(pipe_codec_decompress(other.data, other.len, &back), 0);
    assert_string_equal(back.data, "hi\n");
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
    pipe_buf_cleanup(&other);
}

static void test_codec_whole_frame_over_the_cap_leaves_out_unchanged(void **state)
{
    (void)state;
    unsigned char noise[64 * 1024];
    fill_random(noise, sizeof noise, 7);
    struct pipe_buf small, scratch;
    pipe_buf_init(&small, 1000);
    pipe_buf_init(&scratch, MB);
    assert_int_equal(pipe_buf_append(&small, "abc", 3), 0);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &scratch, &w), 0);
    assert_int_equal(pipe_zwriter_frame(w, noise, sizeof noise, &small), PIPE_ETOOBIG);
    assert_int_equal(small.len, 3);
    assert_string_equal(small.data, "abc");
    /* The same writer still makes a frame that fits. */
    assert_int_equal(pipe_zwriter_frame(w, "ok\n", 3, &small), 0);
    assert_true(small.len > 3);
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&small);
    pipe_buf_cleanup(&scratch);
}

static void test_codec_writer_rejects_bad_level_and_write_after_finish(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, MB);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(ZSTD_maxCLevel() + 1, &z, &w), PIPE_EINVAL);
    assert_null(w);
    assert_int_equal(pipe_zwriter_new(0, &z, &w), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    assert_int_equal(pipe_zwriter_write(w, "x", 1), PIPE_EINVAL);
    pipe_zwriter_free(w);
    pipe_zwriter_free(NULL);
    pipe_buf_cleanup(&z);
}

static void test_codec_writer_hits_output_cap_and_reset_recovers(void **state)
{
    (void)state;
    size_t n = MB;
    unsigned char *p = pipe_malloc(n);
    fill_random(p, n, 7); /* incompressible: output ~ input */
    struct pipe_buf small, big, back;
    pipe_buf_init(&small, 64 * 1024);
    pipe_buf_init(&big, 2 * MB);
    pipe_buf_init(&back, 2 * MB);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &small, &w), 0);
    int rc = pipe_zwriter_write(w, p, n);
    if (rc == 0)
        rc = pipe_zwriter_finish(w);
    assert_int_equal(rc, PIPE_ETOOBIG);
    assert_true(small.len <= small.max);
    assert_int_equal(pipe_zwriter_write(w, "x", 1), PIPE_ETOOBIG); /* sticky */
    /* The same context writes a whole new frame into another buffer. */
    assert_int_equal(pipe_zwriter_reset(w, &big), 0);
    assert_int_equal(pipe_zwriter_write(w, p, n), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    assert_int_equal(pipe_zwriter_bytes_in(w), n);
    pipe_zwriter_free(w);
    assert_int_equal(pipe_codec_decompress(big.data, big.len, &back), 0);
    assert_int_equal(back.len, n);
    assert_memory_equal(back.data, p, n);
    pipe_free(p);
    pipe_buf_cleanup(&small);
    pipe_buf_cleanup(&big);
    pipe_buf_cleanup(&back);
}

/* A skippable frame: magic 0x184D2A5?, 4-byte size, payload. */
static void append_skippable(struct pipe_buf *b, const char *payload)
{
    uint32_t n = (uint32_t)strlen(payload);
    unsigned char hdr[8] = {0x53, 0x2A, 0x4D, 0x18, (unsigned char)n, 0, 0, 0};
    assert_int_equal(pipe_buf_append(b, hdr, sizeof hdr), 0);
    assert_int_equal(pipe_buf_append(b, payload, n), 0);
}

static void test_codec_decodes_concatenated_and_skippable_frames(void **state)
{
    (void)state;
    struct pipe_buf z, back;
    pipe_buf_init(&z, MB);
    pipe_buf_init(&back, MB);
    append_skippable(&z, "leading metadata");
    compress_into("{\"a\":1}\n{\"b\"", 12, &z);
    append_skippable(&z, "xyz");
    compress_into(":2}\n", 4, &z);
    compress_into("", 0, &z);
    compress_into("{\"c\":3}", 7, &z);
    assert_true(pipe_codec_is_zstd(z.data, z.len));
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), 0);
    assert_string_equal(back.data, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}");

    /* The line reader joins a line split across frames. */
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(z.data, z.len, 100, &r), 0);
    const char *want[] = {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(line, want[i], len);
    }
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    assert_int_equal(pipe_line_reader_line_no(r), 3);
    pipe_line_reader_free(r);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

static void test_codec_plain_input_passes_through(void **state)
{
    (void)state;
    const char *plain = "[{\"event\":\"x\"}]\n";
    struct pipe_buf back;
    pipe_buf_init(&back, 10);
    assert_false(pipe_codec_is_zstd(plain, strlen(plain)));
    assert_false(pipe_codec_is_zstd("\x28\xb5", 2));
    assert_int_equal(pipe_codec_decompress(plain, strlen(plain), &back), PIPE_ETOOBIG);
    assert_int_equal(back.len, 0);
    back.max = 100;
    assert_int_equal(pipe_codec_decompress(plain, strlen(plain), &back), 0);
    assert_string_equal(back.data, plain);
    pipe_buf_cleanup(&back);
}

static void test_codec_truncated_frame_is_corrupt(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    make_lines(&lines, 20000);
    compress_into(lines.data, lines.len, &z);
    assert_int_equal(pipe_buf_append_str(&back, "keep"), 0);
    size_t cuts[] = {z.len - 1, z.len - 4, z.len - 5, z.len / 2, 7, 5};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(pipe_codec_decompress(z.data, cuts[i], &back), PIPE_ECORRUPT);
        assert_int_equal(back.len, 4); /* restored */
        assert_string_equal(back.data, "keep");
    }
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

static void test_codec_flipped_byte_fails_checksum(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    make_lines(&lines, 20000);
    compress_into(lines.data, lines.len, &z);
    /* The last four bytes are the content checksum: data decodes, check fails. */
    z.data[z.len - 2] ^= 0x01;
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), PIPE_ECORRUPT);
    z.data[z.len - 2] ^= 0x01;
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), 0);
    pipe_buf_reset(&back);
    /* A flip in the middle of the blocks is caught by decoding or checksum. */
    z.data[z.len / 2] ^= 0x40;
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), PIPE_ECORRUPT);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

static void test_codec_zip_bomb_stops_at_cap(void **state)
{
    (void)state;
    /* 200 MB of zeros, compressed without ever holding them. */
    static const char zeros[64 * 1024];
    struct pipe_buf z, back;
    pipe_buf_init(&z, MB);
    pipe_buf_init(&back, MB);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &z, &w), 0);
    for (int i = 0; i < 200 * 16; i++)
        assert_int_equal(pipe_zwriter_write(w, zeros, sizeof zeros), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    pipe_zwriter_free(w);
    assert_true(z.len < 100 * 1024);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), PIPE_ETOOBIG);
    assert_int_equal(back.len, 0);
    assert_true(back.cap <= MB); /* never grew past the cap */

    /* The line reader hits its line cap just as fast. */
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(z.data, z.len, MB, &r), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), PIPE_ETOOBIG);
    pipe_line_reader_free(r);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

/* A hand-made frame: 8-byte declared content size, 1 KiB window (or a
 * single-segment frame whose window is the declared size), one raw block. */
static size_t hostile_frame(unsigned char *f, uint64_t declared, bool single_segment)
{
    size_t n = 0;
    const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    memcpy(f, magic, 4);
    n = 4;
    f[n++] = single_segment ? 0xE0 : 0xC0; /* FCS 8 bytes, no checksum */
    if (!single_segment)
        f[n++] = 0x00; /* window 1 KiB */
    for (int i = 0; i < 8; i++)
        f[n++] = (unsigned char)(declared >> (8 * i));
    f[n++] = 0x29; /* last block, raw, 5 bytes */
    f[n++] = 0x00;
    f[n++] = 0x00;
    memcpy(f + n, "hello", 5);
    return n + 5;
}

static void test_codec_ignores_declared_content_size(void **state)
{
    (void)state;
    unsigned char f[64];
    struct pipe_buf back;
    pipe_buf_init(&back, MB);
    /* Sanity: the hand-made frame is valid when it tells the truth. */
    size_t n = hostile_frame(f, 5, false);
    assert_int_equal(pipe_codec_decompress(f, n, &back), 0);
    assert_string_equal(back.data, "hello");
    pipe_buf_reset(&back);
    n = hostile_frame(f, UINT64_C(1) << 40, false);
    assert_int_equal(pipe_codec_decompress(f, n, &back), PIPE_ECORRUPT);
    n = hostile_frame(f, UINT64_C(1) << 40, true);
    assert_int_equal(pipe_codec_decompress(f, n, &back), PIPE_ECORRUPT);
    assert_int_equal(back.len, 0);
    assert_true(back.cap <= MB);
    pipe_buf_cleanup(&back);
}

/* A whole frame (content size declared) of p[0..n) appended to out. */
static void frame_into(const void *p, size_t n, struct pipe_buf *out)
{
    struct pipe_buf unused;
    struct pipe_zwriter *w = NULL;
    pipe_buf_init(&unused, 0);
    assert_int_equal(pipe_zwriter_new(PIPE_CODEC_LEVEL_DEFAULT, &unused, &w), 0);
    assert_int_equal(pipe_zwriter_frame(w, p, n, out), 0);
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&unused);
}

static void test_zdecoder_decodes_sized_streamed_and_skippable_frames_again_and_again(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_init(&back, 64 * MB);
    make_lines(&lines, 30000);
    size_t half = lines.len / 2;
    frame_into(lines.data, half, &z); /* declares its size */
    assert_int_equal(ZSTD_getFrameContentSize(z.data, z.len), half);
    const unsigned char skip[12] = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'x', 'x', 'x', 'x'};
    assert_int_equal(pipe_buf_append(&z, skip, sizeof skip), 0);
    size_t sized = z.len;
    compress_into(lines.data + half, lines.len - half, &z); /* streamed: no size */
    struct pipe_zdecoder *d = NULL;
    assert_int_equal(pipe_zdecoder_new(&d), 0);
    for (int round = 0; round < 3; round++) {
        pipe_buf_reset(&back);
        assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), 0);
        assert_int_equal(back.len, lines.len);
        assert_memory_equal(back.data, lines.data, lines.len);
    }
    /* The sized frame alone, then the plain text (copied as it is). */
    pipe_buf_reset(&back);
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, sized, &back), 0);
    assert_int_equal(back.len, half);
    assert_int_equal(pipe_zdecoder_decompress(d, "{}\n", 3, &back), 0);
    assert_int_equal(back.len, half + 3);
    pipe_zdecoder_free(d);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

/* A hand-made frame declaring window descriptor wd and its content size
 * len, holding len bytes of 'a' in raw blocks of at most 128 KiB. */
static void window_frame(struct pipe_buf *out, unsigned char wd, size_t len)
{
    unsigned char h[14] = {0x28, 0xB5, 0x2F, 0xFD, 0xC0, wd};
    for (int i = 0; i < 8; i++)
        h[6 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    assert_int_equal(pipe_buf_append(out, h, sizeof h), 0);
    static char a[128 * 1024];
    memset(a, 'a', sizeof a);
    for (size_t left = len; left > 0;) {
        size_t n = left < sizeof a ? left : sizeof a;
        left -= n;
        uint32_t bh = (uint32_t)(left == 0) | (uint32_t)n << 3; /* raw block */
        const unsigned char b[3] = {(unsigned char)bh, (unsigned char)(bh >> 8),
                                    (unsigned char)(bh >> 16)};
        assert_int_equal(pipe_buf_append(out, b, 3), 0);
        assert_int_equal(pipe_buf_append(out, a, n), 0);
    }
}

static void test_zdecoder_bad_sized_frames_fail_and_leave_out_as_it_was(void **state)
{
    (void)state;
    struct pipe_buf lines, z, back;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    make_lines(&lines, 20000);
    frame_into(lines.data, lines.len, &z);
    struct pipe_zdecoder *d = NULL;
    assert_int_equal(pipe_zdecoder_new(&d), 0);
    /* Over the cap: refused before a byte is decoded, the buffer not grown. */
    pipe_buf_init(&back, lines.len - 1);
    assert_int_equal(pipe_buf_append_str(&back, "keep"), 0);
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), PIPE_ETOOBIG);
    assert_string_equal(back.data, "keep");
    pipe_buf_cleanup(&back);
    pipe_buf_init(&back, 64 * MB);
    assert_int_equal(pipe_buf_append_str(&back, "keep"), 0);
    /* Cut short, a flipped checksum byte, a flipped block byte. */
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len - 1, &back), PIPE_ECORRUPT);
    assert_string_equal(back.data, "keep");
    z.data[z.len - 2] ^= 0x01;
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), PIPE_ECORRUPT);
    assert_string_equal(back.data, "keep");
    z.data[z.len - 2] ^= 0x01;
    z.data[z.len / 2] ^= 0x40;
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), PIPE_ECORRUPT);
    assert_int_equal(back.len, 4);
    z.data[z.len / 2] ^= 0x40;
    /* The same decoder goes on after failures. */
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), 0);
    assert_int_equal(back.len, 4 + lines.len);
    /* A frame that tells its (large) size truthfully but asks for a window
     * over the limit is refused, as the streaming decoder refuses it. */
    pipe_buf_reset(&z);
    window_frame(&z, 0x90, 200000); /* window 256 MiB */
    pipe_buf_reset(&back);
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), PIPE_ECORRUPT);
    assert_int_equal(pipe_codec_decompress(z.data, z.len, &back), PIPE_ECORRUPT);
    assert_int_equal(back.len, 0);
    pipe_buf_reset(&z);
    window_frame(&z, 0x88, 200000); /* window 128 MiB: the limit itself */
    assert_int_equal(pipe_zdecoder_decompress(d, z.data, z.len, &back), 0);
    assert_int_equal(back.len, 200000);
    pipe_zdecoder_free(d);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&back);
}

/* Reads every line of in and checks it against want[]. */
static void assert_lines(const void *in, size_t n, size_t max_line, const char **want,
                         const size_t *want_len, size_t count)
{
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(in, n, max_line, &r), 0);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
        assert_int_equal(len, want_len[i]);
        if (len)
            assert_memory_equal(line, want[i], len);
        assert_int_equal(pipe_line_reader_line_no(r), i + 1);
    }
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    pipe_line_reader_free(r);
}

/* ---- gzip ---- */

/* gzip_into — n bytes as one gzip member appended to out (zlib, level 6). */
static void gzip_into(const void *p, size_t n, struct pipe_buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t bound = deflateBound(&zs, (uLong)n) + 32;
    assert_int_equal(pipe_buf_reserve(out, bound), 0);
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
}

static void test_gunzip_decodes_one_and_concatenated_members(void **state)
{
    (void)state;
    struct pipe_buf gz, out;
    pipe_buf_init(&gz, SIZE_MAX);
    pipe_buf_init(&out, MB);
    gzip_into("{\"batch\":[", 10, &gz);
    gzip_into("]}", 2, &gz); /* RFC 1952: members may follow each other */
    assert_int_equal(pipe_codec_gunzip(gz.data, gz.len, &out), 0);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "{\"batch\":[]}", 12);
    pipe_buf_cleanup(&out);
    pipe_buf_cleanup(&gz);
}

static void test_gunzip_bomb_stops_at_cap_and_leaves_out_unchanged(void **state)
{
    (void)state;
    size_t n = 64 * MB;
    char *zeros = pipe_calloc(1, n);
    struct pipe_buf gz, out;
    pipe_buf_init(&gz, SIZE_MAX);
    gzip_into(zeros, n, &gz);
    assert_true(gz.len < MB / 8); /* a 64 MiB bomb in well under 128 KiB */
    pipe_buf_init(&out, MB);
    pipe_buf_append(&out, "keep", 4);
    assert_int_equal(pipe_codec_gunzip(gz.data, gz.len, &out), PIPE_ETOOBIG);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 5); /* NUL-terminated again */
    assert_true(out.cap <= MB + 64 * 1024);   /* memory stayed near the cap */
    pipe_buf_cleanup(&out);
    pipe_buf_cleanup(&gz);
    pipe_free(zeros);
}

static void test_gunzip_truncated_corrupt_and_foreign_input_fail(void **state)
{
    (void)state;
    struct pipe_buf gz, out;
    pipe_buf_init(&gz, SIZE_MAX);
    pipe_buf_init(&out, MB);
    static const char text[] = "hello hello hello hello hello hello";
    gzip_into(text, sizeof text - 1, &gz);
    assert_int_equal(pipe_codec_gunzip(gz.data, gz.len - 5, &out), PIPE_ECORRUPT); /* cut */
    gz.data[gz.len - 6] ^= 0x55; /* the CRC no longer matches */
    assert_int_equal(pipe_codec_gunzip(gz.data, gz.len, &out), PIPE_ECORRUPT);
    gz.data[gz.len - 6] ^= 0x55;
    pipe_buf_append(&gz, "trailing junk!!!!!!!", 20); /* not another member */
    assert_int_equal(pipe_codec_gunzip(gz.data, gz.len, &out), PIPE_ECORRUPT);
    assert_int_equal(pipe_codec_gunzip("{\"plain\":\"json body\"}", 21, &out), PIPE_ECORRUPT);
    assert_int_equal(pipe_codec_gunzip("", 0, &out), PIPE_ECORRUPT);
    assert_int_equal(out.len, 0);
    pipe_buf_cleanup(&out);
    pipe_buf_cleanup(&gz);
}

static void test_line_reader_handles_crlf_empty_lines_and_missing_final_newline(void **state)
{
    (void)state;
    const char *text = "a\r\n\nbb\r\n\r\nccc";
    const char *want[] = {"a", "", "bb", "", "ccc"};
    const size_t want_len[] = {1, 0, 2, 0, 3};
    assert_lines(text, strlen(text), 10, want, want_len, 5);
    struct pipe_buf z;
    pipe_buf_init(&z, MB);
    compress_into(text, strlen(text), &z);
    assert_lines(z.data, z.len, 10, want, want_len, 5);
    pipe_buf_reset(&z);
    compress_into("x\n", 2, &z); /* a trailing '\n' adds no empty line */
    const char *x[] = {"x"};
    assert_lines(z.data, z.len, 10, x, (size_t[]){1}, 1);
    assert_lines("", 0, 10, NULL, NULL, 0);
    pipe_buf_cleanup(&z);
}

static void test_line_reader_joins_lines_longer_than_a_chunk(void **state)
{
    (void)state;
    size_t chunk = ZSTD_DStreamOutSize();
    size_t lens[] = {0, 1, chunk - 1, chunk, chunk + 1, 300000, 5, 2 * chunk + 3, 17};
    size_t count = sizeof lens / sizeof lens[0];
    struct pipe_buf text, z;
    pipe_buf_init(&text, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    const char *want[sizeof lens / sizeof lens[0]];
    size_t offs[sizeof lens / sizeof lens[0]];
    for (size_t i = 0; i < count; i++) {
        offs[i] = text.len;
        for (size_t j = 0; j < lens[i]; j++)
            assert_int_equal(pipe_buf_append_char(&text, (char)('a' + (i + j * 7) % 26)), 0);
        assert_int_equal(pipe_buf_append_char(&text, '\n'), 0);
    }
    for (size_t i = 0; i < count; i++)
        want[i] = text.data + offs[i];
    compress_into(text.data, text.len, &z);
    assert_lines(z.data, z.len, MB, want, lens, count);
    assert_lines(text.data, text.len, MB, want, lens, count);
    pipe_buf_cleanup(&text);
    pipe_buf_cleanup(&z);
}

/* Expects: "short" ok, long line ETOOBIG, "after" ok, exact-cap line ok,
 * cap+1 line ETOOBIG, "end" ok, then the end. */
static void check_line_cap(const void *in, size_t n, size_t cap)
{
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(in, n, cap, &r), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(len, 5);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), PIPE_ETOOBIG);
    assert_int_equal(pipe_line_reader_line_no(r), 2);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_memory_equal(line, "after", 5);
    assert_int_equal(pipe_line_reader_line_no(r), 3);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(len, cap);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), PIPE_ETOOBIG);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(line, "end", 3);
    assert_int_equal(pipe_line_reader_line_no(r), 6);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    pipe_line_reader_free(r);
}

static void test_line_reader_reports_over_long_lines_and_continues(void **state)
{
    (void)state;
    size_t cap = 1000;
    struct pipe_buf text, z;
    pipe_buf_init(&text, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    pipe_buf_append_str(&text, "short\n");
    for (size_t i = 0; i < 500000; i++) /* spans several chunks */
        pipe_buf_append_char(&text, 'x');
    pipe_buf_append_str(&text, "\nafter\n");
    for (size_t i = 0; i < cap; i++)
        pipe_buf_append_char(&text, 'y');
    pipe_buf_append_str(&text, "\r\n"); /* the '\r' does not count */
    for (size_t i = 0; i < cap + 1; i++)
        pipe_buf_append_char(&text, 'z');
    pipe_buf_append_str(&text, "\r\nend");
    check_line_cap(text.data, text.len, cap);
    compress_into(text.data, text.len, &z);
    check_line_cap(z.data, z.len, cap);
    pipe_buf_cleanup(&text);
    pipe_buf_cleanup(&z);
}

static void test_line_reader_truncated_input_is_sticky_corrupt(void **state)
{
    (void)state;
    struct pipe_buf lines, z;
    pipe_buf_init(&lines, 64 * MB);
    pipe_buf_init(&z, 64 * MB);
    make_lines(&lines, 50000);
    compress_into(lines.data, lines.len, &z);
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(z.data, z.len - 10, 1000, &r), 0);
    int rc;
    uint64_t got = 0;
    while ((rc = pipe_line_reader_next(r, &line, &len)) == 1)
        got++;
    assert_int_equal(rc, PIPE_ECORRUPT);
    assert_true(got < 50000);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), PIPE_ECORRUPT);
    pipe_line_reader_free(r);
    pipe_line_reader_free(NULL);
    assert_int_equal(pipe_line_reader_new("x", 1, 0, &r), PIPE_EINVAL);
    pipe_buf_cleanup(&lines);
    pipe_buf_cleanup(&z);
}

static void test_line_reader_reset_reads_another_input_from_its_first_line(void **state)
{
    (void)state;
    struct pipe_buf a, za, zb;
    pipe_buf_init(&a, 64 * MB);
    pipe_buf_init(&za, 64 * MB);
    pipe_buf_init(&zb, MB);
    make_lines(&a, 30000);
    compress_into(a.data, a.len, &za);
    compress_into("b1\nb2\n", 6, &zb);
    struct pipe_line_reader *r = NULL;
    const char *line;
    size_t len;
    assert_int_equal(pipe_line_reader_new(za.data, za.len, 1000, &r), 0);
    for (int i = 0; i < 3; i++) /* part of the way into a */
        assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(pipe_line_reader_reset(r, zb.data, zb.len), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(pipe_line_reader_line_no(r), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(line, "b1", 2);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    /* plain input, then a whole zstd input again, with the same reader */
    assert_int_equal(pipe_line_reader_reset(r, "p1\np2", 5), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_memory_equal(line, "p1", 2);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_memory_equal(line, "p2", 2);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 0);
    assert_int_equal(pipe_line_reader_reset(r, za.data, za.len), 0);
    struct pipe_buf back;
    pipe_buf_init(&back, 64 * MB);
    while (pipe_line_reader_next(r, &line, &len) == 1) {
        assert_int_equal(pipe_buf_append(&back, line, len), 0);
        assert_int_equal(pipe_buf_append_char(&back, '\n'), 0);
    }
    assert_int_equal(pipe_line_reader_line_no(r), 30000);
    assert_int_equal(back.len, a.len);
    assert_memory_equal(back.data, a.data, a.len);
    /* after a corrupt input, a reset clears the sticky error */
    assert_int_equal(pipe_line_reader_reset(r, za.data, za.len - 10), 0);
    int rc;
    while ((rc = pipe_line_reader_next(r, &line, &len)) == 1)
        ;
    assert_int_equal(rc, PIPE_ECORRUPT);
    assert_int_equal(pipe_line_reader_reset(r, zb.data, zb.len), 0);
    assert_int_equal(pipe_line_reader_next(r, &line, &len), 1);
    assert_memory_equal(line, "b1", 2);
    pipe_line_reader_free(r);
    pipe_buf_cleanup(&a);
    pipe_buf_cleanup(&za);
    pipe_buf_cleanup(&zb);
    pipe_buf_cleanup(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trips_empty_one_line_and_100k_lines),
        cmocka_unit_test(test_codec_round_trips_binary_content),
        cmocka_unit_test(test_codec_many_tiny_writes_equal_one_big_write),
        cmocka_unit_test(test_codec_writer_records_checksum_and_content_size),
        cmocka_unit_test(test_codec_whole_frame_appends_a_checked_frame_with_content_size),
        cmocka_unit_test(test_codec_whole_frame_over_the_cap_leaves_out_unchanged),
        cmocka_unit_test(test_codec_writer_rejects_bad_level_and_write_after_finish),
        cmocka_unit_test(test_codec_writer_hits_output_cap_and_reset_recovers),
        cmocka_unit_test(test_codec_decodes_concatenated_and_skippable_frames),
        cmocka_unit_test(test_codec_plain_input_passes_through),
        cmocka_unit_test(test_codec_truncated_frame_is_corrupt),
        cmocka_unit_test(test_codec_flipped_byte_fails_checksum),
        cmocka_unit_test(test_codec_zip_bomb_stops_at_cap),
        cmocka_unit_test(test_codec_ignores_declared_content_size),
        cmocka_unit_test(test_zdecoder_decodes_sized_streamed_and_skippable_frames_again_and_again),
        cmocka_unit_test(test_zdecoder_bad_sized_frames_fail_and_leave_out_as_it_was),
        cmocka_unit_test(test_gunzip_decodes_one_and_concatenated_members),
        cmocka_unit_test(test_gunzip_bomb_stops_at_cap_and_leaves_out_unchanged),
        cmocka_unit_test(test_gunzip_truncated_corrupt_and_foreign_input_fail),
        cmocka_unit_test(test_line_reader_handles_crlf_empty_lines_and_missing_final_newline),
        cmocka_unit_test(test_line_reader_joins_lines_longer_than_a_chunk),
        cmocka_unit_test(test_line_reader_reports_over_long_lines_and_continues),
        cmocka_unit_test(test_line_reader_truncated_input_is_sticky_corrupt),
        cmocka_unit_test(test_line_reader_reset_reads_another_input_from_its_first_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
