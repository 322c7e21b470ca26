/* codec — zstd compression of NDJSON objects, with caps on everything that
 * grows. A streaming writer compresses into a caller's pipe_buf; a whole-buffer
 * decoder and a streaming line reader take objects that are plain or one or
 * more concatenated zstd frames. Sizes declared inside a frame are never
 * trusted: output is bounded only by the caller's cap. */
#ifndef PIPE_CODEC_H
#define PIPE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"

#define PIPE_CODEC_LEVEL_DEFAULT 1 /* fast: objects are rewritten downstream */

/* ---- writer ------------------------------------------------------------ */

struct pipe_zwriter;

/* pipe_zwriter_new — a streaming compressor that appends one zstd frame to
 * out. level: zstd level (1 is the pipeline's default; 0 = zstd's own
 * default; negative = fast modes), PIPE_EINVAL if out of zstd's range. out is
 * borrowed and must outlive the writer (or be replaced by _reset). Free with
 * pipe_zwriter_free. 0 or PIPE_EINVAL / PIPE_EIO. */
int pipe_zwriter_new(int level, struct pipe_buf *out, struct pipe_zwriter **w);

/* pipe_zwriter_write — feeds n uncompressed bytes. Input is buffered and
 * compressed in chunks, so many tiny calls are cheap. PIPE_ETOOBIG when out's
 * cap is hit; after any error the frame is unusable and every call returns
 * the same error until pipe_zwriter_reset. PIPE_EINVAL after _finish. */
int pipe_zwriter_write(struct pipe_zwriter *w, const void *p, size_t n);

/* pipe_zwriter_finish — compresses what is buffered and ends the frame (with
 * a content checksum; the content size is recorded when the whole frame was
 * compressed in one go, i.e. objects up to ~128 KiB). 0, PIPE_ETOOBIG, or a
 * sticky earlier error. Writing after finish needs _reset. */
int pipe_zwriter_finish(struct pipe_zwriter *w);

/* pipe_zwriter_bytes_in — uncompressed bytes fed since _new or _reset. */
uint64_t pipe_zwriter_bytes_in(const struct pipe_zwriter *w);

/* pipe_zwriter_reset — abandons any frame in progress and starts a new one
 * appending to out (which may be a different buffer), reusing the
 * compression context. Clears a sticky error. 0 or PIPE_EIO. */
int pipe_zwriter_reset(struct pipe_zwriter *w, struct pipe_buf *out);

/* pipe_zwriter_frame — compresses p[0..n) as one whole frame (same level,
 * with a content checksum and the content size) appended to out, which
 * need not be the writer's buffer. One call, no copy of the input, the frame
 * written straight into out: cheaper than write + finish for data already
 * in memory. Abandons any streamed frame in progress (call _reset before
 * streaming again). 0; PIPE_ETOOBIG when the frame would pass out's cap, or
 * PIPE_EIO; out is unchanged on error (its allocation may have grown). */
int pipe_zwriter_frame(struct pipe_zwriter *w, const void *p, size_t n, struct pipe_buf *out);

/* pipe_zwriter_free — frees the writer (not its output buffer). NULL is a no-op. */
void pipe_zwriter_free(struct pipe_zwriter *w);

/* ---- whole-buffer decoding ---------------------------------------------- */

/* pipe_codec_is_zstd — true if in starts with a zstd frame or a zstd
 * skippable frame (magic read little-endian at offset 0). */
bool pipe_codec_is_zstd(const void *in, size_t n);

/* pipe_codec_decompress — appends the content of in to out: plain input is
 * copied, zstd input (one or more frames, skippable frames ignored) is
 * decompressed. PIPE_ETOOBIG as soon as out would pass out->max (memory use
 * stays near the cap, whatever the frame claims); PIPE_ECORRUPT for a bad or
 * truncated frame or a checksum mismatch. On error out->len is restored to
 * what it was (the allocation may have grown). Frames may declare windows of
 * up to 128 MiB (zstd's default limit), which the decoder allocates. */
int pipe_codec_decompress(const void *in, size_t n, struct pipe_buf *out);

/* A reusable whole-buffer decoder: pipe_codec_decompress with its
 * decompression context kept from one call to the next, for callers that
 * decode object after object (no allocation, no fresh pages per object). */
struct pipe_zdecoder;

/* pipe_zdecoder_new — a decoder; free with pipe_zdecoder_free. 0,
 * PIPE_EINVAL or PIPE_EIO. */
int pipe_zdecoder_new(struct pipe_zdecoder **d);

/* pipe_zdecoder_decompress — exactly pipe_codec_decompress (same caps,
 * errors and restored out->len), on d's context. A frame that declares its
 * content size, fitting under out->max, and a window within the limit is
 * decoded in one pass straight into out; any other frame is streamed. */
int pipe_zdecoder_decompress(struct pipe_zdecoder *d, const void *in, size_t n,
                             struct pipe_buf *out);

/* pipe_zdecoder_each — decodes the zstd frames in[0..n) (skippable frames
 * ignored) one chunk at a time on d's context, calling fn(arg, chunk, len)
 * for every chunk of output while it is in cache; nothing is kept. A
 * negative return from fn stops the walk and is returned. 0, PIPE_ECORRUPT
 * (a bad or cut-short frame, a checksum mismatch) or PIPE_EIO. */
typedef int (*pipe_zchunk_fn)(void *arg, const char *chunk, size_t len);
int pipe_zdecoder_each(struct pipe_zdecoder *d, const void *in, size_t n, pipe_zchunk_fn fn,
                       void *arg);

/* pipe_zdecoder_free — NULL is a no-op. */
void pipe_zdecoder_free(struct pipe_zdecoder *d);

/* ---- the sluice record: what an object's frames hold, said up front ----- */

/* A producer that writes an NDJSON object knows what it holds; it can say
 * so at the object's start in a zstd skippable frame (RFC 8878 section
 * 3.1.2: magic 0x184D2A50..0x184D2A5F, a 4-byte little-endian size, that
 * many bytes of payload), which every zstd decoder passes over. The record
 * vouches that the zstd frames after it decode to exactly `bytes` bytes,
 * made of `events` lines, each non-empty and ended by "\n". Layout (all
 * integers little-endian), PIPE_CODEC_RECORD_LEN bytes:
 *   0  magic 0x184D2A53      4  frame size, 24
 *   8  tag "SLCE"           12  version, 1
 *  16  events (u64)         24  bytes (u64)
 * The filter writes one before the frames of every filtered/ object; the
 * combiner takes counts and sizes from it instead of decoding
 * (docs/compaction.md). */
struct pipe_codec_record {
    uint64_t events; /* lines of the content, each non-empty */
    uint64_t bytes;  /* decoded bytes of the frames after the record */
};

#define PIPE_CODEC_RECORD_LEN 32

/* pipe_codec_record_write — appends rec as a skippable frame to out. 0 or
 * PIPE_ETOOBIG (out's cap; out unchanged). */
int pipe_codec_record_write(struct pipe_buf *out, const struct pipe_codec_record *rec);

/* pipe_codec_record_read — reads the record that in[0..n) starts with into
 * *rec, which is written only on success. 0; PIPE_ENOTFOUND when in does
 * not start with a record of this version (plain text, a zstd frame,
 * another producer's skippable frame, a later version); PIPE_ECORRUPT when
 * it starts with this record's magic and tag but is cut short, sized
 * otherwise, or states counts no content can have (an event takes at least
 * two bytes; content bytes without an event). */
int pipe_codec_record_read(const void *in, size_t n, struct pipe_codec_record *rec);

/* pipe_codec_frames_size — checks without decoding that in[0..n) is zero or
 * more whole zstd frames (no skippable frame), each with a content checksum,
 * a declared content size and a window the decoders accept, and writes the
 * sum of the declared content sizes to *bytes. Block headers are walked, so
 * an object cut short fails; a block's content is not looked at, so bytes
 * flipped inside a block are left to the checksum of whoever decodes it.
 * 0, or PIPE_ECORRUPT (*bytes untouched). */
int pipe_codec_frames_size(const void *in, size_t n, uint64_t *bytes);

/* pipe_codec_gunzip — appends the content of the gzip stream in (one or
 * more members, as Content-Encoding: gzip allows) to out. The same cap rule
 * as pipe_codec_decompress: PIPE_ETOOBIG as soon as out would pass out->max,
 * whatever the stream's trailer claims (a gzip bomb costs at most the cap);
 * PIPE_ECORRUPT for input that is not gzip, is cut short or fails its CRC.
 * On error out->len is restored. */
int pipe_codec_gunzip(const void *in, size_t n, struct pipe_buf *out);

/* ---- streaming line reader --------------------------------------------- */

struct pipe_line_reader;

/* pipe_line_reader_new — reads lines from in (plain or zstd, as above),
 * decompressing chunk by chunk so that objects larger than memory budgets
 * can be read. in is borrowed and must outlive the reader. max_line (>= 1)
 * caps one line's length (excluding "\n" / "\r\n"). Free with
 * pipe_line_reader_free. 0 or PIPE_EINVAL / PIPE_EIO. */
int pipe_line_reader_new(const void *in, size_t n, size_t max_line, struct pipe_line_reader **r);

/* pipe_line_reader_next — the next line, without its "\n" or "\r\n"; a final
 * line without "\n" is still a line, an empty input has none. *line is not
 * NUL-terminated and stays valid until the next call. Returns 1 (a line), 0
 * (end), PIPE_ETOOBIG (the line is longer than max_line: it is skipped and
 * the next call continues with the following line) or PIPE_ECORRUPT (sticky:
 * the stream cannot go on). A checksum is verified at the end of each frame,
 * so lines before a corruption may already have been handed out: callers
 * that need all-or-nothing must treat the whole object as failed. */
int pipe_line_reader_next(struct pipe_line_reader *r, const char **line, size_t *len);

/* pipe_line_reader_line_no — 1-based number of the line last returned
 * (including a line reported as PIPE_ETOOBIG); 0 before the first. */
uint64_t pipe_line_reader_line_no(const struct pipe_line_reader *r);

/* pipe_line_reader_reset — starts reading another input (or the same one
 * again) from its first line, as _new would, but keeps the reader's
 * decompression context and buffers: a reader reused across objects costs
 * no allocation (nor fresh pages) per object. in is borrowed as in _new.
 * 0 or PIPE_EIO (the reader is then unusable: free it). */
int pipe_line_reader_reset(struct pipe_line_reader *r, const void *in, size_t n);

/* pipe_line_reader_free — NULL is a no-op. */
void pipe_line_reader_free(struct pipe_line_reader *r);

#endif
