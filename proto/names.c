/*
 * names.c - queue-name validity and the symbolic names of error codes and
 * frame types (for logs and the CLI). Knows the tables of ferry_proto.h,
 * nothing of the wire encoding.
 */
#include "ferry_proto.h"

static bool name_char_valid(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '.' || c == '_' || c == '-' || c == ':';
}

bool ferry_name_valid(struct ferry_bytes name)
{
    if (name.len == 0 || name.len > FERRY_NAME_MAX)
        return false;
    for (size_t i = 0; i < name.len; i++) {
        if (!name_char_valid(name.ptr[i]))
            return false;
    }
    return true;
}

static const char *const code_names[] = {
    [FERRY_CODE_OK] = "OK",
    [FERRY_CODE_BAD_FRAME] = "BAD_FRAME",
    [FERRY_CODE_FRAME_TOO_LARGE] = "FRAME_TOO_LARGE",
    [FERRY_CODE_UNKNOWN_FRAME] = "UNKNOWN_FRAME",
    [FERRY_CODE_HANDSHAKE] = "HANDSHAKE",
    [FERRY_CODE_VERSION] = "VERSION",
    [FERRY_CODE_BAD_NAME] = "BAD_NAME",
    [FERRY_CODE_NOT_FOUND] = "NOT_FOUND",
    [FERRY_CODE_ENDED] = "ENDED",
    [FERRY_CODE_UNKNOWN_TAG] = "UNKNOWN_TAG",
    [FERRY_CODE_UNKNOWN_SUB] = "UNKNOWN_SUB",
    [FERRY_CODE_SUB_EXISTS] = "SUB_EXISTS",
    [FERRY_CODE_LIMIT] = "LIMIT",
    [FERRY_CODE_QUEUE_FULL] = "QUEUE_FULL",
    [FERRY_CODE_NO_MEMORY] = "NO_MEMORY",
    [FERRY_CODE_SHUTTING_DOWN] = "SHUTTING_DOWN",
    [FERRY_CODE_INTERNAL] = "INTERNAL",
    [FERRY_CODE_BAD_REQUEST] = "BAD_REQUEST",
    [FERRY_CODE_STORAGE] = "STORAGE",
    [FERRY_CODE_HEARTBEAT] = "HEARTBEAT",
    [FERRY_CODE_KILLED] = "KILLED",
    [FERRY_CODE_BAD_TOPIC] = "BAD_TOPIC",
    [FERRY_CODE_EXCLUSIVE] = "EXCLUSIVE",
};

const char *ferry_code_name(uint32_t code)
{
    if (code > FERRY_CODE_LAST || code_names[code] == NULL)
        return "UNKNOWN";
    return code_names[code];
}

static const char *const frame_type_names[] = {
    [FERRY_F_HELLO] = "HELLO",
    [FERRY_F_WELCOME] = "WELCOME",
    [FERRY_F_ERROR] = "ERROR",
    [FERRY_F_PING] = "PING",
    [FERRY_F_PONG] = "PONG",
    [FERRY_F_OK] = "OK",
    [FERRY_F_PUBLISH] = "PUBLISH",
    [FERRY_F_PUBLISH_BATCH] = "PUBLISH_BATCH",
    [FERRY_F_CONFIRM] = "CONFIRM",
    [FERRY_F_CONSUME] = "CONSUME",
    [FERRY_F_CREDIT] = "CREDIT",
    [FERRY_F_DELIVER] = "DELIVER",
    [FERRY_F_ACK] = "ACK",
    [FERRY_F_NACK] = "NACK",
    [FERRY_F_CANCEL] = "CANCEL",
    [FERRY_F_GET] = "GET",
    [FERRY_F_EOS] = "EOS",
    [FERRY_F_DECLARE] = "DECLARE",
    [FERRY_F_DELETE] = "DELETE",
    [FERRY_F_PURGE] = "PURGE",
    [FERRY_F_STATS] = "STATS",
    [FERRY_F_END] = "END",
    [FERRY_F_REOPEN] = "REOPEN",
    [FERRY_F_JOIN] = "JOIN",
    [FERRY_F_CONNS] = "CONNS",
    [FERRY_F_KILL] = "KILL",
    [FERRY_F_TOUCH] = "TOUCH",
    [FERRY_F_PEEK] = "PEEK",
    [FERRY_F_MOVE] = "MOVE",
    [FERRY_F_BIND] = "BIND",
    [FERRY_F_UNBIND] = "UNBIND",
    [FERRY_F_PUBLISH_TOPIC] = "PUBLISH_TOPIC",
    [FERRY_F_DECLARE_TEMP] = "DECLARE_TEMP",
    [FERRY_F_BINDINGS] = "BINDINGS",
};

const char *ferry_frame_type_name(uint32_t type)
{
    if (type >= sizeof frame_type_names / sizeof frame_type_names[0])
        return NULL;
    return frame_type_names[type]; /* NULL in the gaps between ranges */
}

bool ferry_code_is_fatal(uint32_t code)
{
    switch (code) {
    case FERRY_CODE_BAD_FRAME:
    case FERRY_CODE_FRAME_TOO_LARGE:
    case FERRY_CODE_UNKNOWN_FRAME:
    case FERRY_CODE_HANDSHAKE:
    case FERRY_CODE_VERSION:
    case FERRY_CODE_SHUTTING_DOWN:
    case FERRY_CODE_INTERNAL:
    case FERRY_CODE_HEARTBEAT:
    case FERRY_CODE_KILLED:
        return true;
    default:
        return false;
    }
}
