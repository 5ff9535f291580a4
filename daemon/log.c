/*
 * log.c - writes ferryd's log lines to stderr, one write() per line so
 * that lines never interleave. Owns the current level; knows nothing of
 * what is logged.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Longer messages are cut; a log line is for a human, not a data channel. */
#define LOG_LINE_MAX 1024

static enum log_level current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
    current_level = level;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    size_t i = (size_t)level;
    return i < sizeof level_names / sizeof level_names[0] ? level_names[i] : "?";
}

/* __FILE__ carries the build's relative path; the file name is enough. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void log_at(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    int saved_errno = errno; /* callers often log, then look at errno */

    char text[LOG_LINE_MAX];
    int used;
    if (current_level == LOG_LEVEL_DEBUG)
        used = snprintf(text, sizeof text, "ferryd: %s: %s:%d: ", level_names[level],
                        base_name(file), line);
    else
        used = snprintf(text, sizeof text, "ferryd: %s: ", level_names[level]);
    if (used < 0)
        used = 0;

    size_t room = sizeof text - 1; /* keep one byte for the newline */
    size_t len = (size_t)used < room ? (size_t)used : room;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text + len, sizeof text - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < room - len ? (size_t)n : room - len;
    text[len++] = '\n';

    /* stderr may be a pipe that is gone; a failed log line is not worth
     * more than one try. */
    ssize_t ignored = write(STDERR_FILENO, text, len);
    (void)ignored;
    errno = saved_errno;
}
