/* dedup_redis — the `redis` de-duplication backend: a Redis view of the
 * store's index objects (state/dedup/...), which stay the durable record.
 * The front end (dedup.c) serialises claims under the lease "dedup" and
 * reads and writes the index objects; the verdicts come from Lua scripts
 * over hashes in Redis instead of from a table in memory kept by listing
 * the store, so a warm claim costs two GETs and one PUT on the store and no
 * LIST. When Redis loses its state
 * (restart, FLUSHALL, failover) the view is rebuilt from the store.
 *
 * Layout (P = the URL's prefix=, E = epoch, g = generation, b = bucket,
 * V = "E.<buckets>.<generation hours>", the view and its layout):
 *   P dedup:epoch      "V:<run_id>": view V is complete on this server process
 *   P dedup:rebuild    "V:<run_id>": a rebuild of view V is under way
 *   P dedup:v:E:g:b    hash: 12 bytes of a key (its 4 bucket bytes implied)
 *                      -> the claiming job's number in generation g
 *   P dedup:v:E:g:j    hash: job id -> number; field "#" counts them
 *   state/dedup-redis/<P>epoch   (store) E: the view that matches the store
 * A generation is the window rounded up to whole hours; a claim is written
 * into the generation of its partition and looked up in every generation
 * that overlaps [now - window, now + 1 h], so a claim counts for between one
 * and two windows. Each generation's keys expire two generations after it
 * starts (plus an hour for clock skew). A replay into an older partition
 * lists that one partition instead and is not written to Redis. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "libpipe/clock.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"
#include "libpipe/store.h"
#include "libpipe/url.h"

#define DEFAULT_BUCKETS 4096u
#define BUCKETS_MAX     (1u << 30)
#define PREFIX_MAX      64
#define CHUNK_KEYS      1000 /* keys per EVAL */
#define PIPE_EVALS      32   /* EVALs per round trip */
#define SKEW_MS         PIPE_HOUR_MS

/* ---- scripts ----------------------------------------------------------------
 * Every script that reads or writes the view first checks, atomically with
 * its work, that the marker (or the rebuild token) names the expected epoch
 * and this server process: a FLUSHALL removes the marker, and a restart or a
 * failover (which may bring back an older or partial copy) changes run_id. */

/* Shared by the scripts. A key arrives as 16 bytes (put_key): 4 that pick
 * its bucket, then the 12 stored as the field. each_bucket calls fn once
 * per run of keys in one bucket (callers sort keys by bucket), so a bucket
 * costs one HMGET or HSET per script rather than one call per key. fill
 * adds fields and gives a new bucket its expiry. */
#define LUA_PRELUDE                                                                                \
    "local function view(k, e)\n"                                                                  \
    "  local v = redis.call('GET', k)\n"                                                           \
    "  local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')\n"                    \
    "  return v ~= false and v == e .. ':' .. id\n"                                                \
    "end\n"                                                                                        \
    "local function jobnum(jk, job, exp)\n"                                                        \
    "  local n = redis.call('HGET', jk, job)\n"                                                    \
    "  if n then return n end\n"                                                                   \
    "  n = tostring(redis.call('HINCRBY', jk, '#', 1))\n"                                          \
    "  redis.call('HSET', jk, job, n)\n"                                                           \
    "  redis.call('PEXPIREAT', jk, exp)\n"                                                         \
    "  return n\n"                                                                                 \
    "end\n"                                                                                        \
    "local function each_bucket(blob, nb, fn)\n"                                                   \
    "  local n, i = #blob / 16, 0\n"                                                               \
    "  local function b_at(x) return (struct.unpack('>I4', blob, 16 * x + 1)) % nb end\n"          \
    "  local function f_at(x) return string.sub(blob, 16 * x + 5, 16 * x + 16) end\n"              \
    "  while i < n do\n"                                                                           \
    "    local b, fs, j = b_at(i), {f_at(i)}, i + 1\n"                                             \
    "    while j < n and b_at(j) == b do\n"                                                        \
    "      fs[#fs + 1] = f_at(j)\n"                                                                \
    "      j = j + 1\n"                                                                            \
    "    end\n"                                                                                    \
    "    fn(b, fs, i)\n"                                                                           \
    "    i = j\n"                                                                                  \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function fill(k, add, exp)\n"                                                           \
    "  redis.call('HSET', k, unpack(add))\n"                                                       \
    "  local len = redis.call('HLEN', k)\n"                                                        \
    "  if len == #add / 2 then redis.call('PEXPIREAT', k, exp) end\n"                              \
    "  return len\n"                                                                               \
    "end\n"

/* ARGV: marker, view, base (P dedup:v:E:), job, buckets, write (0/1),
 * expire_at, keys, generations (the write generation first). A generation
 * without a job table holds no keys and is skipped. Returns one verdict
 * digit per key and the size of the largest bucket it added to. */
static const char LUA_CLAIM[] = LUA_PRELUDE
    "if not view(ARGV[1], ARGV[2]) then return redis.error_reply('SLUICE_STALE') end\n"
    "local base, job, nb, exp, blob = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[7], ARGV[8]\n"
    "local write = ARGV[6] == '1'\n"
    "local gens, nums = {}, {}\n"
    "for i = 9, #ARGV do\n"
    "  local jk = base .. ARGV[i] .. ':j'\n"
    "  if write and i == 9 then\n"
    "    gens[1], nums[1] = base .. ARGV[i] .. ':', jobnum(jk, job, exp)\n"
    "  elseif redis.call('EXISTS', jk) == 1 then\n"
    "    gens[#gens + 1] = base .. ARGV[i] .. ':'\n"
    "    nums[#nums + 1] = redis.call('HGET', jk, job) or ''\n"
    "  end\n"
    "end\n"
    "local out, big = {}, 0\n"
    "local function owner(h, num) return (h == num) and '1' or '2' end\n"
    "each_bucket(blob, nb, function(b, fs, at)\n"
    "  local v = {}\n"
    "  for i = (write and 2 or 1), #gens do\n"
    "    local hs = redis.call('HMGET', gens[i] .. b, unpack(fs))\n"
    "    for j = 1, #fs do\n"
    "      if not v[j] and hs[j] then v[j] = owner(hs[j], nums[i]) end\n"
    "    end\n"
    "  end\n"
    "  if write then\n"
    "    local k, add = gens[1] .. b, {}\n"
    "    local hs = redis.call('HMGET', k, unpack(fs))\n"
    "    for j = 1, #fs do\n"
    "      if v[j] then\n"
    "      elseif hs[j] then v[j] = owner(hs[j], nums[1])\n"
    "      else v[j] = '0'; add[#add + 1] = fs[j]; add[#add + 1] = nums[1] end\n"
    "    end\n"
    "    if #add > 0 then big = math.max(big, fill(k, add, exp)) end\n"
    "  end\n"
    "  for j = 1, #fs do out[at + j] = v[j] or '0' end\n"
    "end)\n"
    "return {table.concat(out), big}\n";

/* ARGV: token, view, base, job, buckets, expire_at, keys, generation.
 * Loads one index object's keys during a rebuild; the first job loaded
 * keeps a key two index objects share (either is its own job's MINE from
 * its index, and DUP for everyone else). */
static const char LUA_LOAD[] =
    LUA_PRELUDE "if not view(ARGV[1], ARGV[2]) then return redis.error_reply('SLUICE_STALE') end\n"
                "local base, exp = ARGV[3] .. ARGV[8] .. ':', ARGV[6]\n"
                "local num = jobnum(base .. 'j', ARGV[4], exp)\n"
                "each_bucket(ARGV[7], tonumber(ARGV[5]), function(b, fs)\n"
                "  local k, add = base .. b, {}\n"
                "  local hs = redis.call('HMGET', k, unpack(fs))\n"
                "  for j = 1, #fs do\n"
                "    if not hs[j] then add[#add + 1] = fs[j]; add[#add + 1] = num end\n"
                "  end\n"
                "  if #add > 0 then fill(k, add, exp) end\n"
                "end)\n"
                "return #ARGV[7] / 16\n";

/* ARGV: marker, view, base, job, buckets, keys, generation. Removes the
 * job's claims of keys that a failed claim made; nothing if the view
 * changed meanwhile (the claims went with it). */
static const char LUA_UNDO[] =
    LUA_PRELUDE "if not view(ARGV[1], ARGV[2]) then return 0 end\n"
                "local base = ARGV[3] .. ARGV[7] .. ':'\n"
                "local num, n = redis.call('HGET', base .. 'j', ARGV[4]), 0\n"
                "if not num then return 0 end\n"
                "each_bucket(ARGV[6], tonumber(ARGV[5]), function(b, fs)\n"
                "  local k, del = base .. b, {}\n"
                "  local hs = redis.call('HMGET', k, unpack(fs))\n"
                "  for j = 1, #fs do\n"
                "    if hs[j] == num then del[#del + 1] = fs[j] end\n"
                "  end\n"
                "  if #del > 0 then n = n + redis.call('HDEL', k, unpack(del)) end\n"
                "end)\n"
                "return n\n";

/* ARGV: marker, token, view. Starts a rebuild: the old view is void. */
static const char LUA_BEGIN[] =
    "local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')\n"
    "redis.call('DEL', ARGV[1])\n"
    "redis.call('SET', ARGV[2], ARGV[3] .. ':' .. id, 'PX', 86400000)\n"
    "return 1\n";

/* ARGV: marker, token, view. Publishes a rebuilt view, unless the token
 * went (a FLUSHALL or a restart during the rebuild: the view is partial). */
static const char LUA_PUBLISH[] =
    LUA_PRELUDE "if not view(ARGV[2], ARGV[3]) then return redis.error_reply('SLUICE_STALE') end\n"
                "redis.call('SET', ARGV[1], redis.call('GET', ARGV[2]))\n"
                "redis.call('DEL', ARGV[2])\n"
                "return 1\n";

/* ---- the handle ------------------------------------------------------------- */

/* What one claim works with, computed under the lease (redis_check). */
struct claim_ctx {
    int64_t gen;    /* generation of the claim's partition */
    int64_t lo_gen; /* generations looked up: lo_gen..hi_gen and gen */
    int64_t hi_gen;
    bool in_view;   /* gen is one the view holds: claim into Redis */
    char epoch[17]; /* from the store */
    char view[48];  /* what the marker must name: epoch and layout */
};

/* A rebuild under way: the view it fills and what it loaded. */
struct rebuild {
    char epoch[17], view[48];
    char base[PREFIX_MAX + 32];
    int64_t t0;
    uint64_t objects, keys;
};

struct rds {
    struct pipe_redis *r;
    char prefix[PREFIX_MAX + 1];
    uint32_t buckets;
    long long listpack_max; /* the server's hash-max-listpack-entries */
    int64_t gen_ms;         /* length of a generation */
    char *marker, *token;   /* Redis keys */
    char *store_epoch;      /* store key of the epoch object */
    struct claim_ctx cur;   /* the claim under way */
    struct rebuild rb;
};

static bool prefix_valid(const char *p, size_t n)
{
    if (n == 0 || n > PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        /* No glob characters (SCAN MATCH) and a valid store key segment. */
        if (!alnum && (i == 0 || (c != '_' && c != '-' && c != '.' && c != ':')))
            return false;
    }
    return true;
}

/* Takes buckets= out of url's query and leaves the rest (the connection's
 * own options, prefix= among them) in *conn (caller frees). */
static int parse_url(struct rds *R, const char *url, char **conn)
{
    int rc = 0;
    const char *q = strchr(url, '?');
    struct pipe_buf rest;
    struct pipe_url_param p;
    pipe_buf_init(&rest, 4096);
    R->buckets = DEFAULT_BUCKETS;
    if (pipe_buf_append(&rest, url, q ? (size_t)(q - url) : strlen(url)) < 0)
        rc = PIPE_ECONFIG;
    char sep = '?';
    for (const char *cur = q ? q + 1 : ""; rc == 0 && pipe_url_query_next(&cur, &p);) {
        if (pipe_url_param_is(&p, "buckets")) {
            char *end = NULL;
            unsigned long v = 0;
            if (p.value && p.value_len > 0)
                v = strtoul(p.value, &end, 10);
            if (end == NULL || end != p.value + p.value_len || v < 1 || v > BUCKETS_MAX)
                rc = PIPE_ECONFIG;
            R->buckets = (uint32_t)v;
        } else {
            /* the item as written: its name through the end of its value */
            size_t n = p.value ? (size_t)(p.value + p.value_len - p.name) : p.name_len;
            if (pipe_buf_append_char(&rest, sep) < 0 || pipe_buf_append(&rest, p.name, n) < 0)
                rc = PIPE_ECONFIG;
            sep = '&';
        }
    }
    if (rc == 0 && pipe_buf_append_char(&rest, '\0') == 0)
        *conn = pipe_strdup(rest.data);
    else
        pipe_log_error("bad dedup redis URL", "want=\"buckets=1..%u\"", BUCKETS_MAX);
    pipe_buf_cleanup(&rest);
    return rc == 0 ? 0 : PIPE_ECONFIG;
}

/* Evicting a bucket would forget claims without any sign: only a server
 * that never evicts (no maxmemory, or noeviction) can hold the view. */
static int check_eviction(struct rds *R)
{
    redisReply *rep = NULL;
    int rc = pipe_redis_command(R->r, &rep, "INFO memory");
    if (rc < 0)
        return rc;
    if (rep->type == REDIS_REPLY_STRING) {
        const char *mm = strstr(rep->str, "\nmaxmemory:");
        const char *pol = strstr(rep->str, "\nmaxmemory_policy:");
        bool limited = mm && strtoull(mm + 11, NULL, 10) != 0;
        if (limited && pol && strncmp(pol + 18, "noeviction", 10) != 0) {
            pipe_log_error("redis for dedup must not evict keys: set maxmemory-policy noeviction",
                           "url=\"%s\" policy=\"%.*s\"", pipe_redis_url(R->r),
                           (int)strcspn(pol + 18, "\r\n"), pol + 18);
            rc = PIPE_ECONFIG;
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* Buckets past this many entries leave the compact encoding; CONFIG may be
 * renamed away (managed Redis), then the default is assumed. */
static long long listpack_max(struct rds *R)
{
    long long v = 128;
    redisReply *rep = NULL;
    if (pipe_redis_command(R->r, &rep, "CONFIG GET hash-max-listpack-entries") < 0)
        return v;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        v = strtoll(rep->element[1]->str, NULL, 10);
    freeReplyObject(rep);
    return v;
}

static int redis_open(struct pipe_dedup *d, const char *url)
{
    int rc;
    char *conn = NULL;
    struct rds *R = pipe_calloc(1, sizeof *R);
    d->impl = R;
    rc = parse_url(R, url, &conn);
    if (rc < 0)
        goto out;
    rc = pipe_redis_open(conn, &R->r);
    if (rc < 0) {
        pipe_log_error("cannot open redis for dedup", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                       pipe_redis_last_error());
        goto out;
    }
    const char *prefix = pipe_redis_prefix(R->r);
    if (!prefix_valid(prefix, strlen(prefix))) {
        pipe_log_error("dedup redis prefix must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,63}",
                       "prefix=\"%s\"", prefix);
        rc = PIPE_ECONFIG;
        goto out;
    }
    snprintf(R->prefix, sizeof R->prefix, "%s", prefix);
    rc = check_eviction(R);
    if (rc < 0)
        goto out;
    R->listpack_max = listpack_max(R);
    /* Whole hours, so that a partition lies in one generation. */
    int64_t w = d->cfg.window_ms;
    R->gen_ms = (w + PIPE_HOUR_MS - 1) / PIPE_HOUR_MS * PIPE_HOUR_MS;
    if (R->gen_ms < PIPE_HOUR_MS)
        R->gen_ms = PIPE_HOUR_MS;
    R->marker = pipe_asprintf("%sdedup:epoch", R->prefix);
    R->token = pipe_asprintf("%sdedup:rebuild", R->prefix);
    R->store_epoch = pipe_asprintf("state/dedup-redis/%sepoch", R->prefix);
out:
    pipe_free(conn);
    return rc;
}

static void redis_close(struct pipe_dedup *d)
{
    struct rds *R = d->impl;
    if (!R)
        return;
    pipe_redis_free(R->r);
    pipe_free(R->marker);
    pipe_free(R->token);
    pipe_free(R->store_epoch);
    pipe_free(R);
    d->impl = NULL;
}

/* ---- running scripts over keys ------------------------------------------------ */

/* One script applied to keys in chunks of CHUNK_KEYS, PIPE_EVALS to a round
 * trip. argv holds the script's arguments with a NULL where each chunk's
 * keys go. */
struct script_run {
    const char *body;
    const char *argv[16];
    int argc;
    int keys_at;
    uint8_t *verdicts; /* claim: one per key; NULL otherwise */
    long long total;   /* sum of integer replies */
    long long biggest; /* claim: entries of the largest bucket it grew */
};

/* A key as the scripts read it: the low half of hi (which picks the
 * bucket) first, then the 12 bytes stored as the field. */
static void put_key(unsigned char *p, const struct pipe_dedup_key *k)
{
    uint64_t w[2] = {k->hi << 32 | k->hi >> 32, k->lo};
    for (int i = 0; i < 16; i++)
        p[i] = (unsigned char)(w[i / 8] >> (56 - 8 * (i % 8)));
}

/* A key's bucket, as the scripts compute it from put_key's bytes. */
struct by_bucket {
    uint32_t bucket, i;
};

static int by_bucket_cmp(const void *a, const void *b)
{
    const struct by_bucket *x = a, *y = b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Orders ask (and pos with it, unless NULL) by bucket, so that a script
 * meets all of a bucket's keys together and touches each bucket once. */
static void sort_by_bucket(const struct rds *R, struct pipe_dedup_key *ask, size_t *pos, size_t m)
{
    struct by_bucket *o = pipe_malloc(m * sizeof *o);
    struct pipe_dedup_key *k = pipe_malloc(m * sizeof *k);
    for (size_t i = 0; i < m; i++)
        o[i] = (struct by_bucket){(uint32_t)ask[i].hi % R->buckets, (uint32_t)i};
    qsort(o, m, sizeof *o, by_bucket_cmp);
    for (size_t j = 0; j < m; j++)
        k[j] = ask[o[j].i];
    memcpy(ask, k, m * sizeof *k);
    if (pos) {
        size_t *p = pipe_malloc(m * sizeof *p);
        for (size_t j = 0; j < m; j++)
            p[j] = pos[o[j].i];
        memcpy(pos, p, m * sizeof *p);
        pipe_free(p);
    }
    pipe_free(k);
    pipe_free(o);
}

/* Maps one script reply; PIPE__DEDUP_STALE when the script refused. */
static int take_reply(struct script_run *sr, const redisReply *rep, uint8_t *verdicts, size_t n)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Redis puts "ERR " in front of a code it does not know. */
        if (strstr(rep->str, "SLUICE_STALE"))
            return PIPE__DEDUP_STALE;
        pipe_log_error("dedup redis script failed", "err=\"%.200s\"", rep->str);
        bool busy = !strncmp(rep->str, "OOM", 3) || !strncmp(rep->str, "BUSY", 4) ||
                    !strncmp(rep->str, "LOADING", 7) || !strncmp(rep->str, "READONLY", 8) ||
                    !strncmp(rep->str, "MASTERDOWN", 10);
        return busy ? PIPE_EUNAVAIL : PIPE_EIO;
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        sr->total += rep->integer;
        return 0;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || !verdicts)
        return PIPE_EIO;
    const redisReply *vs = rep->element[0], *big = rep->element[1];
    if (vs->type != REDIS_REPLY_STRING || vs->len != n || big->type != REDIS_REPLY_INTEGER)
        return PIPE_EIO;
    for (size_t i = 0; i < n; i++) {
        if (vs->str[i] < '0' || vs->str[i] > '2')
            return PIPE_EIO;
        verdicts[i] = (uint8_t)(vs->str[i] - '0');
    }
    if (big->integer > sr->biggest)
        sr->biggest = big->integer;
    return 0;
}

/* Runs sr over keys[0..n): 0, PIPE__DEDUP_STALE, or a Redis error. Every chunk's
 * reply is read even after a failure, so the connection stays in step. */
static int run_script(struct rds *R, struct script_run *sr, const struct pipe_dedup_key *keys,
                      size_t n)
{
    int rc = 0;
    size_t per = CHUNK_KEYS * PIPE_EVALS;
    size_t argc = 3 + (size_t)sr->argc;
    unsigned char *blob = pipe_malloc((n < per ? n : per) * 16);
    const char **argv = pipe_malloc(PIPE_EVALS * argc * sizeof *argv);
    size_t *lens = pipe_malloc(PIPE_EVALS * argc * sizeof *lens);
    struct pipe_redis_cmd cmds[PIPE_EVALS];
    redisReply *reps[PIPE_EVALS];
    for (size_t done = 0; done < n && rc == 0;) {
        size_t m = n - done < per ? n - done : per, ncmd = 0;
        for (size_t i = 0; i < m; i++)
            put_key(blob + 16 * i, &keys[done + i]);
        for (size_t off = 0; off < m; off += CHUNK_KEYS, ncmd++) {
            size_t c = m - off < CHUNK_KEYS ? m - off : CHUNK_KEYS;
            const char **a = argv + ncmd * argc;
            size_t *l = lens + ncmd * argc;
            a[0] = "EVAL", a[1] = sr->body, a[2] = "0";
            for (int j = 0; j < sr->argc; j++)
                a[3 + j] = j == sr->keys_at ? (const char *)blob + 16 * off : sr->argv[j];
            for (size_t j = 0; j < argc; j++) /* the keys are binary */
                l[j] = j == 3 + (size_t)sr->keys_at ? 16 * c : strlen(a[j]);
            cmds[ncmd] = (struct pipe_redis_cmd){(int)argc, a, l};
        }
        rc = pipe_redis_run(R->r, cmds, ncmd, reps);
        if (rc < 0) {
            pipe_log_error("dedup redis request failed", "err=\"%s\" detail=\"%s\"",
                           pipe_strerror(rc), pipe_redis_last_error());
            break;
        }
        for (size_t i = 0; i < ncmd; i++) {
            size_t off = i * CHUNK_KEYS, c = m - off < CHUNK_KEYS ? m - off : CHUNK_KEYS;
            int r = take_reply(sr, reps[i], sr->verdicts ? sr->verdicts + done + off : NULL, c);
            /* A refusal outranks an error: a rebuild is what helps. */
            if (r == PIPE__DEDUP_STALE || (r < 0 && rc == 0))
                rc = r;
            freeReplyObject(reps[i]);
        }
        done += m;
    }
    pipe_free(lens);
    pipe_free(argv);
    pipe_free(blob);
    return rc;
}

/* One short command whose reply only has to be a success. */
static int simple_script(struct rds *R, const char *body, const char *a1, const char *a2,
                         const char *a3)
{
    struct script_run sr = {.body = body, .argv = {a1, a2, a3}, .argc = 3, .keys_at = -1};
    const char *argv[] = {"EVAL", body, "0", a1, a2, a3};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    struct pipe_redis_cmd cmd = {6, argv, lens};
    redisReply *rep = NULL;
    int rc = pipe_redis_run(R->r, &cmd, 1, &rep);
    if (rc < 0) {
        pipe_log_error("dedup redis request failed", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                       pipe_redis_last_error());
        return rc;
    }
    rc = take_reply(&sr, rep, NULL, 0);
    freeReplyObject(rep);
    return rc;
}

/* ---- epochs --------------------------------------------------------------------- */

static int64_t gen_of(const struct rds *R, int64_t ms)
{
    return ms / R->gen_ms;
}

/* When a generation's keys may go: once no window can reach it. */
static int64_t expire_at(const struct rds *R, int64_t gen)
{
    return (gen + 2) * R->gen_ms + SKEW_MS;
}

static bool epoch_valid(const char *s, size_t n)
{
    if (n != 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The epoch the store's index objects were last loaded under. 0,
 * PIPE_ENOTFOUND (never, or the object is unreadable: rebuild), or a store
 * error. */
static int epoch_get(struct pipe_dedup *d, const struct rds *R, char epoch[17])
{
    struct pipe_buf b;
    pipe_buf_init(&b, 64);
    int rc = pipe_store_get(d->store, R->store_epoch, &b);
    if (rc == PIPE_ETOOBIG)
        rc = PIPE_ENOTFOUND;
    if (rc == 0 && b.len >= 16 && epoch_valid(b.data, 16)) {
        memcpy(epoch, b.data, 16);
        epoch[16] = '\0';
    } else if (rc == 0) {
        pipe_log_warn("unreadable dedup epoch object; rebuilding", "key=\"%s\"", R->store_epoch);
        rc = PIPE_ENOTFOUND;
    }
    pipe_buf_cleanup(&b);
    return rc;
}

/* A view is its epoch plus the layout it was built with: a handle with
 * other buckets= or another window must not read it, but rebuild. */
static void view_of(const struct rds *R, const char *epoch, char view[48])
{
    snprintf(view, 48, "%s.%u.%lld", epoch, R->buckets, (long long)(R->gen_ms / PIPE_HOUR_MS));
}

static void epoch_new(char epoch[17])
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != sizeof v)
        v = (uint64_t)pipe_clock_mono_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)pipe_clock_now_ms();
    snprintf(epoch, 17, "%016llx", (unsigned long long)v);
}

/* Unlinks every view but keep's (a stale one, or one built for another
 * store), so that a rebuild does not double the memory until expiry. */
static int drop_other_views(struct rds *R, const char *keep)
{
    int rc = 0;
    char *match = pipe_asprintf("%sdedup:v:*", R->prefix);
    char *mine = pipe_asprintf("%sdedup:v:%s:", R->prefix, keep);
    size_t mine_len = strlen(mine);
    char cursor[32] = "0";
    uint64_t dropped = 0;
    do {
        redisReply *rep = NULL;
        rc = pipe_redis_command(R->r, &rep, "SCAN %s MATCH %s COUNT 1000", cursor, match);
        if (rc < 0)
            break;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY || rep->element[0]->len >= sizeof cursor) {
            freeReplyObject(rep);
            rc = PIPE_EIO;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        /* One UNLINK per page of the scan. */
        const redisReply *ks = rep->element[1];
        const char **argv = pipe_malloc((ks->elements + 1) * sizeof *argv);
        size_t *lens = pipe_malloc((ks->elements + 1) * sizeof *lens), argc = 1;
        argv[0] = "UNLINK", lens[0] = 6;
        for (size_t i = 0; i < ks->elements; i++) {
            const redisReply *k = ks->element[i];
            if (k->type == REDIS_REPLY_STRING &&
                (k->len < mine_len || memcmp(k->str, mine, mine_len) != 0))
                argv[argc] = k->str, lens[argc++] = k->len;
        }
        struct pipe_redis_cmd cmd = {(int)argc, argv, lens};
        redisReply *u = NULL;
        if (argc > 1 && (rc = pipe_redis_run(R->r, &cmd, 1, &u)) == 0)
            freeReplyObject(u);
        dropped += argc - 1;
        pipe_free(lens);
        pipe_free(argv);
        freeReplyObject(rep);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    if (dropped)
        pipe_log_info("dropped keys of an old dedup view", "keys=%llu",
                      (unsigned long long)dropped);
    pipe_free(mine);
    pipe_free(match);
    return rc;
}

/* ---- rebuilding the view from the store ------------------------------------------ */

/* The generations a claim reads and writes, from its partitions; a
 * generation is whole hours, so hour numbers divide into it exactly. */
static void ctx_of(const struct rds *R, const struct pipe__dedup_claim *c, struct claim_ctx *x)
{
    int64_t per_gen = R->gen_ms / PIPE_HOUR_MS;
    x->gen = c->claim_hour / per_gen;
    x->lo_gen = c->lo_hour / per_gen;
    x->hi_gen = c->hi_hour / per_gen;
    /* The view holds the generations a rebuild loads; a replay of an older
     * partition is checked against that one partition (the front end reads
     * it) and writes only its index. */
    x->in_view = x->gen >= x->lo_gen && x->gen <= x->hi_gen + 1;
}

/* Starts a fresh view under a new epoch: every index object of the
 * generations a window can look at (the window's, and the next one for
 * partitions a little ahead of the clock) is to be loaded into it. */
static int redis_rebuild_begin(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                               struct pipe__dedup_hours *h)
{
    struct rds *R = d->impl;
    struct rebuild *rb = &R->rb;
    struct claim_ctx x;
    ctx_of(R, c, &x);
    *rb = (struct rebuild){.t0 = pipe_clock_mono_ms()};
    epoch_new(rb->epoch);
    view_of(R, rb->epoch, rb->view);
    snprintf(rb->base, sizeof rb->base, "%sdedup:v:%s:", R->prefix, rb->epoch);
    int64_t per_gen = R->gen_ms / PIPE_HOUR_MS;
    *h = (struct pipe__dedup_hours){.lo = x.lo_gen * per_gen, .hi = (x.hi_gen + 2) * per_gen};
    int rc = simple_script(R, LUA_BEGIN, R->marker, R->token, rb->view);
    if (rc == 0)
        rc = drop_other_views(R, rb->epoch);
    return rc;
}

/* One index object into the view being rebuilt, under its rebuild token. */
static int redis_load(struct pipe_dedup *d, const struct pipe__dedup_obj *o)
{
    struct rds *R = d->impl;
    struct rebuild *rb = &R->rb;
    char gen[24], buckets[16], exp[24];
    if (o->n == 0)
        return 0;
    int64_t g = gen_of(R, o->hour * PIPE_HOUR_MS);
    snprintf(gen, sizeof gen, "%lld", (long long)g);
    snprintf(buckets, sizeof buckets, "%u", R->buckets);
    snprintf(exp, sizeof exp, "%lld", (long long)expire_at(R, g));
    sort_by_bucket(R, o->keys, NULL, o->n);
    struct script_run sr = {
        .body = LUA_LOAD,
        .argv = {R->token, rb->view, rb->base, o->job, buckets, exp, NULL, gen},
        .argc = 8,
        .keys_at = 6,
    };
    int rc = run_script(R, &sr, o->keys, o->n);
    rb->objects++;
    rb->keys += o->n;
    return rc;
}

/* Records the rebuilt view's epoch in the store, then in Redis. A view
 * that lost its token on the way (a FLUSHALL or a restart) is not
 * published: PIPE__DEDUP_STALE, and the front end starts over. */
static int redis_rebuild_publish(struct pipe_dedup *d)
{
    struct rds *R = d->impl;
    const struct rebuild *rb = &R->rb;
    /* The store first: an epoch in Redis that the store lacks would only
     * cost another rebuild, but the other order could publish a view the
     * store never agreed to. */
    char text[18];
    snprintf(text, sizeof text, "%s\n", rb->epoch);
    int rc = pipe_store_put(d->store, R->store_epoch, text, 17);
    if (rc == 0)
        rc = simple_script(R, LUA_PUBLISH, R->marker, R->token, rb->view);
    if (rc == 0)
        pipe_log_info("dedup redis view rebuilt from the store",
                      "epoch=%s objects=%llu keys=%llu ms=%lld", rb->epoch,
                      (unsigned long long)rb->objects, (unsigned long long)rb->keys,
                      (long long)(pipe_clock_mono_ms() - rb->t0));
    return rc;
}

/* ---- claiming --------------------------------------------------------------------- */

/* Under the lease, before a claim reads anything. Read every time: only a
 * holder rebuilds, so the epoch cannot change under us, and a view rebuilt
 * by anyone for this store (or one built for another store) is noticed at
 * once. */
static int redis_check(struct pipe_dedup *d, const struct pipe__dedup_claim *c)
{
    struct rds *R = d->impl;
    ctx_of(R, c, &R->cur);
    int rc = epoch_get(d, R, R->cur.epoch);
    if (rc == PIPE_ENOTFOUND)
        rc = PIPE__DEDUP_STALE;
    if (rc == 0)
        view_of(R, R->cur.epoch, R->cur.view);
    return rc;
}

static bool redis_covers(struct pipe_dedup *d, const struct pipe__dedup_claim *c)
{
    struct claim_ctx x;
    ctx_of(d->impl, c, &x);
    return x.in_view;
}

/* The claim script's generations: the write generation first (when the
 * claim goes into the view), then the window's, newest first. */
static void add_generations(const struct claim_ctx *c, struct script_run *sr, char gens[4][24])
{
    int k = 0;
    if (c->in_view)
        snprintf(gens[k], sizeof gens[k], "%lld", (long long)c->gen),
            sr->argv[sr->argc++] = gens[k++];
    for (int64_t g = c->hi_gen; g >= c->lo_gen && k < 4; g--)
        if (!c->in_view || g != c->gen) {
            snprintf(gens[k], sizeof gens[k], "%lld", (long long)g);
            sr->argv[sr->argc++] = gens[k++];
        }
}

/* Looks keys up and, when the claim's generation is in the view, claims
 * the NEW ones in the same script. A failure part way leaves some claims
 * of this job in Redis, unknown which: harmless, the job's re-run finds
 * them MINE. */
static int redis_lookup(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                        const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts)
{
    struct rds *R = d->impl;
    const struct claim_ctx *x = &R->cur;
    struct pipe_dedup_key *ask = pipe_malloc(n * sizeof *ask);
    size_t *pos = pipe_malloc(n * sizeof *pos);
    uint8_t *v = pipe_malloc(n);
    memcpy(ask, keys, n * sizeof *ask);
    for (size_t i = 0; i < n; i++)
        pos[i] = i;
    sort_by_bucket(R, ask, pos, n);
    char gens[4][24], buckets[16], exp[24], base[PREFIX_MAX + 32];
    snprintf(base, sizeof base, "%sdedup:v:%s:", R->prefix, x->epoch);
    snprintf(buckets, sizeof buckets, "%u", R->buckets);
    snprintf(exp, sizeof exp, "%lld", (long long)expire_at(R, x->gen));
    struct script_run sr = {
        .body = LUA_CLAIM,
        .argv = {R->marker, x->view, base, c->job_id, buckets, x->in_view ? "1" : "0", exp, NULL},
        .argc = 8,
        .keys_at = 7,
        .verdicts = v,
    };
    add_generations(x, &sr, gens);
    int rc = run_script(R, &sr, ask, n);
    if (rc == 0 && sr.biggest > R->listpack_max)
        pipe_log_warn("dedup buckets outgrow the compact hash encoding: raise buckets= in the "
                      "dedup URL (or hash-max-listpack-entries)",
                      "entries=%lld max=%lld buckets=%u", sr.biggest, R->listpack_max, R->buckets);
    for (size_t j = 0; j < n && rc == 0; j++)
        verdicts[pos[j]] = v[j];
    pipe_free(v);
    pipe_free(pos);
    pipe_free(ask);
    return rc;
}

/* After a failed claim: take back the Redis claims it made (keys that were
 * NEW), so nothing stays claimed that the caller was told was not. Best
 * effort: a claim left behind is the job's own MINE when it is re-run. */
static void redis_forget(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                         const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts)
{
    struct rds *R = d->impl;
    const struct claim_ctx *x = &R->cur;
    struct pipe_dedup_key *made = pipe_malloc(n * sizeof *made);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (verdicts[i] == PIPE_DEDUP_NEW)
            made[m++] = keys[i];
    char gen[24], buckets[16], base[PREFIX_MAX + 32];
    snprintf(gen, sizeof gen, "%lld", (long long)x->gen);
    snprintf(buckets, sizeof buckets, "%u", R->buckets);
    snprintf(base, sizeof base, "%sdedup:v:%s:", R->prefix, x->epoch);
    struct script_run sr = {
        .body = LUA_UNDO,
        .argv = {R->marker, x->view, base, c->job_id, buckets, NULL, gen},
        .argc = 7,
        .keys_at = 5,
    };
    sort_by_bucket(R, made, NULL, m);
    if (x->in_view && m && run_script(R, &sr, made, m) != 0)
        pipe_log_warn("could not undo dedup claims in redis", "job=%s keys=%zu", c->job_id, m);
    pipe_free(made);
}

static const char *const redis_schemes[] = {"redis", "unix", NULL};

const struct pipe_dedup_ops pipe__dedup_redis_ops = {
    .name = "redis",
    .schemes = redis_schemes,
    .open = redis_open,
    .close = redis_close,
    .load = redis_load,
    .check = redis_check,
    .covers = redis_covers,
    .lookup = redis_lookup,
    .forget = redis_forget,
    .rebuild_begin = redis_rebuild_begin,
    .rebuild_publish = redis_rebuild_publish,
};
