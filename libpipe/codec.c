/* codec — zstd NDJSON writer, whole-buffer zstd and gzip decoders and
 * streaming line reader.
 * The writer owns its zstd context and a staging buffer; output goes to a
 * borrowed pipe_buf. Readers borrow their input and bound their output by
 * caps, never by sizes a frame declares. */
#include "libpipe/codec.h"

#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"

#define ZSTD_MAGIC_LE  0xFD2FB528u
#define SKIPPABLE_MASK 0xFFFFFFF0u
/* Largest window a frame may ask the decoder to allocate: 128 MiB, zstd's
 * own default (ZSTD_WINDOWLOG_LIMIT_DEFAULT, a static-only symbol), which
 * every producer not using --long stays under. Spelled out so that the
 * memory a hostile frame can cost is visible here. */
#define WINDOW_LOG_MAX 27

/* ---- writer ------------------------------------------------------------ */

struct pipe_zwriter {
    ZSTD_CCtx *cctx;
    struct pipe_buf *out;
    char *in; /* uncompressed bytes waiting for a full chunk */
    size_t in_len;
    size_t in_cap; /* ZSTD_CStreamInSize() */
    char *stage;   /* compressed bytes before they are appended to out */
    size_t stage_cap;
    uint64_t bytes_in;
    int err; /* sticky error of the current frame */
    bool finished;
};

int pipe_zwriter_new(int level, struct pipe_buf *out, struct pipe_zwriter **w)
{
    int rc = 0;
    struct pipe_zwriter *z = NULL;
    if (!out || !w || level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        rc = PIPE_EINVAL;
        goto out;
    }
    z = pipe_calloc(1, sizeof *z);
    z->cctx = ZSTD_createCCtx();
    if (!z->cctx) {
        rc = PIPE_EIO;
        goto out;
    }
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1))) {
        rc = PIPE_EINVAL;
        goto out;
    }
    z->in_cap = ZSTD_CStreamInSize();
    z->in = pipe_malloc(z->in_cap);
    z->stage_cap = ZSTD_CStreamOutSize();
    z->stage = pipe_malloc(z->stage_cap);
    z->out = out;
    *w = z;
    z = NULL;
out:
    pipe_zwriter_free(z);
    return rc;
}

/* Runs the compressor over the buffered input with the given directive,
 * appending whatever it produces to out. For ZSTD_e_end it loops until the
 * frame epilogue is flushed. */
static int zwriter_pump(struct pipe_zwriter *z, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {z->in, z->in_len, 0};
    for (;;) {
        ZSTD_outBuffer ob = {z->stage, z->stage_cap, 0};
        size_t left = ZSTD_compressStream2(z->cctx, &ob, &in, mode);
        if (ZSTD_isError(left))
            return PIPE_EIO;
        int rc = pipe_buf_append(z->out, z->stage, ob.pos);
        if (rc < 0)
            return rc;
        bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
        if (done)
            break;
    }
    z->in_len = 0;
    return 0;
}

int pipe_zwriter_write(struct pipe_zwriter *w, const void *p, size_t n)
{
    if (w->err)
        return w->err;
    if (w->finished)
        return PIPE_EINVAL;
    const char *src = p;
    while (n > 0) {
        size_t take = w->in_cap - w->in_len;
        if (take > n)
            take = n;
        memcpy(w->in + w->in_len, src, take);
        w->in_len += take;
        w->bytes_in += take;
        src += take;
        n -= take;
        if (w->in_len == w->in_cap) {
            int rc = zwriter_pump(w, ZSTD_e_continue);
            if (rc < 0) {
                w->err = rc;
                return rc;
            }
        }
    }
    return 0;
}

int pipe_zwriter_finish(struct pipe_zwriter *w)
{
    if (w->err)
        return w->err;
    if (w->finished)
        return PIPE_EINVAL;
    int rc = zwriter_pump(w, ZSTD_e_end);
    if (rc < 0)
        w->err = rc;
    else
        w->finished = true;
    return rc;
}

uint64_t pipe_zwriter_bytes_in(const struct pipe_zwriter *w)
{
    return w->bytes_in;
}

int pipe_zwriter_reset(struct pipe_zwriter *w, struct pipe_buf *out)
{
    if (!out)
        return PIPE_EINVAL;
    if (ZSTD_isError(ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only)))
        return PIPE_EIO;
    w->out = out;
    w->in_len = 0;
    w->bytes_in = 0;
    w->err = 0;
    w->finished = false;
    return 0;
}

int pipe_zwriter_frame(struct pipe_zwriter *w, const void *p, size_t n, struct pipe_buf *out)
{
    if (!out || (!p && n))
        return PIPE_EINVAL;
    /* ZSTD_compress2 starts a new session: a streamed frame is gone. */
    w->in_len = 0;
    w->finished = true;
    size_t bound = ZSTD_compressBound(n);
    size_t room = out->max - out->len;
    if (room > bound)
        room = bound;
    int rc = pipe_buf_reserve(out, room);
    if (rc < 0)
        return rc;
    size_t z = ZSTD_compress2(w->cctx, out->data + out->len, room, p, n);
    if (ZSTD_isError(z)) {
        out->data[out->len] = '\0'; /* zstd may have written past len */
        return room < bound ? PIPE_ETOOBIG : PIPE_EIO;
    }
    out->len += z;
    out->data[out->len] = '\0';
    return 0;
}

void pipe_zwriter_free(struct pipe_zwriter *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    pipe_free(w->in);
    pipe_free(w->stage);
    pipe_free(w);
}

/* ---- decoding ---------------------------------------------------------- */

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const unsigned char *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

static void put_le32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *b, uint64_t v)
{
    put_le32(b, (uint32_t)v);
    put_le32(b + 4, (uint32_t)(v >> 32));
}

bool pipe_codec_is_zstd(const void *in, size_t n)
{
    if (!in || n < 4)
        return false;
    uint32_t magic = le32(in);
    return magic == ZSTD_MAGIC_LE || (magic & SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

/* One step of streaming decompression into ob, shared by the whole-buffer
 * decoder and the line reader. *last is zstd's hint from the previous call:
 * 0 means the stream sits on a frame boundary. Returns 1 if there may be
 * more output, 0 at a clean end, PIPE_ECORRUPT otherwise. */
static int zstd_step(ZSTD_DCtx *d, ZSTD_inBuffer *in, ZSTD_outBuffer *ob, size_t *last)
{
    if (in->pos == in->size && *last == 0)
        return 0;
    size_t before_in = in->pos;
    size_t ret = ZSTD_decompressStream(d, ob, in);
    if (ZSTD_isError(ret))
        return PIPE_ECORRUPT;
    *last = ret;
    /* All input gone, the frame unfinished, and a call that neither read nor
     * wrote anything: the frame stops in the middle (a truncated object). */
    if (ret != 0 && ob->pos == 0 && before_in == in->size)
        return PIPE_ECORRUPT;
    return 1;
}

static ZSTD_DCtx *dctx_new(void)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (d && ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, WINDOW_LOG_MAX))) {
        ZSTD_freeDCtx(d);
        d = NULL;
    }
    return d;
}

/* A whole-buffer decoder: a decompression context and an output chunk kept
 * from one call to the next. */
struct pipe_zdecoder {
    ZSTD_DCtx *dctx;
    char *chunk; /* streamed output before it is appended to out */
    size_t chunk_cap;
};

int pipe_zdecoder_new(struct pipe_zdecoder **d)
{
    if (!d)
        return PIPE_EINVAL;
    struct pipe_zdecoder *z = pipe_calloc(1, sizeof *z);
    z->dctx = dctx_new();
    if (!z->dctx) {
        pipe_free(z);
        return PIPE_EIO;
    }
    z->chunk_cap = ZSTD_DStreamOutSize();
    z->chunk = pipe_malloc(z->chunk_cap);
    *d = z;
    return 0;
}

void pipe_zdecoder_free(struct pipe_zdecoder *d)
{
    if (!d)
        return;
    ZSTD_freeDCtx(d->dctx);
    pipe_free(d->chunk);
    pipe_free(d);
}

int pipe_zdecoder_each(struct pipe_zdecoder *d, const void *in, size_t n, pipe_zchunk_fn fn,
                       void *arg)
{
    if (ZSTD_isError(ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_only)))
        return PIPE_EIO;
    ZSTD_inBuffer zin = {in, n, 0};
    size_t last = 1; /* not at a frame boundary before the first frame */
    for (;;) {
        ZSTD_outBuffer ob = {d->chunk, d->chunk_cap, 0};
        int rc = zstd_step(d->dctx, &zin, &ob, &last);
        if (rc <= 0)
            return rc;
        if (ob.pos > 0 && (rc = fn(arg, d->chunk, ob.pos)) < 0)
            return rc;
    }
}

/* Appends a decoded chunk to the pipe_buf out: the streamed path of a
 * whole-buffer decode (frames that do not declare their size, or declare
 * more than out may hold), which the cap stops with PIPE_ETOOBIG. */
static int append_chunk(void *out, const char *chunk, size_t len)
{
    return pipe_buf_append(out, chunk, len);
}

/* frame_window — the window a (non-skippable) frame's header declares, in
 * bytes (RFC 8878 3.1.1.1.2; a single-segment frame's window is its
 * content size, passed in fcs). */
static uint64_t frame_window(const unsigned char *in, uint64_t fcs)
{
    if (in[4] & 0x20)
        return fcs;
    unsigned wd = in[5];
    uint64_t base = 1ull << (10 + (wd >> 3));
    return base + (base / 8) * (wd & 7);
}

/* zdecoder_whole_frame — if the frame at in declares a content size that
 * fits in out and a window the streaming decoder would accept, decodes it
 * in one pass straight into out (no window buffer, no copy) and returns
 * its compressed size; a skippable frame is passed over the same way.
 * 0 when the frame is to be streamed (which also judges every malformed
 * header); PIPE_ECORRUPT when its blocks or checksum are bad. */
static int64_t zdecoder_whole_frame(struct pipe_zdecoder *d, const char *in, size_t n,
                                    struct pipe_buf *out)
{
    const unsigned char *b = (const unsigned char *)in;
    size_t csize = ZSTD_findFrameCompressedSize(in, n);
    if (n < 4 || ZSTD_isError(csize))
        return 0;
    uint32_t magic = le32(b);
    if ((magic & SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START)
        return (int64_t)csize;
    unsigned long long fcs = ZSTD_getFrameContentSize(in, n);
    if (magic != ZSTD_MAGIC_LE || fcs == ZSTD_CONTENTSIZE_UNKNOWN ||
        fcs == ZSTD_CONTENTSIZE_ERROR || fcs > out->max - out->len ||
        frame_window(b, fcs) > (1ull << WINDOW_LOG_MAX))
        return 0;
    int rc = pipe_buf_reserve(out, (size_t)fcs);
    if (rc < 0)
        return rc;
    size_t got = ZSTD_decompressDCtx(d->dctx, out->data + out->len, (size_t)fcs, in, csize);
    if (ZSTD_isError(got) || got != fcs)
        return PIPE_ECORRUPT;
    out->len += got;
    out->data[out->len] = '\0';
    return (int64_t)csize;
}

int pipe_zdecoder_decompress(struct pipe_zdecoder *d, const void *in, size_t n,
                             struct pipe_buf *out)
{
    if (!pipe_codec_is_zstd(in, n))
        return pipe_buf_append(out, in, n);
    int rc = 0;
    size_t start_len = out->len, pos = 0;
    const char *p = in;
    while (rc == 0 && pos < n) {
        int64_t used = zdecoder_whole_frame(d, p + pos, n - pos, out);
        if (used < 0)
            rc = (int)used;
        else if (used == 0)
            break;
        else
            pos += (size_t)used;
    }
    if (rc == 0 && pos < n)
        rc = pipe_zdecoder_each(d, p + pos, n - pos, append_chunk, out);
    if (rc < 0) {
        out->len = start_len;
        if (out->data)
            out->data[out->len] = '\0';
    }
    return rc;
}

int pipe_codec_decompress(const void *in, size_t n, struct pipe_buf *out)
{
    if (!pipe_codec_is_zstd(in, n))
        return pipe_buf_append(out, in, n);
    struct pipe_zdecoder *d = NULL;
    int rc = pipe_zdecoder_new(&d);
    if (rc == 0)
        rc = pipe_zdecoder_decompress(d, in, n, out);
    pipe_zdecoder_free(d);
    return rc;
}

/* ---- the sluice record ------------------------------------------------- */

/* The record's skippable frame (codec.h has the layout): one of the 16
 * magics RFC 8878 3.1.2 sets aside, then the payload's size. */
#define RECORD_MAGIC   (ZSTD_MAGIC_SKIPPABLE_START + 3u)
#define RECORD_TAG     "SLCE"
#define RECORD_VERSION 1u
#define RECORD_PAYLOAD (PIPE_CODEC_RECORD_LEN - 8) /* after magic and size */

int pipe_codec_record_write(struct pipe_buf *out, const struct pipe_codec_record *rec)
{
    unsigned char b[PIPE_CODEC_RECORD_LEN];
    put_le32(b, RECORD_MAGIC);
    put_le32(b + 4, RECORD_PAYLOAD);
    memcpy(b + 8, RECORD_TAG, 4);
    put_le32(b + 12, RECORD_VERSION);
    put_le64(b + 16, rec->events);
    put_le64(b + 24, rec->bytes);
    return pipe_buf_append(out, b, sizeof b);
}

int pipe_codec_record_read(const void *in, size_t n, struct pipe_codec_record *rec)
{
    const unsigned char *b = in;
    if (!b || n < 4 || le32(b) != RECORD_MAGIC)
        return PIPE_ENOTFOUND;
    /* Another producer may use the same magic: the tag says whose it is. */
    if (n < 12)
        return PIPE_ECORRUPT;
    if (memcmp(b + 8, RECORD_TAG, 4) != 0)
        return PIPE_ENOTFOUND;
    if (n < 16)
        return PIPE_ECORRUPT;
    if (le32(b + 12) != RECORD_VERSION)
        return PIPE_ENOTFOUND; /* a later layout: the caller decodes instead */
    if (n < PIPE_CODEC_RECORD_LEN || le32(b + 4) != RECORD_PAYLOAD)
        return PIPE_ECORRUPT;
    uint64_t events = le64(b + 16), bytes = le64(b + 24);
    if (events > bytes / 2 || (events == 0 && bytes > 0))
        return PIPE_ECORRUPT;
    rec->events = events;
    rec->bytes = bytes;
    return 0;
}

/* frame_size — the compressed size of the zstd frame at in, checked as
 * pipe_codec_frames_size says, with its content size added to *sum; 0 if
 * it is not such a frame. */
static size_t frame_size(const unsigned char *in, size_t n, uint64_t *sum)
{
    size_t csize = ZSTD_findFrameCompressedSize(in, n);
    if (ZSTD_isError(csize) || le32(in) != ZSTD_MAGIC_LE)
        return 0;
    unsigned long long fcs = ZSTD_getFrameContentSize(in, n);
    /* Frame header descriptor (RFC 8878 3.1.1.1.1): bit 2 is the
     * content checksum flag. */
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs == ZSTD_CONTENTSIZE_ERROR || !(in[4] & 0x04) ||
        frame_window(in, fcs) > (1ull << WINDOW_LOG_MAX) || fcs > UINT64_MAX - *sum)
        return 0;
    *sum += fcs;
    return csize;
}

int pipe_codec_frames_size(const void *in, size_t n, uint64_t *bytes)
{
    const unsigned char *p = in;
    uint64_t sum = 0;
    size_t pos = 0;
    while (pos < n) {
        size_t used = frame_size(p + pos, n - pos, &sum);
        if (used == 0)
            return PIPE_ECORRUPT;
        pos += used;
    }
    *bytes = sum;
    return 0;
}

/* gunzip_member — inflates one gzip member from *zs into out through chunk;
 * 1 at the member's end, PIPE_ETOOBIG or PIPE_ECORRUPT. */
static int gunzip_member(z_stream *zs, char *chunk, size_t chunk_cap, struct pipe_buf *out)
{
    for (;;) {
        zs->next_out = (Bytef *)chunk;
        zs->avail_out = (uInt)chunk_cap;
        int zrc = inflate(zs, Z_NO_FLUSH);
        size_t got = chunk_cap - zs->avail_out;
        if (got && pipe_buf_append(out, chunk, got) < 0)
            return PIPE_ETOOBIG;
        if (zrc == Z_STREAM_END)
            return 1;
        /* Z_BUF_ERROR with input left over cannot happen (the output
         * chunk was just emptied); with none left the stream is cut. */
        if (zrc != Z_OK)
            return PIPE_ECORRUPT;
    }
}

int pipe_codec_gunzip(const void *in, size_t n, struct pipe_buf *out)
{
    const unsigned char *p = in;
    if (!p || n < 18 || p[0] != 0x1f || p[1] != 0x8b)
        return PIPE_ECORRUPT;
    if (n > UINT32_MAX) /* zlib counts input in 32 bits */
        return PIPE_ETOOBIG;
    size_t start_len = out->len;
    size_t chunk_cap = 64 * 1024;
    char *chunk = pipe_malloc(chunk_cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 16 + MAX_WBITS: the gzip wrapper only (no raw deflate, no zlib header). */
    int rc = inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK ? 0 : PIPE_EIO;
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    while (rc == 0) {
        rc = gunzip_member(&zs, chunk, chunk_cap, out);
        if (rc < 0)
            break;
        rc = 0;
        /* Another member may follow (RFC 1952 allows concatenation); bytes
         * that are not one fail as corruption, not trailing noise. */
        if (zs.avail_in == 0)
            break;
        if (inflateReset(&zs) != Z_OK)
            rc = PIPE_EIO;
    }
    inflateEnd(&zs);
    if (rc < 0) {
        out->len = start_len;
        if (out->data)
            out->data[out->len] = '\0';
    }
    pipe_free(chunk);
    return rc;
}

/* ---- line reader ------------------------------------------------------- */

struct pipe_line_reader {
    const char *in;
    size_t n;
    ZSTD_DCtx *dctx; /* created for the first zstd input, then kept */
    ZSTD_inBuffer zin;
    size_t zlast;
    bool zstd;   /* the input in hand is zstd (else plain) */
    char *chunk; /* decompressed bytes (zbuf), or for plain input in itself */
    size_t chunk_cap, chunk_len, chunk_pos;
    char *zbuf;          /* owned output buffer for zstd input */
    struct pipe_buf acc; /* a line that spans chunks, capped at max_line + 1 */
    size_t max_line;
    uint64_t line_no;
    bool eof;      /* no more chunks */
    bool skipping; /* dropping the rest of an over-long line */
    int err;       /* sticky PIPE_ECORRUPT */
};

int pipe_line_reader_reset(struct pipe_line_reader *r, const void *in, size_t n)
{
    if (!in && n)
        return PIPE_EINVAL;
    r->in = in;
    r->n = n;
    r->line_no = 0;
    r->skipping = false;
    r->err = 0;
    r->chunk_pos = 0;
    pipe_buf_reset(&r->acc);
    r->zstd = pipe_codec_is_zstd(in, n);
    if (!r->zstd) {
        /* Plain input is its own single chunk: lines point straight into it. */
        r->chunk = (char *)in;
        r->chunk_len = n;
        r->eof = true;
        return 0;
    }
    if (!r->dctx) {
        r->dctx = dctx_new();
        if (!r->dctx)
            return PIPE_EIO;
        r->zbuf = pipe_malloc(ZSTD_DStreamOutSize());
    } else if (ZSTD_isError(ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only))) {
        return PIPE_EIO;
    }
    r->zin = (ZSTD_inBuffer){in, n, 0};
    r->zlast = 1;
    r->chunk = r->zbuf;
    r->chunk_cap = ZSTD_DStreamOutSize();
    r->chunk_len = 0;
    r->eof = false;
    return 0;
}

int pipe_line_reader_new(const void *in, size_t n, size_t max_line, struct pipe_line_reader **r)
{
    int rc = 0;
    struct pipe_line_reader *lr = NULL;
    if (!r || (!in && n) || max_line == 0 || max_line == SIZE_MAX) {
        rc = PIPE_EINVAL;
        goto out;
    }
    lr = pipe_calloc(1, sizeof *lr);
    lr->max_line = max_line;
    /* + 1 leaves room for the '\r' of a full-length "\r\n" line. */
    pipe_buf_init(&lr->acc, max_line + 1);
    rc = pipe_line_reader_reset(lr, in, n);
    if (rc < 0)
        goto out;
    *r = lr;
    lr = NULL;
out:
    pipe_line_reader_free(lr);
    return rc;
}

/* Replaces the consumed chunk with the next non-empty piece of output.
 * 1 = got bytes, 0 = end of input, PIPE_ECORRUPT. */
static int reader_refill(struct pipe_line_reader *r)
{
    r->chunk_len = r->chunk_pos = 0;
    if (r->eof)
        return 0;
    for (;;) {
        ZSTD_outBuffer ob = {r->chunk, r->chunk_cap, 0};
        int rc = zstd_step(r->dctx, &r->zin, &ob, &r->zlast);
        if (rc <= 0) {
            r->eof = true;
            return rc;
        }
        if (ob.pos > 0) {
            r->chunk_len = ob.pos;
            return 1;
        }
    }
}

/* Hands out a completed line of len bytes at p, trimming a '\r' before the
 * '\n' and enforcing the cap. */
static int reader_emit(struct pipe_line_reader *r, const char *p, size_t len, const char **line,
                       size_t *out_len)
{
    r->line_no++;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (len > r->max_line)
        return PIPE_ETOOBIG;
    *line = p;
    *out_len = len;
    return 1;
}

int pipe_line_reader_next(struct pipe_line_reader *r, const char **line, size_t *len)
{
    if (r->err)
        return r->err;
    pipe_buf_reset(&r->acc);
    for (;;) {
        if (r->chunk_pos == r->chunk_len) {
            int rc = reader_refill(r);
            if (rc < 0) {
                r->err = rc;
                return rc;
            }
            if (rc == 0) {
                bool pending = r->acc.len > 0;
                r->skipping = false;
                return pending ? reader_emit(r, r->acc.data, r->acc.len, line, len) : 0;
            }
        }
        const char *p = r->chunk + r->chunk_pos;
        size_t avail = r->chunk_len - r->chunk_pos;
        const char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        r->chunk_pos += nl ? take + 1 : take;
        if (r->skipping) {
            r->skipping = nl == NULL;
            continue;
        }
        /* Plain input is one chunk, so a line without '\n' is the last. */
        if (r->acc.len == 0 && (nl || !r->zstd))
            return reader_emit(r, p, take, line, len); /* no copy */
        if (pipe_buf_append(&r->acc, p, take) < 0) {
            /* Report the over-long line now, and drop the rest of it. */
            r->line_no++;
            r->skipping = nl == NULL;
            pipe_buf_reset(&r->acc);
            return PIPE_ETOOBIG;
        }
        if (nl)
            return reader_emit(r, r->acc.data, r->acc.len, line, len);
    }
}

uint64_t pipe_line_reader_line_no(const struct pipe_line_reader *r)
{
    return r->line_no;
}

void pipe_line_reader_free(struct pipe_line_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    pipe_free(r->zbuf);
    pipe_buf_cleanup(&r->acc);
    pipe_free(r);
}
