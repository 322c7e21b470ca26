/* loadgen_gen — `sluicectl gen`, a test-load tool: seeded synthetic analytics events as NDJSON on
 * stdout, with a chosen share of client retries (exact repeats), malformed
 * lines of every kind the filter must reject, and an optional manifest of the
 * outcome the filter is expected to give each line. Output is a pure
 * function of the flags (with a fixed --end), so tests can compare bytes. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "tools/sluicectl/ctl.h"
#include "tools/sluicectl/loadgen_gen.h"

#define GEN_MAX_TYPES   1000
#define GEN_MAX_PROPS   8
#define GEN_USERS       20000
#define GEN_RECENT      4096         /* retries repeat one of the last N good events */
#define GEN_EVENT_ROOM  (160 * 1024) /* worst-case bytes of one line */
#define GEN_FLUSH_BYTES (1024 * 1024)

struct gen_cfg {
    int64_t count;
    int64_t seed;
    int64_t types;
    uint64_t size;
    char *dup_rate;
    char *bad_rate;
    char *no_id_rate;
    char *end;
    int64_t span_ms;
    char *manifest;
};

static const struct pipe_conf_opt gen_opts[] = {
    {"count", PIPE_CONF_INT, "1000", offsetof(struct gen_cfg, count), "lines to write", 0,
     INT64_MAX, "N"},
    {"seed", PIPE_CONF_INT, "1", offsetof(struct gen_cfg, seed),
     "random seed: the same flags give byte-identical output", 0, INT64_MAX, "N"},
    {"types", PIPE_CONF_INT, "40", offsetof(struct gen_cfg, types),
     "distinct event types (Zipf-skewed; past 40 they are custom_event_N)", 1, GEN_MAX_TYPES, "N"},
    {"size", PIPE_CONF_SIZE, "600", offsetof(struct gen_cfg, size),
     "average bytes per good event (an event is never cut below its natural ~600 bytes)", 0, 60000,
     "BYTES"},
    {"dup_rate", PIPE_CONF_STR, "0", offsetof(struct gen_cfg, dup_rate),
     "fraction of lines that repeat an earlier event exactly (a client retry)", 0, 0, "F"},
    {"bad_rate", PIPE_CONF_STR, "0", offsetof(struct gen_cfg, bad_rate),
     "fraction of malformed lines, cycling through every rejection reason", 0, 0, "F"},
    {"no_id_rate", PIPE_CONF_STR, "0", offsetof(struct gen_cfg, no_id_rate),
     "fraction of good events without an id (the filter derives one)", 0, 0, "F"},
    {"end", PIPE_CONF_STR, "now", offsetof(struct gen_cfg, end),
     "end of the ts range (RFC 3339, epoch ms, now, -1h, ...); fix it for repeatable output", 0, 0,
     "TIME"},
    {"span", PIPE_CONF_DURATION, "10m", offsetof(struct gen_cfg, span_ms),
     "length of the ts range ending at --end", 0, INT64_MAX, "DURATION"},
    {"manifest", PIPE_CONF_STR, NULL, offsetof(struct gen_cfg, manifest),
     "write line_no, accepted|rejected, event, id, reason (TSV, one row per line) here", 0, 0,
     "FILE"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program gen_program = {
    .name = "sluicectl gen",
    .summary = "Writes seeded synthetic analytics events as NDJSON on stdout: Zipf-skewed "
               "event types, nested context and per-type properties, optional retries, "
               "malformed lines and events without ids. --manifest records what the filter "
               "should do with each line (\"-\" marks an unknown or empty field).",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {gen_opts, NULL},
};

/* ---- random numbers -------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    /* splitmix64's finaliser: a bijection, so distinct inputs never collide. */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* rng_below — uniform in [0, n) for n < 2^32. */
static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static inline double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

#define PICK(r, list) ((list)[rng_below((r), (uint32_t)(sizeof(list) / sizeof((list)[0])))])

/* ---- vocabulary ------------------------------------------------------ */

/* Event types, most frequent first. Property specs: "name:kind[param]"
 * separated by spaces; kinds are listed in write_prop(). */
static const struct gen_type_spec {
    const char *name;
    const char *props;
} type_specs[] = {
    {"page_view", "path:u title:t referrer:u load_time_ms:i6000"},
    {"screen_view", "screen_name:k previous_screen:k duration_ms:i60000"},
    {"button_click", "button_id:k label:t position:i20 screen:k"},
    {"product_viewed", "product:p list:k position:i50 recommended:b"},
    {"search", "query:t results:i500 filters:a page:i10 latency_ms:i900"},
    {"app_open", "from_background:b launch_ms:i4000 push_enabled:b"},
    {"session_start", "session_id:h is_first:b entry:u"},
    {"link_click", "href:u text:t outbound:b"},
    {"add_to_cart", "cart_id:h product:p quantity:i5 value:m300 currency:c"},
    {"video_play", "video_id:h title:t position_s:i3600 quality:k autoplay:b volume:f"},
    {"session_end", "session_id:h duration_s:i7200 events:i300"},
    {"app_background", "foreground_s:i3600 screen:k"},
    {"product_list_viewed", "list:k category:k products:P page:i20"},
    {"scroll_depth", "path:u percent:i101 max_percent:i101"},
    {"form_submit", "form_id:k fields:i20 valid:b errors:a"},
    {"cart_viewed", "cart_id:h products:P value:m900 currency:c"},
    {"remove_from_cart", "cart_id:h product:p quantity:i5"},
    {"ad_impression", "ad_id:h placement:k creative:k viewable:b cpm:m20"},
    {"video_pause", "video_id:h position_s:i3600 buffered:f"},
    {"notification_received", "campaign_id:h channel:k silent:b"},
    {"checkout_started", "checkout_id:h products:P value:m900 currency:c coupon:k"},
    {"experiment_viewed", "experiment:x surface:k"},
    {"login", "method:k success:b attempts:i4"},
    {"share", "target:k content_id:h method:k"},
    {"video_complete", "video_id:h duration_s:i3600 watched:f"},
    {"checkout_step_completed", "checkout_id:h step:i6 option:k"},
    {"notification_opened", "campaign_id:h action:k delay_s:i86400"},
    {"payment_info_entered", "checkout_id:h payment_method:k saved:b"},
    {"purchase", "order_id:h products:P revenue:m900 tax:m90 shipping:m25 currency:c "
                 "coupon:k first_order:b"},
    {"wishlist_added", "product:p wishlist_id:h"},
    {"ad_click", "ad_id:h placement:k creative:k cpc:m5"},
    {"coupon_applied", "coupon:k discount:m50 order_id:h"},
    {"error_shown", "code:i600 message:t screen:k fatal:b"},
    {"signup", "method:k plan:k referral:b tags:a"},
    {"review_submitted", "product:p rating:i6 body:t verified:b"},
    {"logout", "reason:k session_s:i86400"},
    {"subscription_started", "plan:k price:m50 currency:c trial_days:i31 annual:b"},
    {"app_installed", "source:k campaign_id:h"},
    {"app_crashed", "exception:k thread:k fatal:b uptime_s:i86400"},
    {"order_refunded", "order_id:h amount:m900 currency:c reason:k products:P"},
};
#define N_TYPE_SPECS (sizeof type_specs / sizeof type_specs[0])

static const char *const words[] = {
    "blue",       "running",  "shoes",   "summer",  "sale",   "wireless", "headphones", "organic",
    "coffee",     "beans",    "linen",   "shirt",   "gift",   "card",     "kids",       "backpack",
    "waterproof", "jacket",   "café",    "crème",   "brûlée", "München",  "naïve",      "東京",
    "ホテル",     "smart",    "watch",   "vintage", "lamp",   "yoga",     "mat",        "garden",
    "chair",      "espresso", "machine", "travel",  "mug",    "leather",  "wallet",     "desk",
    "ergonomic",  "keyboard", "pro",     "mini",    "max",    "starter",  "kit",        "señor",
};
/* ASCII only, so padding can stop at any byte without splitting a character. */
static const char *const pad_words[] = {
    "lorem", "ipsum", "dolor",   "sit",    "amet",       "consectetur", "adipiscing", "elit",
    "sed",   "do",    "eiusmod", "tempor", "incididunt", "ut",          "labore",     "et",
};
static const char *const keywords[] = {
    "home",        "search",  "product",     "cart",   "checkout", "account",  "settings",
    "feed",        "profile", "email",       "google", "apple",    "facebook", "sms",
    "banner",      "sidebar", "inline",      "footer", "modal",    "standard", "premium",
    "basic",       "annual",  "WELCOME10",   "SPRING", "card",     "paypal",   "apple_pay",
    "electronics", "apparel", "home_garden", "beauty", "toys",     "sports",   "books",
};
static const char *const paths[] = {
    "/",
    "/products",
    "/products/shoes",
    "/cart",
    "/checkout",
    "/account",
    "/search",
    "/blog/how-to-choose-a-backpack",
    "/help/returns",
    "/collections/summer",
    "/p/sku-18273",
    "/p/sku-99120",
    "/login",
    "/signup",
};
static const char *const currencies[] = {"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL"};
static const char *const locales[] = {"en-US", "en-GB", "de-DE", "fr-FR", "ja-JP",
                                      "pt-BR", "es-ES", "it-IT", "nl-NL", "ko-KR"};
static const char *const timezones[] = {
    "America/New_York", "America/Los_Angeles", "Europe/London",     "Europe/Berlin",
    "Europe/Paris",     "Asia/Tokyo",          "America/Sao_Paulo", "Australia/Sydney",
};
static const struct device {
    const char *manufacturer, *model, *os;
} devices[] = {
    {"Apple", "iPhone15,2", "iOS"},    {"Apple", "iPhone14,5", "iOS"},
    {"Apple", "iPad13,1", "iPadOS"},   {"samsung", "SM-S911B", "Android"},
    {"Google", "Pixel 8", "Android"},  {"Xiaomi", "2201117TG", "Android"},
    {"OnePlus", "CPH2449", "Android"}, {"samsung", "SM-A536B", "Android"},
};
static const char *const browsers[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
};
static const char *const utm_sources[] = {"google", "newsletter", "facebook", "tiktok", "bing"};
static const char *const utm_mediums[] = {"cpc", "email", "social", "display"};

/* ---- the generator --------------------------------------------------- */

enum platform { PLAT_WEB, PLAT_IOS, PLAT_ANDROID, PLAT_SERVER };

struct gen_prop {
    char name[32];
    char kind;
    uint32_t param;
};

struct gen_type {
    char name[32];
    struct gen_prop props[GEN_MAX_PROPS];
    int nprops;
};

/* A recent good event: enough to regenerate its exact bytes for a retry. */
struct gen_recent {
    uint64_t seq;
    uint32_t target;
    bool no_id;
};

struct gen {
    struct gen_cfg cfg;
    double dup_rate, bad_rate, no_id_rate;
    int64_t end_ms;
    uint64_t seed;
    struct gen_type *types;
    uint32_t *cum; /* cumulative Zipf weights scaled to 2^32 */
    size_t ntypes;
    struct gen_recent recent[GEN_RECENT];
    size_t nrecent;
    uint64_t good_bytes, ngood;
    struct gen_bad bad; /* malformed lines: loadgen_bad.c */
    struct pipe_buf out;
    FILE *manifest;
};

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)
static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}
#define PUT_STR(p, s) put_str((p), (s))

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex(char *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--)
        *p++ = hex[(v >> (i * 4)) & 15];
    return p;
}

/* put_fixed — v / 10^decimals as a JSON number ("12.34"). */
static char *put_fixed(char *p, uint64_t v, int decimals)
{
    uint64_t div = decimals == 3 ? 1000 : 100;
    p = put_u64(p, v / div);
    *p++ = '.';
    uint64_t frac = v % div;
    for (uint64_t d = div / 10; d; d /= 10)
        *p++ = (char)('0' + frac / d % 10);
    return p;
}

static char *put_qstr(char *p, const char *s)
{
    *p++ = '"';
    p = PUT_STR(p, s);
    *p++ = '"';
    return p;
}

static char *put_key(char *p, const char *k)
{
    p = put_qstr(p, k);
    *p++ = ':';
    return p;
}

/* The id of event seq: 128 bits shaped like a UUID. The first half is a
 * bijection of seq, so ids never repeat within a seed. */
void ctl_gen_make_id(const struct gen *g, uint64_t seq, char out[37])
{
    uint64_t a = mix64(seq ^ mix64(g->seed ^ 0x1d1d1d1dULL));
    uint64_t b = mix64(a ^ g->seed ^ 0x5eed5eedULL);
    char *p = out;
    p = put_hex(p, a >> 32, 8);
    *p++ = '-';
    p = put_hex(p, (a >> 16) & 0xffff, 4);
    *p++ = '-';
    p = put_hex(p, a & 0xffff, 4);
    *p++ = '-';
    p = put_hex(p, b >> 48, 4);
    *p++ = '-';
    p = put_hex(p, b & 0xffffffffffffULL, 12);
    *p = '\0';
}

static char *put_words(char *p, struct rng *r, int min, int max)
{
    int n = min + (int)rng_below(r, (uint32_t)(max - min + 1));
    *p++ = '"';
    for (int i = 0; i < n; i++) {
        if (i)
            *p++ = ' ';
        p = PUT_STR(p, PICK(r, words));
    }
    *p++ = '"';
    return p;
}

static char *put_product(char *p, struct rng *r)
{
    p = PUT_LIT(p, "{\"sku\":\"SKU-");
    p = put_u64(p, 10000 + rng_below(r, 90000));
    p = PUT_LIT(p, "\",\"name\":");
    p = put_words(p, r, 1, 3);
    p = PUT_LIT(p, ",\"category\":");
    p = put_qstr(p, PICK(r, keywords));
    p = PUT_LIT(p, ",\"price\":");
    p = put_fixed(p, 99 + rng_below(r, 30000), 2);
    p = PUT_LIT(p, ",\"quantity\":");
    p = put_u64(p, 1 + rng_below(r, 4));
    *p++ = '}';
    return p;
}

/* write_prop — one property value of the given kind. */
static char *write_prop(char *p, struct rng *r, const struct gen_prop *pr)
{
    switch (pr->kind) {
    case 't':
        return put_words(p, r, 1, 4);
    case 'u':
        return put_qstr(p, PICK(r, paths));
    case 'i':
        return put_u64(p, rng_below(r, pr->param));
    case 'm':
        return put_fixed(p, 1 + rng_below(r, pr->param * 100), 2);
    case 'f':
        return put_fixed(p, rng_below(r, 1001), 3);
    case 'b':
        return rng_below(r, 2) ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
    case 'k':
        return put_qstr(p, PICK(r, keywords));
    case 'c':
        return put_qstr(p, PICK(r, currencies));
    case 'h':
        p = PUT_LIT(p, "\"");
        p = put_hex(p, rng_next(r), 16);
        return PUT_LIT(p, "\"");
    case 'p':
        return put_product(p, r);
    case 'a':
    case 'P': {
        int n = 1 + (int)rng_below(r, pr->kind == 'a' ? 4 : 3);
        *p++ = '[';
        for (int i = 0; i < n; i++) {
            if (i)
                *p++ = ',';
            p = pr->kind == 'a' ? put_qstr(p, PICK(r, words)) : put_product(p, r);
        }
        *p++ = ']';
        return p;
    }
    case 'x':
        p = PUT_LIT(p, "{\"id\":\"exp_");
        p = put_u64(p, rng_below(r, 40));
        p = PUT_LIT(p, "\",\"variant\":");
        p = put_qstr(p, rng_below(r, 2) ? "control" : "treatment");
        p = PUT_LIT(p, ",\"allocation\":");
        p = put_fixed(p, rng_below(r, 1001), 3);
        *p++ = '}';
        return p;
    default:
        return PUT_LIT(p, "null");
    }
}

static char *put_ip(char *p, uint64_t h)
{
    static const char *const nets[] = {"192.0.2.", "198.51.100.", "203.0.113."};
    p = PUT_STR(p, nets[h % 3]);
    return put_u64(p, 1 + (h >> 8) % 254);
}

static char *put_version(char *p, uint64_t h, int major_base)
{
    p = put_u64(p, (uint64_t)major_base + h % 4);
    *p++ = '.';
    p = put_u64(p, (h >> 4) % 20);
    *p++ = '.';
    return put_u64(p, (h >> 12) % 10);
}

/* write_context — the "context" member; the attributes of user u (device,
 * locale, app version, ...) are a function of the seed and u alone, so one
 * user looks the same in every event. */
static char *write_context(char *p, const struct gen *g, struct rng *r, uint64_t u,
                           enum platform plat)
{
    uint64_t h = mix64(g->seed ^ mix64(u + 0x7777));
    uint64_t h2 = mix64(h);
    p = PUT_LIT(p, "\"context\":{");
    if (plat == PLAT_IOS || plat == PLAT_ANDROID) {
        const struct device *d =
            &devices[(plat == PLAT_IOS ? 0 : 3) + h % (plat == PLAT_IOS ? 3 : 5)];
        p = PUT_LIT(p, "\"app\":{\"name\":\"Shoply\",\"version\":");
        *p++ = '"';
        char *v = p;
        p = put_version(p, h >> 20, 5);
        size_t vlen = (size_t)(p - v);
        p = PUT_LIT(p, "\",\"build\":\"");
        for (size_t i = 0; i < vlen; i++)
            if (v[i] != '.')
                *p++ = v[i];
        p = PUT_LIT(p, "\"},\"device\":{\"id\":\"");
        p = put_hex(p, h2, 16);
        p = PUT_LIT(p, "\",\"manufacturer\":");
        p = put_qstr(p, d->manufacturer);
        p = PUT_LIT(p, ",\"model\":");
        p = put_qstr(p, d->model);
        p = PUT_LIT(p, ",\"type\":");
        p = put_qstr(p, plat == PLAT_IOS ? "ios" : "android");
        p = PUT_LIT(p, "},\"os\":{\"name\":");
        p = put_qstr(p, d->os);
        p = PUT_LIT(p, ",\"version\":\"");
        p = put_version(p, h2 >> 24, plat == PLAT_IOS ? 15 : 11);
        p = PUT_LIT(p, "\"}");
        if (rng_below(r, 2) == 0) {
            p = PUT_LIT(p, ",\"screen\":{\"width\":");
            p = put_u64(p, 720 + (h2 >> 40) % 4 * 120);
            p = PUT_LIT(p, ",\"height\":");
            p = put_u64(p, 1600 + (h2 >> 44) % 4 * 240);
            *p++ = '}';
        }
        if (rng_below(r, 3) == 0) {
            p = PUT_LIT(p, ",\"network\":{\"wifi\":");
            p = rng_below(r, 3) ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
            *p++ = '}';
        }
        p = PUT_LIT(p, ",\"library\":{\"name\":");
        p = put_qstr(p, plat == PLAT_IOS ? "analytics-ios" : "analytics-android");
    } else if (plat == PLAT_WEB) {
        p = PUT_LIT(p, "\"page\":{\"url\":\"https://shop.example.com");
        const char *path = PICK(r, paths);
        p = PUT_STR(p, path);
        *p++ = '"';
        uint32_t ref = rng_below(r, 3); /* direct traffic has no referrer */
        if (ref) {
            p = PUT_LIT(p, ",\"referrer\":");
            p = put_qstr(p, ref == 1 ? "https://www.google.com/" : "https://shop.example.com/");
        }
        p = PUT_LIT(p, "},\"user_agent\":");
        p = put_qstr(p, browsers[h2 % 3]);
        if (rng_below(r, 6) == 0) {
            p = PUT_LIT(p, ",\"campaign\":{\"source\":");
            p = put_qstr(p, PICK(r, utm_sources));
            p = PUT_LIT(p, ",\"medium\":");
            p = put_qstr(p, PICK(r, utm_mediums));
            p = PUT_LIT(p, ",\"name\":\"spring_sale\",\"term\":");
            p = put_qstr(p, PICK(r, words));
            p = PUT_LIT(p, ",\"content\":\"banner_");
            p = put_u64(p, rng_below(r, 5));
            *p++ = '"';
            *p++ = '}';
        }
        p = PUT_LIT(p, ",\"library\":{\"name\":\"analytics.js\"");
    } else {
        p = PUT_LIT(p, "\"library\":{\"name\":\"analytics-python\"");
    }
    p = PUT_LIT(p, ",\"version\":\"");
    p = put_version(p, h2 >> 52, 2);
    p = PUT_LIT(p, "\"},\"locale\":");
    p = put_qstr(p, locales[(h >> 8) % (sizeof locales / sizeof locales[0])]);
    p = PUT_LIT(p, ",\"timezone\":");
    p = put_qstr(p, timezones[(h >> 16) % (sizeof timezones / sizeof timezones[0])]);
    p = PUT_LIT(p, ",\"ip\":\"");
    p = put_ip(p, h2 >> 8);
    p = PUT_LIT(p, "\"},");
    return p;
}

static char *write_ts(char *p, const struct gen *g, struct rng *r)
{
    int64_t span = g->cfg.span_ms;
    int64_t ms = g->end_ms - (span > 0 ? (int64_t)(rng_next(r) % (uint64_t)span) : 0);
    uint32_t style = rng_below(r, 20);
    if (style < 2)
        return put_u64(p, (uint64_t)(ms < 0 ? 0 : ms)); /* epoch milliseconds */
    char tmp[PIPE_CLOCK_RFC3339_LEN + 1];
    if (style == 2) {
        /* A client in UTC+05:30 that writes local time with its offset. */
        pipe_clock_format_rfc3339(ms + 330 * PIPE_MIN_MS, tmp);
        *p++ = '"';
        p = put(p, tmp, PIPE_CLOCK_RFC3339_LEN - 1);
        return PUT_LIT(p, "+05:30\"");
    }
    pipe_clock_format_rfc3339(ms, tmp);
    *p++ = '"';
    p = put(p, tmp, PIPE_CLOCK_RFC3339_LEN);
    *p++ = '"';
    return p;
}

/* write_pad — a "note" property that brings the line to about target bytes. */
static char *write_pad(char *p, const char *line, struct rng *r, uint32_t target)
{
    size_t have = (size_t)(p - line) + 3; /* + "}}\n" */
    if (target <= have + 16)
        return p;
    size_t room = target - have - 12; /* ,"note":"" */
    p = PUT_LIT(p, ",\"note\":\"");
    char *start = p;
    while ((size_t)(p - start) < room) {
        const char *w = PICK(r, pad_words);
        size_t n = strlen(w), left = room - (size_t)(p - start);
        if (p != start) {
            *p++ = ' ';
            left--;
        }
        p = put(p, w, n < left ? n : left);
    }
    *p++ = '"';
    return p;
}

/* ctl_gen_write_event — event seq as one NDJSON line (with "\n") at p; returns the
 * end. Everything but ov and target is a function of the seed and seq. */
char *ctl_gen_write_event(const struct gen *g, char *p, uint64_t seq, uint32_t target, bool no_id,
                          const struct gen_over *ov, struct gen_row *row)
{
    char *line = p;
    struct rng r = {mix64(g->seed ^ mix64(seq ^ 0xe7e7e7e7ULL))};
    uint32_t x = (uint32_t)(rng_next(&r) >> 32), t = 0;
    while (t + 1 < g->ntypes && g->cum[t] <= x)
        t++;
    const struct gen_type *ty = &g->types[t];
    uint64_t u = rng_below(&r, GEN_USERS);
    uint64_t uh = mix64(g->seed ^ mix64(u + 0x7777));
    uint32_t pl = (uint32_t)(uh >> 40) % 20;
    enum platform plat = pl < 9    ? PLAT_WEB
                         : pl < 14 ? PLAT_IOS
                         : pl < 19 ? PLAT_ANDROID
                                   : PLAT_SERVER;
    row->event = ty->name;
    row->id[0] = '\0';
    *p++ = '{';
    if (!ov->omit_event) {
        p = PUT_LIT(p, "\"event\":");
        p = ov->event_raw ? PUT_STR(p, ov->event_raw) : put_qstr(p, ty->name);
        *p++ = ',';
    }
    if (ov->id_raw) {
        p = PUT_LIT(p, "\"id\":");
        p = PUT_STR(p, ov->id_raw);
        *p++ = ',';
    } else if (!no_id && !ov->omit_id) {
        ctl_gen_make_id(g, seq, row->id);
        p = PUT_LIT(p, "\"id\":\"");
        p = put(p, row->id, 36);
        p = PUT_LIT(p, "\",");
    }
    p = PUT_LIT(p, "\"ts\":");
    p = ov->ts_raw ? PUT_STR(p, ov->ts_raw) : write_ts(p, g, &r);
    p = PUT_LIT(p, ",\"anonymous_id\":\"");
    p = put_hex(p, mix64(uh ^ 0xa1), 16);
    p = put_hex(p, mix64(uh ^ 0xa2), 16);
    *p++ = '"';
    if (plat == PLAT_SERVER || (uh & 7) < 5) {
        p = PUT_LIT(p, ",\"user_id\":\"usr_");
        p = put_hex(p, uh, 12);
        *p++ = '"';
    }
    *p++ = ',';
    p = write_context(p, g, &r, u, plat);
    p = PUT_LIT(p, "\"properties\":{");
    for (int i = 0; i < ty->nprops; i++) {
        if (i)
            *p++ = ',';
        p = put_key(p, ty->props[i].name);
        p = write_prop(p, &r, &ty->props[i]);
    }
    if (ov->extra) {
        *p++ = ',';
        p = put(p, ov->extra, ov->extra_len);
    }
    p = write_pad(p, line, &r, target);
    return PUT_LIT(p, "}}\n");
}

/* ---- setup and the main loop ----------------------------------------- */

static int parse_props(struct gen_type *t, const char *spec)
{
    const char *s = spec;
    while (*s) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, ":");
        if (t->nprops == GEN_MAX_PROPS || n == 0 || n >= sizeof t->props[0].name || !s[n])
            return PIPE_EINVAL;
        struct gen_prop *pr = &t->props[t->nprops++];
        memcpy(pr->name, s, n);
        pr->name[n] = '\0';
        s += n + 1;
        pr->kind = *s++;
        pr->param = (uint32_t)strtoul(s, (char **)&s, 10);
        if (pr->param == 0)
            pr->param = 1;
    }
    return 0;
}

static int gen_init(struct gen *g)
{
    int rc = 0;
    if (pipe_clock_parse_time(g->cfg.end, pipe_clock_now_ms(), &g->end_ms) < 0) {
        fprintf(stderr, "sluicectl gen: --end: cannot parse \"%s\"\n", g->cfg.end);
        rc = PIPE_ECONFIG;
        goto out;
    }
    g->seed = mix64((uint64_t)g->cfg.seed + 0x51ce);
    g->ntypes = (size_t)g->cfg.types;
    g->types = pipe_calloc(g->ntypes, sizeof *g->types);
    g->cum = pipe_calloc(g->ntypes, sizeof *g->cum);
    double total = 0, acc = 0;
    for (size_t t = 0; t < g->ntypes; t++)
        total += 1.0 / pow((double)t + 1, 1.1);
    for (size_t t = 0; t < g->ntypes; t++) {
        struct gen_type *ty = &g->types[t];
        if (t < N_TYPE_SPECS) {
            snprintf(ty->name, sizeof ty->name, "%s", type_specs[t].name);
            rc = parse_props(ty, type_specs[t].props);
        } else {
            snprintf(ty->name, sizeof ty->name, "custom_event_%u", (unsigned)t + 1);
            rc = parse_props(ty, "value:i1000 label:t enabled:b");
        }
        if (rc < 0)
            goto out;
        acc += 1.0 / pow((double)t + 1, 1.1);
        g->cum[t] = t + 1 == g->ntypes ? UINT32_MAX : (uint32_t)(acc / total * 4294967295.0);
    }
    ctl_gen_bad_init(&g->bad);
    pipe_buf_init(&g->out, SIZE_MAX);
out:
    return rc;
}

static void gen_cleanup(struct gen *g)
{
    pipe_free(g->types);
    pipe_free(g->cum);
    ctl_gen_bad_cleanup(&g->bad);
    pipe_buf_cleanup(&g->out);
}

/* good_target — the length to pad the next fresh event to: the asked
 * average with some spread, nudged by what earlier events overshot. */
static uint32_t good_target(const struct gen *g, struct rng *r)
{
    int64_t size = (int64_t)g->cfg.size;
    if (size == 0)
        return 0;
    int64_t debt = size * (int64_t)g->ngood - (int64_t)g->good_bytes;
    if (debt > size / 2)
        debt = size / 2;
    if (debt < -size / 2)
        debt = -size / 2;
    int64_t t = size - size / 4 + (int64_t)rng_below(r, (uint32_t)(size / 2 + 1)) + debt;
    return t < 0 ? 0 : (uint32_t)t;
}

static int flush_out(struct gen *g)
{
    if (g->out.len && fwrite(g->out.data, 1, g->out.len, stdout) != g->out.len)
        return PIPE_EIO;
    pipe_buf_reset(&g->out);
    return 0;
}

static void write_row(FILE *f, uint64_t line_no, const struct gen_row *row)
{
    fprintf(f, "%" PRIu64 "\t%s\t%s\t%s\t%s\n", line_no, row->accepted ? "accepted" : "rejected",
            row->event ? row->event : "-", row->id[0] ? row->id : "-",
            row->accepted ? "-" : row->reason);
}

static int gen_run(struct gen *g)
{
    int rc = 0;
    struct rng r = {mix64(g->seed ^ 0xdec1de)};
    for (uint64_t i = 0; i < (uint64_t)g->cfg.count; i++) {
        struct gen_row row = {.accepted = true};
        rc = pipe_buf_reserve(&g->out, GEN_EVENT_ROOM);
        if (rc < 0)
            goto out;
        char *start = g->out.data + g->out.len, *end;
        double x = rng_unit(&r);
        if (x < g->bad_rate) {
            end = ctl_gen_write_bad(&g->bad, g, start, i, &row);
        } else if (x < g->bad_rate + g->dup_rate && g->nrecent > 0) {
            size_t n = g->nrecent < GEN_RECENT ? g->nrecent : GEN_RECENT;
            const struct gen_recent *e =
                &g->recent[(g->nrecent - 1 - rng_below(&r, (uint32_t)n)) % GEN_RECENT];
            struct gen_over ov = {0};
            end = ctl_gen_write_event(g, start, e->seq, e->target, e->no_id, &ov, &row);
        } else {
            struct gen_recent e = {.seq = i, .target = good_target(g, &r)};
            e.no_id = g->no_id_rate > 0 && rng_unit(&r) < g->no_id_rate;
            struct gen_over ov = {0};
            end = ctl_gen_write_event(g, start, e.seq, e.target, e.no_id, &ov, &row);
            g->recent[g->nrecent++ % GEN_RECENT] = e;
            g->ngood++;
            g->good_bytes += (uint64_t)(end - start);
        }
        g->out.len += (size_t)(end - start);
        if (g->manifest)
            write_row(g->manifest, i + 1, &row);
        if (g->out.len >= GEN_FLUSH_BYTES && (rc = flush_out(g)) < 0)
            goto out;
    }
    rc = flush_out(g);
    if (rc == 0 && fflush(stdout) != 0)
        rc = PIPE_EIO;
out:
    return rc;
}

int ctl_gen_main(int argc, char **argv)
{
    /* Zeroed, so cleaning up after any failure below is safe. */
    struct gen *g = pipe_calloc(1, sizeof *g);
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&gen_program, &g->cfg, argc, argv, &first_arg);
    if (rc < 0) {
        exit_code = ctl_exit_from_conf(rc);
        goto out;
    }
    if (first_arg < argc) {
        fprintf(stderr, "sluicectl gen: unexpected argument \"%s\"\n", argv[first_arg]);
        goto out;
    }
    if (ctl_parse_rate("gen", "dup-rate", g->cfg.dup_rate, &g->dup_rate) < 0 ||
        ctl_parse_rate("gen", "bad-rate", g->cfg.bad_rate, &g->bad_rate) < 0 ||
        ctl_parse_rate("gen", "no-id-rate", g->cfg.no_id_rate, &g->no_id_rate) < 0 ||
        gen_init(g) < 0)
        goto out;
    if (g->cfg.manifest && (g->manifest = fopen(g->cfg.manifest, "w")) == NULL) {
        fprintf(stderr, "sluicectl gen: --manifest %s: %s\n", g->cfg.manifest, strerror(errno));
        exit_code = CTL_EXIT_FAIL;
        goto out;
    }
    rc = gen_run(g);
    if (g->manifest && fclose(g->manifest) != 0 && rc == 0)
        rc = PIPE_EIO;
    exit_code = CTL_EXIT_OK;
    if (rc < 0) {
        fprintf(stderr, "sluicectl gen: writing output: %s\n", pipe_strerror(rc));
        exit_code = CTL_EXIT_FAIL;
    }
out:
    gen_cleanup(g);
    pipe_conf_cleanup(&gen_program, &g->cfg);
    pipe_free(g);
    return exit_code;
}
