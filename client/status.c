/*
 * status.c - the library's error vocabulary: the text of every ferry_status
 * and the per-thread record of the broker's last refusal.
 * Knows nothing of connections or sockets.
 */
#include <string.h>

#include "conn.h"

/* The broker error behind the calling thread's last FERRY_ESERVER. */
static _Thread_local struct server_error last_server_error;

const char *ferry_strerror(int status)
{
    switch ((ferry_status)status) {
    case FERRY_OK: return "success";
    case FERRY_EINVAL: return "invalid argument";
    case FERRY_ENOMEM: return "out of memory";
    case FERRY_ECONNECT: return "could not connect to the broker";
    case FERRY_EIO: return "connection broken";
    case FERRY_EPROTO: return "protocol error: the broker sent a malformed frame";
    case FERRY_ETIMEDOUT: return "timed out";
    case FERRY_ESERVER: return "refused by the broker";
    case FERRY_EFORKED: return "connection belongs to the parent process";
    case FERRY_ECLOSED: return "connection closed";
    case FERRY_EAGAIN: return "would block";
    case FERRY_EDEADLK: return "blocking call from inside a callback of the same connection";
    case FERRY_EENDED: return "queue ended and drained";
    }
    return "unknown status";
}

int ferry_server_error(const char **text)
{
    if (text)
        *text = last_server_error.text;
    return (int)last_server_error.code;
}

void status__set_server_error(uint32_t code, const char *text, size_t len)
{
    if (len > FERRY_ERROR_TEXT_MAX)
        len = FERRY_ERROR_TEXT_MAX;
    last_server_error.code = code;
    if (len)
        memcpy(last_server_error.text, text, len);
    last_server_error.text[len] = '\0';
}
