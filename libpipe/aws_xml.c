/* aws_xml — a streaming expat reader for S3 and STS responses (see
 * aws_xml.h). Namespaces are ignored: element names are compared bare. */
#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/aws_xml.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

#define XML_DEPTH_MAX 16
#define XML_TEXT_MAX  8192
#define XML_NAME_MAX  64

struct xml_state {
    XML_Parser p;
    pipe_awsxml_fn fn;
    void *arg;
    int depth, rc;
    char names[XML_DEPTH_MAX][XML_NAME_MAX];
    char text[XML_TEXT_MAX + 1];
    size_t text_len;
};

static void stop(struct xml_state *x, int rc)
{
    if (x->rc == 0)
        x->rc = rc;
    XML_StopParser(x->p, XML_FALSE);
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_state *x = ud;
    (void)attrs;
    if (x->depth >= XML_DEPTH_MAX) {
        stop(x, PIPE_EPARSE);
        return;
    }
    const char *colon = strrchr(name, ':');
    snprintf(x->names[x->depth++], XML_NAME_MAX, "%s", colon ? colon + 1 : name);
    x->text_len = 0;
    x->text[0] = '\0';
}

static void on_end(void *ud, const XML_Char *name)
{
    struct xml_state *x = ud;
    (void)name;
    if (x->depth <= 0)
        return;
    x->depth--;
    const char *parent = x->depth > 0 ? x->names[x->depth - 1] : "";
    int rc = x->fn(x->arg, parent, x->names[x->depth], x->text);
    x->text_len = 0;
    x->text[0] = '\0';
    if (rc < 0)
        stop(x, rc);
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    struct xml_state *x = ud;
    if (x->text_len + (size_t)len > XML_TEXT_MAX) {
        stop(x, PIPE_EPARSE);
        return;
    }
    memcpy(x->text + x->text_len, s, (size_t)len);
    x->text_len += (size_t)len;
    x->text[x->text_len] = '\0';
}

int pipe_awsxml_parse(const char *xml, size_t len, pipe_awsxml_fn fn, void *arg)
{
    struct xml_state *x = pipe_calloc(1, sizeof *x);
    int rc = 0;
    x->fn = fn;
    x->arg = arg;
    x->p = XML_ParserCreate("UTF-8");
    if (x->p == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    XML_SetUserData(x->p, x);
    XML_SetElementHandler(x->p, on_start, on_end);
    XML_SetCharacterDataHandler(x->p, on_text);
    while (len > 0 && rc == 0) { /* expat takes an int length */
        int n = len > 1 << 20 ? 1 << 20 : (int)len;
        if (XML_Parse(x->p, xml, n, XML_FALSE) != XML_STATUS_OK)
            rc = x->rc ? x->rc : PIPE_EPARSE;
        xml += n;
        len -= (size_t)n;
    }
    if (rc == 0 && XML_Parse(x->p, "", 0, XML_TRUE) != XML_STATUS_OK)
        rc = x->rc ? x->rc : PIPE_EPARSE;
    XML_ParserFree(x->p);
out:
    pipe_free(x);
    return rc;
}
