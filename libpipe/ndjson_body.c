/* ndjson_body — the body splitter of ndjson.h: walks a request body's or a
 * landed file's records (NDJSON lines, array elements, the elements of an
 * {"events": [...]} wrapper) by pointer, validating array bodies up front
 * with pipe_json_scan and then finding each element's end from 64-byte
 * masks of quotes and brackets. */
#include "libpipe/ndjson.h"

#include <stdint.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/ndjson_int.h"

static size_t skip_ws(const char *b, size_t pos, size_t end)
{
    while (pos < end && pipe__json_is_ws((unsigned char)b[pos]))
        pos++;
    return pos;
}

/* Where skim_container is inside the value it walks. */
struct skim {
    size_t depth; /* open containers */
    bool in_str;  /* inside a string */
    bool esc;     /* the byte before was a backslash inside a string */
};

/* Walks b[pos..stop) a byte at a time; the position past the container's
 * closing bracket, or stop when it did not close there. */
static size_t skim_bytes(struct skim *k, const char *b, size_t pos, size_t stop)
{
    for (; pos < stop; pos++) {
        char c = b[pos];
        if (k->in_str) {
            if (k->esc)
                k->esc = false;
            else if (c == '\\')
                k->esc = true;
            else if (c == '"')
                k->in_str = false;
        } else if (c == '"') {
            k->in_str = true;
        } else if (c == '{' || c == '[') {
            k->depth++;
        } else if ((c == '}' || c == ']') && --k->depth == 0) {
            return pos + 1;
        }
    }
    return stop;
}

#ifdef NDJSON_SSE2
/* Bit i set where p[i] (of 64) equals c, after and-ing each byte with m. */
static ALWAYS_INLINE uint64_t block_eq(const __m128i v[4], unsigned char m, unsigned char c)
{
    const __m128i vm = _mm_set1_epi8((char)m), vc = _mm_set1_epi8((char)c);
    uint64_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v[i], vm), vc))
             << (16 * i);
    return r;
}

/* Walks the 64 bytes at b + pos with masks: which bytes are inside
 * strings comes from a running XOR of the quote bits, and only the
 * brackets outside strings are looked at one by one. A block with a
 * backslash (rare in events) goes byte by byte. As skim_bytes. */
static size_t skim_block(struct skim *k, const char *b, size_t pos)
{
    __m128i v[4];
    for (int i = 0; i < 4; i++)
        v[i] = _mm_loadu_si128((const __m128i *)(const void *)(b + pos + 16 * (size_t)i));
    if (k->esc || block_eq(v, 0xFF, '\\'))
        return skim_bytes(k, b, pos, pos + 64);
    uint64_t q = block_eq(v, 0xFF, '"');
    uint64_t open = block_eq(v, 0xDF, '['), close = block_eq(v, 0xDF, ']');
    uint64_t in = q; /* bit i: odd count of quotes in 0..i, opening ones included */
    for (int sh = 1; sh < 64; sh <<= 1)
        in ^= in << sh;
    if (k->in_str)
        in = ~in;
    k->in_str = in >> 63;
    for (uint64_t m = (open | close) & ~in; m; m &= m - 1) {
        int i = __builtin_ctzll(m);
        if (open >> i & 1)
            k->depth++;
        else if (--k->depth == 0)
            return pos + (size_t)i + 1;
    }
    return pos + 64;
}
#endif

/* Past the container whose opening bracket is b[pos], in text already
 * known to be valid JSON: only quotes, backslashes and brackets count. */
static size_t skim_container(const char *b, size_t pos, size_t end)
{
    struct skim k = {0, false, false};
#ifdef NDJSON_SSE2
    while (end - pos >= 64) {
        size_t next = skim_block(&k, b, pos);
        if (k.depth == 0)
            return next;
        pos = next;
    }
#endif
    return skim_bytes(&k, b, pos, end);
}

/* End of the value starting at b[pos], in text already known to be valid
 * JSON. A scalar ends at the first byte that cannot be part of it. */
static size_t skim_value(const char *b, size_t pos, size_t end)
{
    char c = b[pos];
    if (c == '{' || c == '[')
        return skim_container(b, pos, end);
    if (c == '"') {
        for (pos++; pos < end && b[pos] != '"'; pos++)
            if (b[pos] == '\\')
                pos++;
        return pos < end ? pos + 1 : end;
    }
    while (pos < end && b[pos] != ',' && b[pos] != ']' && b[pos] != '}' &&
           !pipe__json_is_ws((unsigned char)b[pos]))
        pos++;
    return pos;
}

struct wrapper_probe {
    const char *events; /* the last "events" member's value if an array */
    size_t events_len;
    bool has_event;
};

static bool key_is(const struct pipe_json_member *m, const char *name, size_t n)
{
    char tmp[64];
    if (!m->key_escaped)
        return m->key_len == n && memcmp(m->key, name, n) == 0;
    if (m->key_len > sizeof tmp || pipe_json_unescape(m->key, m->key_len, NULL) != n)
        return false;
    pipe_json_unescape(m->key, m->key_len, tmp);
    return memcmp(tmp, name, n) == 0;
}

static bool probe_member(void *arg, const struct pipe_json_member *m)
{
    struct wrapper_probe *w = arg;
    if (key_is(m, "events", 6)) {
        w->events = m->type == PIPE_JSON_ARRAY ? m->value : NULL;
        w->events_len = m->value_len;
    } else if (key_is(m, "event", 5)) {
        w->has_event = true;
    }
    return false;
}

/* Validates body[from..len) as one lenient JSON value with no output,
 * noting a wrapper's "events" array. Offsets in res are of the body. */
static int check_whole(const char *body, size_t len, size_t from, unsigned flags,
                       struct wrapper_probe *w, struct pipe_json_result *res)
{
    struct pipe_json_opts o = {PIPE_JSON_DEPTH_LIMIT, PIPE_JSON_LENIENT | flags, probe_member, w};
    int rc = pipe_json_scan(body + from, len - from, &o, NULL, res);
    res->offset += from;
    res->end += from;
    return rc;
}

static int body_fail(struct pipe_json_result *res, size_t at, const char *what)
{
    memset(res, 0, sizeof *res);
    res->err = PIPE_JSON_ESYNTAX;
    res->offset = at;
    res->what = what;
    return PIPE_EPARSE;
}

int pipe_body_iter_init(struct pipe_body_iter *it, const char *body, size_t len,
                        enum pipe_body_form hint, size_t max_record, struct pipe_json_result *res)
{
    struct wrapper_probe w = {NULL, 0, false};
    size_t pos = len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    size_t first = skip_ws(body, pos, len);
    int rc = 0;

    memset(res, 0, sizeof *res);
    res->what = "";
    memset(it, 0, sizeof *it);
    it->body = body;
    it->len = it->end = len;
    it->max_record = max_record ? max_record : SIZE_MAX;
    it->form = hint;
    it->pos = first;
    if (first == len) {
        it->form = hint == PIPE_BODY_AUTO ? PIPE_BODY_NDJSON : hint;
        it->done = true;
        return 0;
    }
    if (hint == PIPE_BODY_AUTO && body[first] == '[') {
        it->form = PIPE_BODY_ARRAY;
    } else if (hint == PIPE_BODY_AUTO && body[first] == '{') {
        /* Only the first value is scanned here, so an NDJSON body costs one
         * line; a wrapper or single object is validated once, here. */
        struct pipe_json_result r;
        it->form = PIPE_BODY_NDJSON;
        if (check_whole(body, len, first, PIPE_JSON_PREFIX, &w, &r) == 0 && r.end == len)
            it->form = w.events && !w.has_event ? PIPE_BODY_WRAPPER : PIPE_BODY_SINGLE;
        if (it->form == PIPE_BODY_WRAPPER)
            goto wrapper;
        return 0;
    } else if (hint == PIPE_BODY_AUTO) {
        it->form = PIPE_BODY_NDJSON;
    }

    switch (it->form) {
    case PIPE_BODY_ARRAY:
        if ((rc = check_whole(body, len, first, 0, &w, res)) < 0)
            goto out;
        if (res->type != PIPE_JSON_ARRAY)
            rc = body_fail(res, first, "expected a JSON array");
        it->pos = first + 1;
        break;
    case PIPE_BODY_WRAPPER:
        if ((rc = check_whole(body, len, first, 0, &w, res)) < 0)
            goto out;
        if (res->type != PIPE_JSON_OBJECT || !w.events) {
            rc = body_fail(res, first, "expected an object with an \"events\" array");
            goto out;
        }
    wrapper:
        it->form = PIPE_BODY_WRAPPER;
        it->pos = (size_t)(w.events - body) + 1;
        it->end = (size_t)(w.events - body) + w.events_len;
        break;
    default:
        break;
    }
out:
    if (rc < 0)
        it->done = true;
    return rc;
}

static bool next_line(struct pipe_body_iter *it, struct pipe_body_record *rec)
{
    const char *b = it->body;
    while (it->pos < it->end) {
        size_t start = it->pos;
        const char *nl = memchr(b + start, '\n', it->end - start);
        size_t stop = nl ? (size_t)(nl - b) : it->end;
        it->pos = nl ? stop + 1 : it->end;
        if (stop > start && b[stop - 1] == '\r')
            stop--;
        if (skip_ws(b, start, stop) == stop)
            continue;
        rec->data = b + start;
        rec->len = stop - start;
        rec->offset = start;
        rec->index = it->index++;
        rec->err = rec->len > it->max_record ? PIPE_JSON_ETOOLARGE : PIPE_JSON_OK;
        return true;
    }
    return false;
}

bool pipe_body_iter_next(struct pipe_body_iter *it, struct pipe_body_record *rec)
{
    if (it->done)
        return false;
    if (it->form == PIPE_BODY_NDJSON)
        return next_line(it, rec);

    size_t start = it->pos, stop;
    if (it->form == PIPE_BODY_SINGLE) {
        stop = it->end;
        while (stop > start && pipe__json_is_ws((unsigned char)it->body[stop - 1]))
            stop--;
        it->done = true;
    } else {
        /* Array or wrapper: validated in init, so skimming is enough. */
        start = skip_ws(it->body, start, it->end);
        if (start >= it->end || it->body[start] == ']') {
            it->done = true;
            return false;
        }
        stop = skim_value(it->body, start, it->end);
        size_t next = skip_ws(it->body, stop, it->end);
        it->pos = next < it->end && it->body[next] == ',' ? next + 1 : next;
    }
    rec->data = it->body + start;
    rec->len = stop - start;
    rec->offset = start;
    rec->index = it->index++;
    rec->err = rec->len > it->max_record ? PIPE_JSON_ETOOLARGE : PIPE_JSON_OK;
    return true;
}
