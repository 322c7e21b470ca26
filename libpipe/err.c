/* err — descriptions and retry classification of libpipe error codes. */
#include "libpipe/err.h"

#include <errno.h>
#include <string.h>

const char *pipe_strerror(int rc)
{
    switch (rc) {
    case PIPE_OK:
        return "success";
    case PIPE_EINVAL:
        return "invalid argument or input";
    case PIPE_ENOTFOUND:
        return "not found";
    case PIPE_ETOOBIG:
        return "size limit exceeded";
    case PIPE_EPARSE:
        return "parse error";
    case PIPE_EIO:
        return "I/O error";
    case PIPE_EUNAVAIL:
        return "backend unavailable";
    case PIPE_EBUSY:
        return "held by another owner";
    case PIPE_ELOST:
        return "lease lost";
    case PIPE_ECONFIG:
        return "configuration error";
    case PIPE_ECORRUPT:
        return "data corrupt";
    case PIPE_EEXIST:
        return "already exists";
    case PIPE_ESHUTDOWN:
        return "shutting down";
    case PIPE_EFULL:
        return "buffers full";
    case PIPE_EUNSUPP:
        return "not supported by this backend";
    case PIPE_EHELP:
        return "help printed";
    default:
        break;
    }
    if (rc < 0 && rc > -4096)
        return strerror(-rc);
    return "unknown error";
}

bool pipe_err_is_transient(int rc)
{
    switch (rc) {
    case PIPE_EIO:
    case PIPE_EUNAVAIL:
    case PIPE_EFULL:
    case -EINTR:
    case -EAGAIN:
    case -ETIMEDOUT:
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -EPIPE:
    case -ENOSPC:
    case -EMFILE:
    case -ENFILE:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
        return true;
    default:
        return false;
    }
}
