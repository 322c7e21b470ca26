/* schema_apply — the entry points of schema checking: which schema of a
 * set an event is checked against (its "event" type and "schema_version"),
 * the verdict of a walk, and the edits (defaults, redactions) applied in one
 * copy. The walk itself is schema_check.c's. */
#include <stdio.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/ndjson.h"
#include "libpipe/schema_int.h"

/* rebuild — obj with the edits applied, appended to out. */
static int rebuild(struct pipe_schema_checker *ck, const char *obj, size_t len,
                   struct pipe_buf *out)
{
    size_t before = out->len, pos = 0;
    int rc = 0;
    for (size_t i = 0; i < ck->n_edits && rc == 0; i++) {
        const struct sch_edit *e = &ck->edits[i];
        rc = pipe_buf_append(out, obj + pos, e->off - pos);
        if (rc == 0 && e->ins_len)
            rc = pipe_buf_append(out, ck->ins.data + e->ins_off, e->ins_len);
        pos = e->off + e->del;
    }
    if (rc == 0)
        rc = pipe_buf_append(out, obj + pos, len - pos);
    if (rc < 0) {
        out->len = before;
        if (out->data)
            out->data[before] = '\0';
    }
    return rc;
}

/* finish — the verdict of a walk: a violation, or the rewrite if any. */
static int finish(struct pipe_schema_checker *ck, const char *obj, size_t len, bool failed,
                  struct pipe_buf *out, struct pipe_schema_result *r)
{
    int rc;
    if (failed) {
        r->reason = PIPE_REASON_SCHEMA_VIOLATION;
    } else if (ck->n_edits) {
        if ((rc = rebuild(ck, obj, len, out)) < 0)
            return rc;
        r->changed = true;
    }
    return 0;
}

int pipe_schema_apply(const struct pipe_schema *s, struct pipe_schema_checker *ck, const char *obj,
                      size_t len, struct pipe_buf *out, struct pipe_schema_result *res)
{
    struct pipe_schema_result r = {.reason = PIPE_REASON_OK};
    bool failed;
    if (len == 0 || obj[0] != '{')
        return PIPE_EPARSE;
    int rc = pipe__schema_run(s, s->root, ck, obj, len, false, r.message, sizeof r.message, &failed,
                              NULL);
    if (rc == 0)
        rc = finish(ck, obj, len, failed, out, &r);
    if (rc == 0)
        *res = r;
    return rc;
}

bool pipe__schema_value_ok(const struct sch_node *node, const char *v, size_t n, char *msg,
                           size_t msglen)
{
    struct pipe_schema_checker *ck = pipe_schema_checker_new();
    bool failed = false;
    msg[0] = '\0';
    int rc = pipe__schema_run(NULL, node, ck, v, n, false, msg, msglen, &failed, NULL);
    pipe_schema_checker_free(ck);
    if (rc < 0)
        snprintf(msg, msglen, "not valid JSON");
    else if (strncmp(msg, "(root): ", 8) == 0)
        memmove(msg, msg + 8, strlen(msg) - 7); /* the rule of a default is about itself */
    return rc == 0 && !failed;
}

/* version_of — a positive integer token of at most 9 digits, else 0. */
static int version_of(const char *p, const char *e)
{
    int v = 0;
    if (e - p < 1 || e - p > 9 || *p < '1' || *p > '9')
        return 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* pick — the schema for the top-level members t, or a reason why none. */
static enum pipe_reason pick(const struct pipe_schema_set *set, const struct sch_top *t,
                             const struct pipe_schema **s, char *msg, size_t msglen)
{
    char ev[PIPE_EVENT_TYPE_MAX + 1];
    size_t evlen;
    if (!pipe__schema_top_event(t, ev, sizeof ev, &evlen)) {
        snprintf(msg, msglen, "the event has no usable \"event\" type");
        return PIPE_REASON_UNKNOWN_EVENT_TYPE;
    }
    const struct pipe_schema *top;
    if (pipe_schema_lookup(set, ev, evlen, 0, &top) < 0) {
        snprintf(msg, msglen, "no schema for event type \"%s\"", ev);
        return PIPE_REASON_UNKNOWN_EVENT_TYPE;
    }
    int v = t->n_ver == 1 ? version_of(t->ver, t->ver_end) : 0;
    if (t->n_ver > 1 || (t->n_ver == 1 && v == 0)) {
        snprintf(msg, msglen, "schema_version must be one positive integer");
        return PIPE_REASON_UNKNOWN_SCHEMA_VERSION;
    }
    if (v && pipe_schema_lookup(set, ev, evlen, v, &top) < 0) {
        snprintf(msg, msglen, "event type \"%s\" has no schema version %d (the highest is %d)", ev,
                 v, top->version);
        return PIPE_REASON_UNKNOWN_SCHEMA_VERSION;
    }
    *s = top;
    return PIPE_REASON_OK;
}

/* check_exact — finds type and version with a scan of the top level
 * first: for callers that do not know the type, and the rare events the
 * quick path cannot settle. */
static int check_exact(const struct pipe_schema_set *set, struct pipe_schema_checker *ck,
                       const char *obj, size_t len, struct pipe_buf *out,
                       struct pipe_schema_result *res)
{
    struct pipe_schema_result r = {.reason = PIPE_REASON_OK};
    struct sch_top t;
    const struct pipe_schema *s = NULL;
    int rc = pipe__schema_scan_top(obj, len, &t);
    if (rc < 0)
        return rc;
    r.reason = pick(set, &t, &s, r.message, sizeof r.message);
    if (r.reason != PIPE_REASON_OK) {
        *res = r;
        return 0;
    }
    return pipe_schema_apply(s, ck, obj, len, out, res);
}

int pipe_schema_check(const struct pipe_schema_set *set, struct pipe_schema_checker *ck,
                      const char *obj, size_t len, const char *event, size_t event_len,
                      struct pipe_buf *out, struct pipe_schema_result *res)
{
    struct pipe_schema_result r = {.reason = PIPE_REASON_OK};
    const struct pipe_schema *s;
    struct sch_top seen;
    bool failed;
    if (event == NULL)
        return check_exact(set, ck, obj, len, out, res);
    if (pipe_schema_lookup(set, event, event_len, 0, &s) < 0) {
        r.reason = PIPE_REASON_UNKNOWN_EVENT_TYPE;
        snprintf(r.message, sizeof r.message, "no schema for event type \"%.*s\"",
                 (int)(event_len > PIPE_EVENT_TYPE_MAX ? PIPE_EVENT_TYPE_MAX : event_len), event);
        *res = r;
        return 0;
    }
    /* One walk with the highest version, noting any schema_version member
     * on the way: right unless the event names another version. */
    if (len == 0 || obj[0] != '{')
        return PIPE_EPARSE;
    int rc = pipe__schema_run(s, s->root, ck, obj, len, false, r.message, sizeof r.message, &failed,
                              &seen);
    bool settled =
        rc == 0 && !failed &&
        (seen.n_ver == 0 || (seen.n_ver == 1 && version_of(seen.ver, seen.ver_end) == s->version));
    if (!settled)
        return check_exact(set, ck, obj, len, out, res);
    if ((rc = finish(ck, obj, len, false, out, &r)) < 0)
        return rc;
    *res = r;
    return 0;
}

/* redact_with — one redaction pass of s over ck->compact; true if it
 * changed something (the result replaces ck->compact). */
static int redact_with(const struct pipe_schema *s, struct pipe_schema_checker *ck)
{
    char msg[8];
    bool failed;
    int rc = pipe__schema_run(s, s->root, ck, ck->compact.data, ck->compact.len, true, msg,
                              sizeof msg, &failed, NULL);
    if (rc < 0 || ck->n_edits == 0)
        return rc < 0 ? rc : 0;
    pipe_buf_reset(&ck->redo);
    if ((rc = rebuild(ck, ck->compact.data, ck->compact.len, &ck->redo)) < 0)
        return rc;
    struct pipe_buf swap = ck->compact;
    ck->compact = ck->redo;
    ck->redo = swap;
    return 1;
}

int pipe_schema_redact_record(const struct pipe_schema_set *set, struct pipe_schema_checker *ck,
                              const char *rec, size_t len, struct pipe_buf *out)
{
    if (pipe_schema_set_count(set) == 0)
        return 0;
    /* Lenient: a record rejected for a \u0000 or a huge number still has
     * its personal data taken out. */
    struct pipe_json_opts o = {PIPE_JSON_DEPTH_LIMIT, PIPE_JSON_LENIENT, NULL, NULL};
    struct pipe_json_result jr;
    struct sch_top t;
    char ev[PIPE_EVENT_TYPE_MAX + 1];
    size_t evlen, n;
    pipe_buf_reset(&ck->compact);
    if (pipe_json_scan(rec, len, &o, &ck->compact, &jr) < 0 || jr.type != PIPE_JSON_OBJECT ||
        pipe__schema_scan_top(ck->compact.data, ck->compact.len, &t) < 0 ||
        !pipe__schema_top_event(&t, ev, sizeof ev, &evlen))
        return 0;
    const struct pipe_schema *const *all = pipe_schema_versions(set, ev, evlen, &n);
    const struct pipe_schema *one = NULL;
    int v = t.n_ver == 1 ? version_of(t.ver, t.ver_end) : 0;
    if (v && pipe_schema_lookup(set, ev, evlen, v, &one) == 0) {
        all = &one;
        n = 1;
    }
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = all[i]->redacts ? redact_with(all[i], ck) : 0;
        if (rc < 0)
            return rc == PIPE_ETOOBIG ? rc : 0;
        changed |= rc;
    }
    if (!changed)
        return 0;
    int rc = pipe_buf_append(out, ck->compact.data, ck->compact.len);
    return rc < 0 ? rc : 1;
}
