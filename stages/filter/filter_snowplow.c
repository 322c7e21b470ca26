/* filter_snowplow — the Snowplow tracker protocol (tp2 POST and the GET
 * pixel), translated into sluice's native events (docs/clients.md).
 *
 * Each tracker payload (an object of string parameters) becomes one native
 * event: e/eid/dtm give the envelope, every parameter is kept, and the
 * self-describing event and contexts are decoded from base64 (ue_px, cx) or
 * taken as they are (ue_pr, co) and kept as JSON under ue_pr and co. */
#include <jansson.h>
#include <sodium.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "stages/filter/filter.h"

/* What the scan of one payload collects; values are copied during the scan. */
struct sp_payload {
    const struct filter_xlate *x;
    char e[8];
    char dtm[24], stm[24];
    struct pipe_buf *moved; /* members written back renamed or decoded */
    struct pipe_buf *ue;    /* the self-describing event, decoded JSON */
    const char *error;      /* why a payload could not be translated */
};

/* decode_json — the JSON text a ue_px/cx (base64: url-safe or standard,
 * padded or not) or ue_pr/co (plain) member carries, validated and
 * compacted into dst. false when it is not a string, not base64 or not
 * JSON. */
static bool decode_json(const struct pipe_json_member *m, bool b64, int max_depth,
                        struct pipe_buf *dst)
{
    if (m->type != PIPE_JSON_STRING)
        return false;
    size_t raw_len = m->value_len - 2;
    char *text = pipe_malloc(raw_len + 1);
    size_t n = pipe_json_unescape(m->value + 1, raw_len, text);
    bool ok = true;
    if (b64) {
        static const int variants[] = {
            sodium_base64_VARIANT_URLSAFE_NO_PADDING, sodium_base64_VARIANT_URLSAFE,
            sodium_base64_VARIANT_ORIGINAL_NO_PADDING, sodium_base64_VARIANT_ORIGINAL};
        unsigned char *bin = pipe_malloc(n + 1);
        size_t bin_len = 0;
        ok = false;
        for (size_t v = 0; v < 4 && !ok; v++)
            ok = sodium_base642bin(bin, n + 1, text, n, NULL, &bin_len, NULL, variants[v]) == 0;
        if (ok) {
            memcpy(text, bin, bin_len);
            n = bin_len;
        }
        pipe_free(bin);
    }
    struct pipe_json_opts o = {.max_depth = max_depth};
    struct pipe_json_result jr;
    if (ok)
        ok = pipe_json_scan(text, n, &o, dst, &jr) == 0;
    pipe_free(text);
    return ok;
}

static bool on_param(void *arg, const struct pipe_json_member *m)
{
    struct sp_payload *sp = arg;
    if (filter_json_key_is(m, "e")) {
        filter_json_string_copy(m, sp->e, sizeof sp->e);
    } else if (filter_json_key_is(m, "dtm")) {
        filter_json_string_copy(m, sp->dtm, sizeof sp->dtm);
    } else if (filter_json_key_is(m, "stm")) {
        filter_json_string_copy(m, sp->stm, sizeof sp->stm);
    } else if (filter_json_key_is(m, "eid")) {
        pipe_buf_append_str(sp->moved, ",\"id\":");
        pipe_buf_append(sp->moved, m->value, m->value_len);
    } else if (filter_json_key_is(m, "ue_pr") || filter_json_key_is(m, "ue_px")) {
        /* ue_px is base64, ue_pr plain; on failure the member stays as sent */
        pipe_buf_reset(sp->ue);
        if (decode_json(m, m->key[4] == 'x', sp->x->max_depth, sp->ue))
            return true;
        sp->error = "ue_px/ue_pr is not (base64 of) JSON";
        return false;
    } else if (filter_json_key_is(m, "co") || filter_json_key_is(m, "cx")) {
        size_t at = sp->moved->len;
        pipe_buf_append_str(sp->moved, ",\"co\":");
        if (decode_json(m, m->key[1] == 'x', sp->x->max_depth, sp->moved))
            return true;
        sp->moved->len = at;
        sp->error = "cx/co is not (base64 of) JSON";
        return false;
    } else if (filter_json_key_is(m, "event") || filter_json_key_is(m, "id") ||
               filter_json_key_is(m, "ts") || filter_json_key_is(m, "channel") ||
               filter_json_key_is(m, "received_at")) {
        pipe_buf_printf(sp->moved, ",\"original_%.*s\":", (int)m->key_len, m->key);
        pipe_buf_append(sp->moved, m->value, m->value_len);
        return true;
    }
    return false;
}

/* ue_name — the event type of a self-describing event: the name part of
 * its inner schema URI (iglu:vendor/NAME/format/version), snake_cased. */
static size_t ue_name(const struct pipe_buf *ue, char *out, size_t cap)
{
    json_t *root = json_loadb(ue->data, ue->len, 0, NULL);
    const char *uri = json_string_value(json_object_get(json_object_get(root, "data"), "schema"));
    size_t n = 0;
    const char *a = uri ? strchr(uri, '/') : NULL;
    const char *b = a ? strchr(a + 1, '/') : NULL;
    if (b)
        n = filter_snake_case(a + 1, (size_t)(b - a - 1), out, cap);
    json_decref(root);
    return n;
}

static bool all_digits(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* event_name — page_view, page_ping, struct, transaction,
 * transaction_item, or the self-describing event's schema name. */
static size_t event_name(const struct sp_payload *sp, char *out, size_t cap)
{
    static const struct {
        const char *e, *name;
    } names[] = {{"pv", "page_view"},   {"pp", "page_ping"},        {"se", "struct"},
                 {"tr", "transaction"}, {"ti", "transaction_item"}, {"ad", "ad_impression"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(sp->e, names[i].e) == 0)
            return (size_t)snprintf(out, cap, "%s", names[i].name);
    if (strcmp(sp->e, "ue") == 0 && sp->ue->len)
        return ue_name(sp->ue, out, cap);
    return 0;
}

int filter_snowplow_payload(const struct filter_xlate *x, const char *p, size_t len,
                            struct pipe_buf *out)
{
    struct pipe_buf scratch, moved, ue;
    pipe_buf_init(&scratch, out->max);
    pipe_buf_init(&moved, out->max);
    pipe_buf_init(&ue, out->max);
    struct sp_payload sp = {.x = x, .moved = &moved, .ue = &ue};
    struct pipe_json_opts o = {.max_depth = x->max_depth, .on_member = on_param, .arg = &sp};
    struct pipe_json_result jr;
    int rc = pipe_json_scan(p, len, &o, &scratch, &jr);
    if (rc == PIPE_ETOOBIG)
        goto out;
    if (rc < 0 || jr.type != PIPE_JSON_OBJECT) {
        /* passed on as it is: the envelope check says what is wrong */
        rc = filter_xlate_verbatim(out, p, len);
        goto nl;
    }
    char name[PIPE_EVENT_TYPE_MAX + 1];
    size_t nl = sp.error ? 0 : event_name(&sp, name, sizeof name);
    rc = pipe_buf_append_char(out, '{');
    bool first = true;
    if (rc == 0 && nl) {
        rc = pipe_buf_printf(out, "\"event\":\"%.*s\"", (int)nl, name);
        first = false;
    }
    if (rc == 0 && sp.error) {
        /* no event type: rejected as missing_event, with the cause beside it */
        rc = pipe_buf_printf(out, "\"translate_error\":\"%s\"", sp.error);
        first = false;
    }
    if (rc == 0 && all_digits(sp.dtm)) {
        int64_t ts = strtoll(sp.dtm, NULL, 10);
        /* Snowplow's derived time: the device clock's skew removed, as
         * collector time - (sent - created). */
        if (all_digits(sp.stm))
            ts = x->received_ms + (ts - strtoll(sp.stm, NULL, 10));
        if (ts >= 0 && ts <= PIPE_EVENT_TS_MAX) {
            rc = pipe_buf_printf(out, "%s\"ts\":%lld", first ? "" : ",", (long long)ts);
            first = false;
        }
    }
    if (rc == 0 && ue.len) {
        rc = pipe_buf_printf(out, "%s\"ue_pr\":", first ? "" : ",");
        if (rc == 0)
            rc = pipe_buf_append(out, ue.data, ue.len);
        first = false;
    }
    if (rc == 0)
        rc = filter_xlate_tail(out, first, &moved, &scratch, jr.kept);
nl:
    if (rc == 0)
        rc = pipe_buf_append_char(out, '\n');
out:
    pipe_buf_cleanup(&ue);
    pipe_buf_cleanup(&moved);
    pipe_buf_cleanup(&scratch);
    return rc;
}

struct sp_body {
    struct filter_xlate *x;
    struct pipe_buf *out;
    struct filter_json_span data; /* inside the body */
    int rc;
};

static bool on_body_member(void *arg, const struct pipe_json_member *m)
{
    filter_json_note_array(m, "data", &((struct sp_body *)arg)->data);
    return false;
}

static bool on_payload(void *arg, const struct pipe_json_member *m)
{
    struct sp_body *b = arg;
    if (b->rc == 0) {
        b->rc = filter_snowplow_payload(b->x, m->value, m->value_len, b->out);
        b->x->n_messages++;
    }
    return false;
}

int filter_snowplow_translate(struct filter_xlate *x, const char *body, size_t len,
                              struct pipe_buf *out)
{
    struct sp_body b = {.x = x, .out = out};
    struct pipe_json_opts o = {
        .max_depth = PIPE_JSON_DEPTH_LIMIT, .on_member = on_body_member, .arg = &b};
    struct pipe_json_result jr;
    int rc = pipe_json_scan(body, len, &o, NULL, &jr);
    if (rc == PIPE_EPARSE) {
        snprintf(x->msg, sizeof x->msg, "the body is not JSON: %s at byte %zu", jr.what, jr.offset);
        return rc;
    }
    if (rc == 0 && (jr.type != PIPE_JSON_OBJECT || !b.data.found || !b.data.is_array)) {
        snprintf(x->msg, sizeof x->msg,
                 "the body must be a payload_data object: {\"schema\": ..., \"data\": [...]}");
        return PIPE_EPARSE;
    }
    o.max_depth = PIPE_JSON_DEPTH_LIMIT; /* a message too deep is rejected alone, later */
    o.on_member = on_payload;
    rc = pipe_json_scan(b.data.value, b.data.len, &o, NULL, &jr);
    return rc < 0 ? rc : b.rc;
}
