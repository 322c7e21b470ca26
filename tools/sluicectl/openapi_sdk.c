/* openapi_sdk — the OpenAPI description of the filter's drop-in endpoints
 * for the SDKs teams already run (Segment / RudderStack HTTP tracking API,
 * Snowplow tracker protocol), added to the document schema_gen.c builds.
 * docs/clients.md is the prose version. */
#include <stdio.h>
#include <string.h>

#include "tools/sluicectl/ctl.h"

static json_t *error_ref(const char *desc)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", desc, "content", "application/json",
                     "schema", "$ref", "#/components/schemas/SluiceError");
}

/* responses — what every SDK path answers; gif: 200 is the 1x1 pixel. */
static json_t *responses(bool gif)
{
    json_t *r = json_object();
    json_object_set_new(
        r, "200",
        gif ? json_pack("{s:s, s:{s:{s:{s:s, s:s}}}}", "description",
                        "Stored (accepted or rejected with a reason): a 1x1 transparent GIF.",
                        "content", "image/gif", "schema", "type", "string", "format", "binary")
            : json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
                        "Every message was translated, judged and durably written; rejected "
                        "ones (with a reason) to rejected/.",
                        "content", "application/json", "schema", "$ref",
                        "#/components/schemas/SluiceIngestResult"));
    json_object_set_new(r, "400",
                        error_ref("The body can never be read (not a JSON object, the batch not "
                                  "an array, a broken gzip/zstd encoding): the SDK drops it."));
    json_object_set_new(r, "401", error_ref("No write key, or one not in api_keys."));
    json_object_set_new(r, "403", error_ref("A browser's Origin not in cors_origins."));
    json_object_set_new(r, "413", error_ref("The body, decoded, is over max_batch."));
    json_object_set_new(r, "415", error_ref("Content-Encoding is not gzip, zstd or identity."));
    json_t *r503 = error_ref("Store unavailable, buffers full or stopping: retry the same batch.");
    json_object_set_new(r503, "headers",
                        json_pack("{s:{s:s, s:{s:s}}}", "Retry-After", "description",
                                  "seconds to wait before retrying", "schema", "type", "integer"));
    json_object_set_new(r, "503", r503);
    return r;
}

/* preflight — the OPTIONS operation every SDK path has (CORS). */
static json_t *preflight(const char *id)
{
    char op[96];
    snprintf(op, sizeof op, "%sPreflight", id);
    return json_pack("{s:s, s:s, s:[], s:{s:{s:s}, s:{s:s}}}", "operationId", op, "summary",
                     "CORS preflight: 204 with the allowed origin echoed, credentials, the "
                     "SDKs' headers and a max-age; 403 for an origin not in cors_origins",
                     "security", "responses", "204", "description", "allowed", "403", "description",
                     "origin not allowed");
}

static void add_post(json_t *paths, const char *path, const char *id, const char *summary,
                     const char *schema)
{
    char ref[128];
    snprintf(ref, sizeof ref, "#/components/schemas/%s", schema);
    json_t *post =
        json_pack("{s:s, s:s, s:[{s:[]},{s:[]}], s:{s:b, s:{s:{s:{s:s}}, s:{s:{s:s}}}}, s:o}",
                  "operationId", id, "summary", summary, "security", "WriteKey", "ApiKey",
                  "requestBody", "required", 1, "content", "application/json", "schema", "$ref",
                  ref, "text/plain", "schema", "$ref", ref, "responses", responses(false));
    json_object_set_new(paths, path,
                        json_pack("{s:o, s:o}", "post", post, "options", preflight(id)));
}

static void add_get(json_t *paths, const char *path, const char *id, const char *summary)
{
    json_t *get =
        json_pack("{s:s, s:s, s:[{s:[]}], s:[{s:s, s:s, s:b, s:s, s:{s:s, s:{s:s}}}], s:o}",
                  "operationId", id, "summary", summary, "security", "WriteKey", "parameters",
                  "name", "params", "in", "query", "required", 0, "description",
                  "the message's fields (or Snowplow's tracker parameters) as query "
                  "parameters; writeKey for the key",
                  "schema", "type", "object", "additionalProperties", "type", "string", "responses",
                  responses(true));
    json_object_set_new(paths, path, json_pack("{s:o, s:o}", "get", get, "options", preflight(id)));
}

void ctl_openapi_sdk(json_t *paths, json_t *schemas, json_t *security)
{
    static const char *const batches[] = {"/v1/batch", "/v1/import", "/v1/b", "/beacon/v1/batch"};
    static const struct {
        const char *call, *shorthand;
    } calls[] = {{"track", "t"},  {"identify", "i"}, {"page", "p"},
                 {"screen", "s"}, {"group", "g"},    {"alias", "a"}};
    char path[64], id[64], summary[160];
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        snprintf(id, sizeof id, "segmentBatch%zu", i);
        add_post(paths, batches[i], id,
                 "Segment / RudderStack batch: every message becomes one sluice event",
                 "SluiceSegmentBatch");
    }
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        snprintf(summary, sizeof summary, "Segment / RudderStack %s call (one message)",
                 calls[i].call);
        snprintf(path, sizeof path, "/v1/%s", calls[i].call);
        snprintf(id, sizeof id, "segment_%s", calls[i].call);
        add_post(paths, path, id, summary, "SluiceSegmentMessage");
        snprintf(path, sizeof path, "/v1/%s", calls[i].shorthand);
        snprintf(id, sizeof id, "segment_%s_short", calls[i].call);
        add_post(paths, path, id, summary, "SluiceSegmentMessage");
    }
    add_get(paths, "/pixel/v1/track", "pixelTrack", "RudderStack pixel track call");
    add_get(paths, "/pixel/v1/page", "pixelPage", "RudderStack pixel page call");
    add_post(paths, "/com.snowplowanalytics.snowplow/tp2", "snowplowTp2",
             "Snowplow tracker protocol 2 (POST): every payload becomes one sluice event",
             "SluiceSnowplowPayloadData");
    add_get(paths, "/i", "snowplowPixel", "Snowplow tracker protocol (GET pixel)");

    json_object_set_new(
        schemas, "SluiceSegmentMessage",
        json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}, "
                  "s:{s:s}, s:{s:s}, s:{s:s}}}",
                  "description",
                  "One Segment/RudderStack message; sluice's id is messageId, ts the client "
                  "time skew-corrected by sentAt, event the snake_cased track name or the call "
                  "type; every field is kept (docs/clients.md)",
                  "type", "object", "properties", "type", "type", "string", "event", "type",
                  "string", "messageId", "type", "string", "userId", "type", "string", "timestamp",
                  "type", "string", "format", "date-time", "originalTimestamp", "type", "string",
                  "format", "date-time", "properties", "type", "object", "traits", "type", "object",
                  "context", "type", "object"));
    json_object_set_new(schemas, "SluiceSegmentBatch",
                        json_pack("{s:s, s:[s], s:{s:{s:s, s:{s:s}}, s:{s:s, s:s}, s:{s:s}}}",
                                  "type", "object", "required", "batch", "properties", "batch",
                                  "type", "array", "items", "$ref",
                                  "#/components/schemas/SluiceSegmentMessage", "sentAt", "type",
                                  "string", "format", "date-time", "writeKey", "type", "string"));
    json_object_set_new(schemas, "SluiceSnowplowPayloadData",
                        json_pack("{s:s, s:[s], s:{s:{s:s}, s:{s:s, s:{s:s, s:{s:s}}}}}", "type",
                                  "object", "required", "data", "properties", "schema", "type",
                                  "string", "data", "type", "array", "items", "type", "object",
                                  "additionalProperties", "type", "string"));
    json_object_set_new(security, "WriteKey",
                        json_pack("{s:s, s:s, s:s}", "type", "http", "scheme", "basic",
                                  "description",
                                  "the write key as user name, empty password (or writeKey in "
                                  "the body, or ?writeKey=); looked up in api_keys"));
}
