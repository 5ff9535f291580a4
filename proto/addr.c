/*
 * addr.c - parses ferry URLs ("unix:/path", "tcp://host:port") into
 * struct ferry_addr. Pure string work: no name lookup, no socket; the
 * daemon and libferry do those with the result.
 */
#include <string.h>

#include "ferry_proto.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

/* rest: what follows "unix:". Either a path (absolute or relative) or
 * "//" followed by an absolute path, as in "unix:///run/ferry.sock". */
static int parse_unix(const char *rest, struct ferry_addr *a, const char **why)
{
    if (starts_with(rest, "//")) {
        rest += 2;
        if (rest[0] != '/' && rest[0] != '\0')
            return fail(why, "unix:// must be followed by an absolute path");
    }
    size_t len = strlen(rest);
    if (len == 0)
        return fail(why, "empty socket path");
    if (len >= sizeof a->path)
        return fail(why, "socket path too long (at most 107 bytes)");
    memcpy(a->path, rest, len + 1);
    a->kind = FERRY_ADDR_UNIX;
    return 0;
}

static bool host_char_valid(char c, bool bracketed)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    if (c == '.' || c == '-' || c == '_')
        return true;
    /* Inside brackets: an IPv6 literal, maybe with a zone ("fe80::1%eth0"). */
    return bracketed && (c == ':' || c == '%');
}

/* Copies the host [start, start+len) into a->host after checking it. */
static int take_host(const char *start, size_t len, bool bracketed,
                     struct ferry_addr *a, const char **why)
{
    if (len == 0)
        return fail(why, "empty host");
    if (len >= sizeof a->host)
        return fail(why, "host too long (at most 255 bytes)");
    for (size_t i = 0; i < len; i++) {
        if (!host_char_valid(start[i], bracketed))
            return fail(why, "bad character in host");
    }
    memcpy(a->host, start, len);
    a->host[len] = '\0';
    return 0;
}

/* s: what follows the ':' after the host. Decimal 1..65535, nothing after. */
static int parse_port(const char *s, uint16_t *port, const char **why)
{
    if (*s < '0' || *s > '9')
        return fail(why, "port must be a number");
    unsigned long value = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        value = value * 10 + (unsigned long)(*s - '0');
        if (value > 65535)
            return fail(why, "port out of range (1..65535)");
    }
    if (*s != '\0')
        return fail(why, "junk after the port");
    if (value == 0)
        return fail(why, "port out of range (1..65535)");
    *port = (uint16_t)value;
    return 0;
}

/* rest: what follows "tcp://". "host", "host:port", "[v6]" or "[v6]:port". */
static int parse_tcp(const char *rest, struct ferry_addr *a, const char **why)
{
    const char *after;
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (!close)
            return fail(why, "missing ']' after the IPv6 address");
        if (take_host(rest + 1, (size_t)(close - rest - 1), true, a, why) != 0)
            return -1;
        after = close + 1;
    } else {
        size_t len = 0;
        while (rest[len] != '\0' && host_char_valid(rest[len], false))
            len++;
        if (take_host(rest, len, false, a, why) != 0)
            return -1;
        after = rest + len;
    }

    a->kind = FERRY_ADDR_TCP;
    if (*after == '\0') {
        a->port = FERRY_DEFAULT_TCP_PORT;
        return 0;
    }
    if (*after != ':')
        return fail(why, "junk after the host");
    return parse_port(after + 1, &a->port, why);
}

int ferry_addr_parse(const char *url, struct ferry_addr *a, const char **why)
{
    const char *ignored;
    if (!why)
        why = &ignored;
    *a = (struct ferry_addr){ 0 };
    if (!url)
        return fail(why, "no address given");

    int rc;
    if (starts_with(url, "unix:"))
        rc = parse_unix(url + strlen("unix:"), a, why);
    else if (starts_with(url, "tcp://"))
        rc = parse_tcp(url + strlen("tcp://"), a, why);
    else
        return fail(why, "unknown scheme (expected unix: or tcp://)");

    if (rc != 0)
        *a = (struct ferry_addr){ 0 };
    return rc;
}
