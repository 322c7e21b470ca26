/* filter_segment — the Segment / RudderStack HTTP tracking API, translated
 * into sluice's native events (docs/clients.md has the mapping table).
 *
 * A request body ({"batch": [...]} or one message) becomes NDJSON text of
 * native events, which the filter then validates exactly as a native body
 * (envelope, schema, redaction, rejection reasons, de-duplication). The
 * translation builds no DOM: the ndjson scanner hands out each member's raw
 * bytes, which are copied through untouched (numbers keep their digits).
 * A batch body as the SDKs send it is read in one pass (walk_body): each
 * message is checked and translated where the walk meets it; any other
 * body is checked whole first (translate_general), which also says why a
 * body is refused. */
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "stages/filter/filter.h"

/* The call types, in the order of enum filter_call. */
static const char *const call_names[] = {"",       "track", "identify", "page",
                                         "screen", "group", "alias"};

static const struct {
    const char *path;
    enum filter_call call;
} routes[] = {
    {"/v1/batch", FILTER_CALL_BATCH},       {"/v1/import", FILTER_CALL_BATCH},
    {"/v1/b", FILTER_CALL_BATCH},           {"/beacon/v1/batch", FILTER_CALL_BATCH},
    {"/v1/track", FILTER_CALL_TRACK},       {"/v1/t", FILTER_CALL_TRACK},
    {"/v1/identify", FILTER_CALL_IDENTIFY}, {"/v1/i", FILTER_CALL_IDENTIFY},
    {"/v1/page", FILTER_CALL_PAGE},         {"/v1/p", FILTER_CALL_PAGE},
    {"/v1/screen", FILTER_CALL_SCREEN},     {"/v1/s", FILTER_CALL_SCREEN},
    {"/v1/group", FILTER_CALL_GROUP},       {"/v1/g", FILTER_CALL_GROUP},
    {"/v1/alias", FILTER_CALL_ALIAS},       {"/v1/a", FILTER_CALL_ALIAS},
    {"/pixel/v1/track", FILTER_CALL_TRACK}, {"/pixel/v1/page", FILTER_CALL_PAGE},
};

int filter_segment_route(const char *path, enum filter_call *call, bool *pixel)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) == 0) {
            *call = routes[i].call;
            *pixel = strncmp(path, "/pixel/", 7) == 0;
            return 1;
        }
    }
    return 0;
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}
static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The go-snakecase rule Segment's warehouses name tables with: a name that
 * is already lowercase words joined by single underscores stays; otherwise
 * every run of non-alphanumeric bytes separates words, a word is a run of
 * capitals/digits then a run of lowercase/digits, words are lowercased and
 * joined by '_'. Bytes outside ASCII are dropped. */
size_t filter_snake_case(const char *s, size_t n, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n && (is_lower(s[i]) || is_digit(s[i]) ||
                     (s[i] == '_' && i + 1 < n && (is_lower(s[i + 1]) || is_digit(s[i + 1])))))
        i++;
    if (i == n) {
        size_t k = n < cap ? n : cap;
        memcpy(out, s, k);
        return k;
    }
    if (i > 0 && is_digit(s[i - 1]))
        i--; /* a digit before a capital starts the capital's word */
    for (o = 0; o < i && o < cap; o++)
        out[o] = s[o];
    while (i < n && o < cap) {
        if (!is_lower(s[i]) && !is_upper(s[i]) && !is_digit(s[i])) {
            i++;
            continue;
        }
        if (o > 0)
            out[o++] = '_';
        for (; i < n && o < cap && (is_upper(s[i]) || is_digit(s[i])); i++)
            out[o++] = is_upper(s[i]) ? (char)(s[i] - 'A' + 'a') : s[i];
        while (i < n && o < cap && (is_lower(s[i]) || is_digit(s[i])))
            out[o++] = s[i++];
    }
    return o;
}

/* The members of a message the translation looks at, sorted by length:
 * every member of every message is looked up here, mostly in vain. */
enum seg_key {
    SEG_OTHER = 0,
    SEG_ID,
    SEG_TS,
    SEG_TYPE,
    SEG_EVENT,
    SEG_SENT_AT,
    SEG_CHANNEL,
    SEG_WRITE_KEY,
    SEG_MESSAGE_ID,
    SEG_TIMESTAMP,
    SEG_RECEIVED_AT,
    SEG_ORIGINAL_TS,
};

static const struct {
    const char *name;
    size_t len;
    enum seg_key key;
} seg_keys[] = {
    {"id", 2, SEG_ID},
    {"ts", 2, SEG_TS},
    {"type", 4, SEG_TYPE},
    {"event", 5, SEG_EVENT},
    {"sentAt", 6, SEG_SENT_AT},
    {"channel", 7, SEG_CHANNEL},
    {"writeKey", 8, SEG_WRITE_KEY},
    {"messageId", 9, SEG_MESSAGE_ID},
    {"timestamp", 9, SEG_TIMESTAMP},
    {"received_at", 11, SEG_RECEIVED_AT},
    {"originalTimestamp", 17, SEG_ORIGINAL_TS},
};

/* key_of — which of seg_keys m's key is. An escaped key is never one of
 * them (as filter_json_key_is has it). */
static enum seg_key key_of(const struct pipe_json_member *m)
{
    if (m->key == NULL || m->key_escaped)
        return SEG_OTHER;
    for (size_t i = 0; i < sizeof seg_keys / sizeof seg_keys[0] && seg_keys[i].len <= m->key_len;
         i++)
        if (seg_keys[i].len == m->key_len && memcmp(m->key, seg_keys[i].name, m->key_len) == 0)
            return seg_keys[i].key;
    return SEG_OTHER;
}

/* What the scan of one message collects. Values are copied out during the
 * scan (the scanner's pointers move as its output grows). */
struct seg_msg {
    char type[16];
    char name[PIPE_EVENT_TYPE_MAX + 1]; /* the track's event, snake_cased */
    size_t name_len;
    bool has_name;
    char client_ts[40], sent_at[40];
    char timestamp[40];
    struct pipe_buf *moved; /* members renamed or re-homed, as ,"key":value */
};

/* What the translation of a whole body keeps: where it writes, and what
 * the body's top level said. */
struct seg_body {
    struct filter_xlate *x;
    struct pipe_buf *out, *scratch, *moved;
    size_t start;                  /* out->len before the first message */
    struct filter_json_span batch; /* inside the body */
    char sent_at[40];              /* the body's sentAt (the last one, as JSON parsers read it) */
    char probe[40];                /* a sentAt read from the body's end, before the walk */
    char used[40];                 /* the sentAt the batch's messages were translated with */
    bool sent_ok;                  /* x->sent_at parsed into sent_ms */
    int64_t sent_ms;
    int rc;
};

/* move — keeps member m under a new key in the moved buffer. */
static bool move(struct seg_msg *sm, const char *newkey, const struct pipe_json_member *m)
{
    /* appends, not printf: this runs for several members of every message */
    pipe_buf_append(sm->moved, ",\"", 2);
    pipe_buf_append_str(sm->moved, newkey);
    pipe_buf_append(sm->moved, "\":", 2);
    pipe_buf_append(sm->moved, m->value, m->value_len);
    return true; /* dropped from the message's own text */
}

/* The track's name: kept whole as original_event, and snake_cased into
 * the envelope's event. */
static bool on_event_name(struct seg_msg *sm, const struct pipe_json_member *m)
{
    char raw[512];
    if (m->type == PIPE_JSON_STRING && m->value_len - 2 < sizeof raw) {
        size_t n = pipe_json_unescape(m->value + 1, m->value_len - 2, raw);
        sm->name_len = filter_snake_case(raw, n, sm->name, sizeof sm->name - 1);
        sm->name[sm->name_len] = '\0';
        sm->has_name = true;
    }
    return move(sm, "original_event", m);
}

static bool on_msg_member(void *arg, const struct pipe_json_member *m)
{
    struct seg_msg *sm = arg;
    switch (key_of(m)) {
    case SEG_TYPE:
        if (!filter_json_string_copy(m, sm->type, sizeof sm->type))
            sm->type[0] = '\0';
        return false;
    case SEG_EVENT:
        return on_event_name(sm, m);
    case SEG_MESSAGE_ID:
        move(sm, "id", m); /* and kept as it is: the id is also the client's data */
        return false;
    case SEG_ORIGINAL_TS:
        filter_json_string_copy(m, sm->client_ts, sizeof sm->client_ts);
        return false;
    case SEG_TIMESTAMP:
        filter_json_string_copy(m, sm->timestamp, sizeof sm->timestamp);
        return false;
    case SEG_SENT_AT:
        filter_json_string_copy(m, sm->sent_at, sizeof sm->sent_at);
        return false;
    case SEG_ID:
        return move(sm, "original_id", m);
    case SEG_TS:
        return move(sm, "original_ts", m);
    case SEG_CHANNEL:
        return move(sm, "original_channel", m);
    case SEG_RECEIVED_AT:
        return move(sm, "original_received_at", m);
    case SEG_WRITE_KEY:
        return true; /* a credential: never stored */
    default:
        return false;
    }
}

/* batch_sent — s (or NULL) is the batch's sentAt from now on; parsed once
 * here, not once per message. */
static void batch_sent(struct seg_body *sb, const char *s)
{
    sb->x->sent_at = s;
    sb->sent_ok = s && s[0] && pipe_clock_parse_rfc3339(s, strlen(s), &sb->sent_ms) == 0;
}

/* event_time — the envelope's ts: the client's time (originalTimestamp,
 * else timestamp) moved by the clock skew the sentAt of the message or the
 * batch reveals: ts = received + (client - sentAt), Segment's rule. Without
 * sentAt the client's time as sent; "" when there is none. */
static void event_time(const struct seg_msg *sm, const struct seg_body *sb, char *out, size_t cap)
{
    const char *client = sm->client_ts[0] ? sm->client_ts : sm->timestamp;
    int64_t c, s = sb->sent_ms;
    bool sent = sb->sent_ok;
    out[0] = '\0';
    if (client[0] == '\0')
        return;
    if (sm->sent_at[0]) /* the message's own sentAt wins over the batch's */
        sent = pipe_clock_parse_rfc3339(sm->sent_at, strlen(sm->sent_at), &s) == 0;
    if (sent && pipe_clock_parse_rfc3339(client, strlen(client), &c) == 0) {
        int64_t t = sb->x->received_ms + (c - s);
        if (t >= 0 && t <= PIPE_EVENT_TS_MAX) {
            pipe_clock_format_rfc3339(t, out);
            return;
        }
    }
    snprintf(out, cap, "%s", client); /* the envelope judges it */
}

/* envelope_head — the event's '{', its event (the track's snake_cased
 * name or the call type) and its ts. A message of no known type, or a
 * track without a name, gets no event and is rejected as missing_event.
 * *first says nothing follows the '{' yet. */
static int envelope_head(const struct seg_msg *sm, const char *type, const char *ts,
                         struct pipe_buf *out, bool *first)
{
    int rc = pipe_buf_append_char(out, '{');
    const char *ev = NULL;
    if (strcmp(type, "track") == 0)
        ev = sm->has_name ? sm->name : NULL;
    else
        for (int c = FILTER_CALL_IDENTIFY; c <= FILTER_CALL_ALIAS; c++)
            if (strcmp(type, call_names[c]) == 0)
                ev = call_names[c];
    *first = true;
    if (rc == 0 && ev) {
        /* snake_case output holds only [a-z0-9_]: no escaping needed */
        rc = pipe_buf_append_str(out, "\"event\":\"");
        if (rc == 0)
            rc = pipe_buf_append_str(out, ev);
        if (rc == 0)
            rc = pipe_buf_append_char(out, '"');
        *first = false;
    }
    if (rc == 0 && ts[0]) {
        /* ts is the client's string unescaped, or one we formatted */
        rc = pipe_buf_append_str(out, *first ? "\"ts\":" : ",\"ts\":");
        if (rc == 0)
            rc = pipe_json_append_string(out, ts, strlen(ts));
        *first = false;
    }
    return rc;
}

/* translate_one — appends the native event of one message (raw JSON) and a
 * newline to sb->out. A message that is not an object is passed on as it
 * is, so the envelope check rejects it with its reason. With used, the
 * message is where msg starts and more may follow: *used is where it ends
 * (the whitespace after it included), and 1 is returned when it cannot be
 * scanned, so the caller reads the body the general way. */
static int translate_one(struct seg_body *sb, const char *msg, size_t len, enum filter_call call,
                         size_t *used)
{
    struct seg_msg sm = {.moved = sb->moved};
    pipe_buf_reset(sb->scratch);
    pipe_buf_reset(sb->moved);
    struct pipe_json_opts o = {
        .max_depth = sb->x->max_depth, .on_member = on_msg_member, .arg = &sm};
    if (used)
        o.flags = PIPE_JSON_PREFIX;
    struct pipe_json_result jr;
    int rc = pipe_json_scan(msg, len, &o, sb->scratch, &jr);
    if (rc == PIPE_ETOOBIG)
        return rc;
    if (used && rc < 0)
        return 1;
    if (used)
        len = *used = jr.end;
    if (rc < 0 || jr.type != PIPE_JSON_OBJECT) {
        rc = filter_xlate_verbatim(sb->out, msg, len);
        return rc ? rc : pipe_buf_append_char(sb->out, '\n');
    }
    char ts[48];
    event_time(&sm, sb, ts, sizeof ts);
    bool first;
    rc = envelope_head(&sm, call == FILTER_CALL_BATCH ? sm.type : call_names[call], ts, sb->out,
                       &first);
    if (rc == 0)
        rc = filter_xlate_tail(sb->out, first, sb->moved, sb->scratch, jr.kept);
    return rc ? rc : pipe_buf_append_char(sb->out, '\n');
}

static bool on_body_member(void *arg, const struct pipe_json_member *m)
{
    struct seg_body *sb = arg;
    if (filter_json_note_array(m, "batch", &sb->batch))
        return false;
    if (filter_json_key_is(m, "sentAt"))
        filter_json_string_copy(m, sb->sent_at, sizeof sb->sent_at);
    else if (filter_json_key_is(m, "writeKey"))
        filter_json_string_copy(m, sb->x->write_key, sizeof sb->x->write_key);
    return false;
}

static bool on_batch_element(void *arg, const struct pipe_json_member *m)
{
    struct seg_body *sb = arg;
    if (sb->rc == 0) {
        /* the scan writes no output: value points into its input */
        sb->rc = translate_one(sb, m->value, m->value_len, FILTER_CALL_BATCH, NULL);
        sb->x->n_messages++;
    }
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *b, size_t i, size_t n)
{
    while (i < n && is_ws(b[i]))
        i++;
    return i;
}

/* restart — forgets the messages translated so far. */
static void restart(struct seg_body *sb)
{
    sb->out->len = sb->start;
    if (sb->out->data)
        sb->out->data[sb->start] = '\0';
    sb->x->n_messages = 0;
}

/* walk_batch — each message of the batch array a[0..n) (a[0] is '[')
 * translated where it starts, the commas between checked: the array is
 * not scanned a second time just to find its elements. 0 with *end just
 * after the ']'; 1 when a message cannot be scanned at message depth (too
 * deep, or not JSON) or the array is malformed: the caller then reads the
 * body the general way. */
static int walk_batch(struct seg_body *sb, const char *a, size_t n, size_t *end)
{
    size_t i = skip_ws(a, 1, n);
    if (i < n && a[i] == ']') {
        *end = i + 1;
        return 0;
    }
    for (;;) {
        size_t used = 0;
        int rc = translate_one(sb, a + i, n - i, FILTER_CALL_BATCH, &used);
        if (rc != 0)
            return rc;
        sb->x->n_messages++;
        i += used;
        if (i < n && a[i] == ']') {
            *end = i + 1;
            return 0;
        }
        if (i >= n || a[i] != ',')
            return 1;
        i = skip_ws(a, i + 1, n);
    }
}

/* back_string — where the JSON string that ends at b[e - 1] (its closing
 * quote) opens, or SIZE_MAX: the nearest quote before it that an even run
 * of backslashes precedes. */
static size_t back_string(const char *b, size_t e)
{
    if (e < 2 || b[e - 1] != '"')
        return SIZE_MAX;
    for (size_t q = e - 1; q-- > 0;) {
        if (b[q] != '"')
            continue;
        size_t k = q;
        while (k > 0 && b[k - 1] == '\\')
            k--;
        if ((q - k) % 2 == 0)
            return q;
    }
    return SIZE_MAX;
}

/* probe_sent_at — the body's sentAt when it is among the string members
 * that end the body, read backwards: the SDKs send {"batch": [...],
 * "writeKey", "sentAt"}, and the batch's messages need sentAt before the
 * walk reaches it. Only a guess: the walk checks it against what it finds. */
static void probe_sent_at(const char *b, size_t n, char *dst, size_t cap)
{
    size_t e = n;
    while (e > 0 && is_ws(b[e - 1]))
        e--;
    if (e == 0 || b[--e] != '}')
        return;
    for (int members = 0; members < 8; members++) {
        while (e > 0 && is_ws(b[e - 1]))
            e--;
        size_t v = back_string(b, e), k = v;
        while (k != SIZE_MAX && k > 0 && is_ws(b[k - 1]))
            k--;
        if (k == SIZE_MAX || k == 0 || b[k - 1] != ':')
            return;
        for (k--; k > 0 && is_ws(b[k - 1]);)
            k--;
        size_t kq = back_string(b, k);
        if (kq == SIZE_MAX)
            return;
        if (k - kq == 8 && memcmp(b + kq, "\"sentAt\"", 8) == 0) {
            struct pipe_json_member m = {.value = b + v, .value_len = e - v};
            struct pipe_json_result jr;
            if (pipe_json_scan(m.value, m.value_len, NULL, NULL, &jr) == 0) {
                m.type = jr.type;
                filter_json_string_copy(&m, dst, cap);
            }
            return;
        }
        for (e = kq; e > 0 && is_ws(b[e - 1]);)
            e--;
        if (e == 0 || b[--e] != ',')
            return;
    }
}

/* body_member — the member of the body's top level whose key starts at
 * b[i]: a batch array's messages translated, any other value checked and
 * noted. 0 with *next after the value and its whitespace; 1 to read the
 * body the general way. */
static int body_member(struct seg_body *sb, const char *b, size_t n, size_t i, size_t *next)
{
    struct pipe_json_opts o = {.max_depth = 1, .flags = PIPE_JSON_PREFIX};
    struct pipe_json_result jr;
    if (i >= n || b[i] != '"' || pipe_json_scan(b + i, n - i, &o, NULL, &jr) < 0)
        return 1;
    size_t k = i + jr.end;
    struct pipe_json_member m = {.key = b + i + 1};
    while (is_ws(b[k - 1]))
        k--;
    m.key_len = k - i - 2;
    m.key_escaped = memchr(m.key, '\\', m.key_len) != NULL;
    k = i + jr.end;
    if (k >= n || b[k] != ':')
        return 1;
    size_t v = skip_ws(b, k + 1, n);
    if (v < n && b[v] == '[' && filter_json_key_is(&m, "batch")) {
        size_t end;
        restart(sb); /* the last batch is the one read, as by JSON parsers */
        snprintf(sb->used, sizeof sb->used, "%s", sb->probe[0] ? sb->probe : sb->sent_at);
        batch_sent(sb, sb->used);
        int rc = walk_batch(sb, b + v, n - v, &end);
        sb->batch = (struct filter_json_span){b + v, end, true, true};
        *next = skip_ws(b, v + end, n);
        return rc;
    }
    /* the top-level object is depth 1 of the body's limit */
    o.max_depth = PIPE_JSON_DEPTH_LIMIT - 1;
    if (pipe_json_scan(b + v, n - v, &o, NULL, &jr) < 0)
        return 1;
    m.value = b + v;
    m.type = jr.type;
    for (m.value_len = jr.end; is_ws(m.value[m.value_len - 1]);)
        m.value_len--;
    on_body_member(sb, &m);
    *next = v + jr.end;
    return 0;
}

/* walk_body — a batch body read in one pass, as the SDKs send it: the
 * members of its top level walked in place, the batch's messages
 * translated where they are met. 0, or 1 when the body is anything else
 * (not JSON, a message too deep, no batch, ...): the caller then reads it
 * the general way, which also says what is wrong. */
static int walk_body(struct seg_body *sb, const char *b, size_t n)
{
    size_t i = skip_ws(b, 0, n);
    if (i == n || b[i] != '{' || sb->x->max_depth > PIPE_JSON_DEPTH_LIMIT - 2)
        return 1;
    probe_sent_at(b, n, sb->probe, sizeof sb->probe);
    for (i = skip_ws(b, i + 1, n);; i = skip_ws(b, i + 1, n)) {
        int rc = body_member(sb, b, n, i, &i);
        if (rc != 0)
            return rc;
        if (i < n && b[i] == '}')
            break;
        if (i >= n || b[i] != ',')
            return 1;
    }
    if (skip_ws(b, i + 1, n) != n || !sb->batch.found || !sb->batch.is_array)
        return 1;
    if (strcmp(sb->used, sb->sent_at) != 0) {
        /* the guess was wrong: the messages again, with the body's sentAt */
        size_t end;
        restart(sb);
        batch_sent(sb, sb->sent_at);
        return walk_batch(sb, sb->batch.value, sb->batch.len, &end);
    }
    return 0;
}

/* translate_general — any body: checked whole first (the reason when it
 * is not JSON), then its batch's messages, or the body as one message. */
static int translate_general(struct seg_body *sb, enum filter_call call, const char *body,
                             size_t len)
{
    struct filter_xlate *x = sb->x;
    struct pipe_json_opts o = {
        .max_depth = PIPE_JSON_DEPTH_LIMIT, .on_member = on_body_member, .arg = sb};
    struct pipe_json_result jr;
    /* Pass one: the body must be a JSON object; note batch, sentAt, writeKey. */
    int rc = pipe_json_scan(body, len, &o, NULL, &jr);
    if (rc == 0 && jr.type != PIPE_JSON_OBJECT) {
        snprintf(x->msg, sizeof x->msg, "the body must be a JSON object");
        return PIPE_EPARSE;
    } else if (rc == PIPE_EPARSE) {
        snprintf(x->msg, sizeof x->msg, "the body is not JSON: %s at byte %zu", jr.what, jr.offset);
    }
    if (rc < 0)
        return rc;
    if (call != FILTER_CALL_BATCH || !sb->batch.found) {
        /* One message: a single-call path, or a batch path given one. */
        x->n_messages = 1;
        return translate_one(sb, body, len, call, NULL);
    }
    if (!sb->batch.is_array) {
        snprintf(x->msg, sizeof x->msg, "\"batch\" must be an array of messages");
        return PIPE_EPARSE;
    }
    /* Pass two: each element of the batch array becomes one event. */
    batch_sent(sb, sb->sent_at);
    size_t end;
    rc = walk_batch(sb, sb->batch.value, sb->batch.len, &end);
    if (rc != 1)
        return rc;
    restart(sb);
    o.max_depth = PIPE_JSON_DEPTH_LIMIT; /* a message too deep is rejected alone, later */
    o.on_member = on_batch_element;
    rc = pipe_json_scan(sb->batch.value, sb->batch.len, &o, NULL, &jr);
    return rc == 0 ? sb->rc : rc;
}

int filter_segment_translate(struct filter_xlate *x, enum filter_call call, const char *body,
                             size_t len, struct pipe_buf *out)
{
    struct pipe_buf scratch, moved;
    pipe_buf_init(&scratch, out->max);
    pipe_buf_init(&moved, out->max);
    struct seg_body sb = {
        .x = x, .out = out, .scratch = &scratch, .moved = &moved, .start = out->len};
    int rc = 1;
    batch_sent(&sb, NULL);
    if (call == FILTER_CALL_BATCH)
        rc = walk_body(&sb, body, len);
    if (rc != 0) {
        /* anything the one-pass walk does not take, from the start */
        restart(&sb);
        x->write_key[0] = '\0';
        sb = (struct seg_body){
            .x = x, .out = out, .scratch = &scratch, .moved = &moved, .start = out->len};
        batch_sent(&sb, NULL);
        rc = translate_general(&sb, call, body, len);
    }
    pipe_buf_cleanup(&moved);
    pipe_buf_cleanup(&scratch);
    return rc;
}
