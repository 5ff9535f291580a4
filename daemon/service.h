/*
 * service.h - ferryd and its service manager (systemd, through
 * libsystemd): readiness, the status line, the watchdog, stopping, and
 * the listening sockets systemd passes at socket activation.
 *
 * Knows the sd-daemon protocol only. Built without libsystemd (meson
 * -Dsystemd=disabled), every call does nothing and no socket is passed.
 */
#ifndef FERRYD_SERVICE_H
#define FERRYD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

/* true if ferryd was built with libsystemd. */
bool service_supported(void);
/* true if a service manager listens for notifications ($NOTIFY_SOCKET). */
bool service_notify_enabled(void);

/* The listening sockets systemd passed: *first is the first descriptor,
 * the return value how many (0 if none, -1 on a broken environment). The
 * environment is cleared so that nothing inherits it. */
int service_listen_fds(int *first);
/* true if fd is a listening stream socket of family AF_UNIX (is_unix)
 * or else of AF_INET/AF_INET6. */
bool service_fd_is_listener(int fd, bool *is_unix);

/* READY=1 with a STATUS= line: every listener is open. */
void service_ready(const char *status);
/* RELOADING=1: a reload starts (service_ready when it is done). */
void service_reloading(void);
/* STATUS= line, e.g. "3 connections, 120 messages in 2 queues". */
void service_status(const char *status);
/* STOPPING=1 with a STATUS= line. */
void service_stopping(const char *status);

/* The watchdog interval in microseconds, 0 if the watchdog is off. */
uint64_t service_watchdog_usec(void);
/* WATCHDOG=1: the loop is alive. */
void service_watchdog_ping(void);

#endif
