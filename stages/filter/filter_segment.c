/* filter_segment — the Segment / RudderStack HTTP tracking API, translated
 * into sluice's native events (docs/clients.md has the mapping table).
 *
 * A request body ({"batch": [...]} or one message) becomes NDJSON text of
 * native events, which the filter then validates exactly as a native body
 * (envelope, schema, redaction, rejection reasons, de-duplication). The
 * translation builds no DOM: the ndjson scanner hands out each member's raw
 * bytes, which are copied through untouched (numbers keep their digits). */
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
    const char *batch_sent_at;
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

static bool on_msg_member(void *arg, const struct pipe_json_member *m)
{
    struct seg_msg *sm = arg;
    if (filter_json_key_is(m, "type")) {
        if (!filter_json_string_copy(m, sm->type, sizeof sm->type))
            sm->type[0] = '\0';
        return false;
    }
    if (filter_json_key_is(m, "event")) {
        /* The track's name: kept whole as original_event, and snake_cased
         * into the envelope's event. */
        char raw[512];
        if (m->type == PIPE_JSON_STRING && m->value_len - 2 < sizeof raw) {
            size_t n = pipe_json_unescape(m->value + 1, m->value_len - 2, raw);
            sm->name_len = filter_snake_case(raw, n, sm->name, sizeof sm->name - 1);
            sm->name[sm->name_len] = '\0';
            sm->has_name = true;
        }
        return move(sm, "original_event", m);
    }
    if (filter_json_key_is(m, "messageId")) {
        move(sm, "id", m); /* and kept as it is: the id is also the client's data */
        return false;
    }
    if (filter_json_key_is(m, "originalTimestamp"))
        filter_json_string_copy(m, sm->client_ts, sizeof sm->client_ts);
    else if (filter_json_key_is(m, "timestamp"))
        filter_json_string_copy(m, sm->timestamp, sizeof sm->timestamp);
    else if (filter_json_key_is(m, "sentAt"))
        filter_json_string_copy(m, sm->sent_at, sizeof sm->sent_at);
    else if (filter_json_key_is(m, "id"))
        return move(sm, "original_id", m);
    else if (filter_json_key_is(m, "ts"))
        return move(sm, "original_ts", m);
    else if (filter_json_key_is(m, "channel"))
        return move(sm, "original_channel", m);
    else if (filter_json_key_is(m, "received_at"))
        return move(sm, "original_received_at", m);
    else if (filter_json_key_is(m, "writeKey"))
        return true; /* a credential: never stored */
    return false;
}

/* event_time — the envelope's ts: the client's time (originalTimestamp,
 * else timestamp) moved by the clock skew the sentAt of the message or the
 * batch reveals: ts = received + (client - sentAt), Segment's rule. Without
 * sentAt the client's time as sent; "" when there is none. */
static void event_time(const struct seg_msg *sm, int64_t received_ms, char *out, size_t cap)
{
    const char *client = sm->client_ts[0] ? sm->client_ts : sm->timestamp;
    const char *sent = sm->sent_at[0] ? sm->sent_at : sm->batch_sent_at;
    int64_t c, s;
    out[0] = '\0';
    if (client[0] == '\0')
        return;
    if (sent && sent[0] && pipe_clock_parse_rfc3339(client, strlen(client), &c) == 0 &&
        pipe_clock_parse_rfc3339(sent, strlen(sent), &s) == 0) {
        int64_t t = received_ms + (c - s);
        if (t >= 0 && t <= PIPE_EVENT_TS_MAX) {
            pipe_clock_format_rfc3339(t, out);
            return;
        }
    }
    snprintf(out, cap, "%s", client); /* the envelope judges it */
}

/* translate_one — appends the native event of one message (raw JSON) and a
 * newline to out. A message that is not an object is passed on as it is,
 * so the envelope check rejects it with its reason. */
static int translate_one(const char *msg, size_t len, enum filter_call call,
                         const struct filter_xlate *x, struct pipe_buf *scratch,
                         struct pipe_buf *moved, struct pipe_buf *out, size_t *used)
{
    struct seg_msg sm = {.moved = moved, .batch_sent_at = x->sent_at};
    pipe_buf_reset(scratch);
    pipe_buf_reset(moved);
    struct pipe_json_opts o = {.max_depth = x->max_depth, .on_member = on_msg_member, .arg = &sm};
    if (used)
        o.flags = PIPE_JSON_PREFIX; /* the message is where msg starts; more follows */
    struct pipe_json_result jr;
    int rc = pipe_json_scan(msg, len, &o, scratch, &jr);
    if (rc == PIPE_ETOOBIG)
        return rc;
    if (used && rc < 0)
        return 1; /* where it ends is unknown: the caller finds out another way */
    if (used)
        len = *used = jr.end;
    if (rc < 0 || jr.type != PIPE_JSON_OBJECT) {
        rc = filter_xlate_verbatim(out, msg, len);
        return rc ? rc : pipe_buf_append_char(out, '\n');
    }
    const char *type = call == FILTER_CALL_BATCH ? sm.type : call_names[call];
    char ts[48];
    event_time(&sm, x->received_ms, ts, sizeof ts);
    rc = pipe_buf_append_char(out, '{');
    /* The envelope's event: the track's snake_cased name or the call type.
     * A message of no known type, or a track without a name, gets none and
     * is rejected as missing_event. */
    const char *ev = NULL;
    if (strcmp(type, "track") == 0)
        ev = sm.has_name ? sm.name : NULL;
    else
        for (int c = FILTER_CALL_IDENTIFY; c <= FILTER_CALL_ALIAS; c++)
            if (strcmp(type, call_names[c]) == 0)
                ev = call_names[c];
    bool first = true;
    if (rc == 0 && ev) {
        /* snake_case output holds only [a-z0-9_]: no escaping needed */
        rc = pipe_buf_append_str(out, "\"event\":\"");
        if (rc == 0)
            rc = pipe_buf_append_str(out, ev);
        if (rc == 0)
            rc = pipe_buf_append_char(out, '"');
        first = false;
    }
    if (rc == 0 && ts[0]) {
        /* ts is the client's string unescaped, or one we formatted */
        rc = pipe_buf_append_str(out, first ? "\"ts\":" : ",\"ts\":");
        if (rc == 0)
            rc = pipe_json_append_string(out, ts, strlen(ts));
        first = false;
    }
    if (rc == 0)
        rc = filter_xlate_tail(out, first, moved, scratch, jr.kept);
    return rc ? rc : pipe_buf_append_char(out, '\n');
}

/* What the scan of a whole body collects. */
struct seg_body {
    struct filter_xlate *x;
    enum filter_call call;
    struct pipe_buf *out, *scratch, *moved;
    struct filter_json_span batch; /* inside the body */
    char sent_at[40];
    int rc;
};

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
        sb->rc = translate_one(m->value, m->value_len, FILTER_CALL_BATCH, sb->x, sb->scratch,
                               sb->moved, sb->out, NULL);
        sb->x->n_messages++;
    }
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* walk_batch — each message of the batch array a (n bytes, validated as
 * part of the whole body) translated where it starts, the commas between
 * skipped: the array is not scanned a second time just to find its
 * elements. 1 when a message cannot be scanned at message depth (too
 * deep): the caller then walks the array with the scanner. */
static int walk_batch(struct seg_body *sb, const char *a, size_t n)
{
    size_t i = 1; /* after '[' */
    for (;;) {
        while (i < n && is_ws(a[i]))
            i++;
        if (i >= n || a[i] == ']')
            return 0;
        size_t used = 0;
        int rc = translate_one(a + i, n - i, FILTER_CALL_BATCH, sb->x, sb->scratch, sb->moved,
                               sb->out, &used);
        if (rc != 0)
            return rc;
        sb->x->n_messages++;
        i += used;
        while (i < n && is_ws(a[i]))
            i++;
        if (i < n && a[i] == ',')
            i++;
    }
}

int filter_segment_translate(struct filter_xlate *x, enum filter_call call, const char *body,
                             size_t len, struct pipe_buf *out)
{
    struct pipe_buf scratch, moved;
    pipe_buf_init(&scratch, out->max);
    pipe_buf_init(&moved, out->max);
    struct seg_body sb = {.x = x, .call = call, .out = out, .scratch = &scratch, .moved = &moved};
    struct pipe_json_opts o = {
        .max_depth = PIPE_JSON_DEPTH_LIMIT, .on_member = on_body_member, .arg = &sb};
    struct pipe_json_result jr;
    /* Pass one: the body must be a JSON object; note batch, sentAt, writeKey. */
    int rc = pipe_json_scan(body, len, &o, NULL, &jr);
    if (rc == 0 && jr.type != PIPE_JSON_OBJECT) {
        snprintf(x->msg, sizeof x->msg, "the body must be a JSON object");
        rc = PIPE_EPARSE;
    } else if (rc == PIPE_EPARSE) {
        snprintf(x->msg, sizeof x->msg, "the body is not JSON: %s at byte %zu", jr.what, jr.offset);
    }
    if (rc < 0)
        goto out;
    if (call != FILTER_CALL_BATCH || !sb.batch.found) {
        /* One message: a single-call path, or a batch path given one. */
        x->n_messages = 1;
        rc = translate_one(body, len, call, x, &scratch, &moved, out, NULL);
        goto out;
    }
    if (!sb.batch.is_array) {
        snprintf(x->msg, sizeof x->msg, "\"batch\" must be an array of messages");
        rc = PIPE_EPARSE;
        goto out;
    }
    /* Pass two: each element of the batch array becomes one event. */
    x->sent_at = sb.sent_at;
    size_t start = out->len;
    rc = walk_batch(&sb, sb.batch.value, sb.batch.len);
    if (rc != 1)
        goto out;
    out->len = start;
    if (out->data)
        out->data[start] = '\0';
    x->n_messages = 0;
    o.max_depth = PIPE_JSON_DEPTH_LIMIT; /* a message too deep is rejected alone, later */
    o.on_member = on_batch_element;
    rc = pipe_json_scan(sb.batch.value, sb.batch.len, &o, NULL, &jr);
    if (rc == 0)
        rc = sb.rc;
out:
    pipe_buf_cleanup(&moved);
    pipe_buf_cleanup(&scratch);
    return rc;
}
