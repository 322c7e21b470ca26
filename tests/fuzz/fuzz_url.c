/* libFuzzer target: the URL parser (libpipe/url.c) over any bytes, as an
 * operator's or a config file's store, lease and Redis URLs reach it.
 * Checks the invariants url.h promises for what it accepts, and decodes
 * every query value as a form field.
 * Build:
 *   make fuzz (FUZZ_PIPE_TARGETS), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_url.c libpipe/{err,mem,url}.c -lcurl -o fuzz_url */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/mem.h"
#include "libpipe/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = pipe_strndup((const char *)data, size);
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why = NULL;
    if (pipe_url_parse(text, &u, &bad, &why) == 0) {
        if (!u.scheme || !u.host || !u.path || u.port < -1 || u.port > 65535 ||
            (u.password && !u.user) || (u.ipv6 && strchr(u.host, '[')) ||
            (u.path[0] != '\0' && u.path[0] != '/' && !u.relative))
            abort();
        const char *q = u.query ? u.query : "";
        struct pipe_url_param p;
        while (pipe_url_query_next(&q, &p)) {
            if (p.name_len == 0 && p.value == NULL)
                abort(); /* empty items are skipped */
            char dec[256];
            if (p.value_len <= sizeof dec &&
                pipe_url_form_decode(p.value, p.value_len, dec) > p.value_len)
                abort(); /* decoding never grows an item */
        }
        pipe_url_cleanup(&u);
    } else if (why == NULL || *why == '\0') {
        abort();
    }
    pipe_free(text);
    return 0;
}
