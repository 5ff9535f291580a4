/*
 * log.h - ferryd's one logging call: a level, the source location and a
 * printf-style message, written as one line to stderr.
 *
 * Knows nothing of connections or the event loop; anything may log.
 */
#ifndef FERRYD_LOG_H
#define FERRYD_LOG_H

#include <stdbool.h>

/* Ordered from the most to the least important. */
enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* Writes one line "ferryd: LEVEL: message" to stderr if `level` is enabled;
 * at the debug setting every line also names file:line. */
void log_at(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Lines of a level above `level` are dropped. The default is info. */
void log_set_level(enum log_level level);
/* True if a line of `level` would be written (to skip costly arguments). */
bool log_enabled(enum log_level level);
/* Parses "error", "warn", "info" or "debug". 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);
/* The name log_level_parse takes for `level`. */
const char *log_level_name(enum log_level level);

#define log_error(...) log_at(LOG_LEVEL_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#endif
