/* err — error codes shared by every libpipe module.
 *
 * Fallible functions return 0 or a negative code: either -errno from the OS
 * or one of the PIPE_E* values below (all below -1000, so they never collide
 * with errno). Detail such as a path or an S3 error code lives in the object
 * that failed, not in the code. */
#ifndef PIPE_ERR_H
#define PIPE_ERR_H

#include <stdbool.h>

enum {
    PIPE_OK = 0,
    PIPE_EINVAL = -1001,    /* bad argument or malformed input */
    PIPE_ENOTFOUND = -1002, /* object, key or lease does not exist */
    PIPE_ETOOBIG = -1003,   /* a cap (line, body, object size) was exceeded */
    PIPE_EPARSE = -1004,    /* input could not be parsed */
    PIPE_EIO = -1005,       /* backend I/O failed; may succeed on retry */
    PIPE_EUNAVAIL = -1006,  /* backend unreachable or overloaded; retry */
    PIPE_EBUSY = -1007,     /* lease held by someone else */
    PIPE_ELOST = -1008,     /* lease no longer ours: do not commit */
    PIPE_ECONFIG = -1009,   /* configuration invalid or contradictory */
    PIPE_ECORRUPT = -1010,  /* stored data failed a checksum or decode */
    PIPE_EEXIST = -1011,    /* object already exists */
    PIPE_ESHUTDOWN = -1012, /* the component is stopping */
    PIPE_EFULL = -1013,     /* buffers are full; retry later */
    PIPE_EUNSUPP = -1014,   /* the backend lacks this capability */
    PIPE_EHELP = -1015,     /* --help or --version was printed: exit 0 */
};

/* pipe_strerror — a short static English description of rc (PIPE_E* or
 * -errno). Never NULL. */
const char *pipe_strerror(int rc);

/* pipe_err_is_transient — true when retrying the failed operation later can
 * succeed (I/O errors, unavailability, full buffers, EINTR/EAGAIN, ...). */
bool pipe_err_is_transient(int rc);

#endif
