/* aws_xml — the little XML that S3 and STS answer with (a listing, an
 * error, a set of credentials), read with expat into leaf elements: the
 * caller gets each element's name, its parent's name and its text. */
#ifndef PIPE_AWS_XML_H
#define PIPE_AWS_XML_H

#include <stddef.h>

/* Called at the end of every element; text is the element's own character
 * data (NUL-terminated; "" for a container). Return 0 to go on, < 0 to stop
 * with that code. */
typedef int (*pipe_awsxml_fn)(void *arg, const char *parent, const char *name, const char *text);

/* pipe_awsxml_parse — parses len bytes of XML, calling fn for each element.
 * Text longer than 8 KiB or nesting deeper than 16 is refused. 0, fn's code,
 * or PIPE_EPARSE. */
int pipe_awsxml_parse(const char *xml, size_t len, pipe_awsxml_fn fn, void *arg);

#endif
