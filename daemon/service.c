/*
 * service.c - ferryd's side of the sd-daemon protocol, through libsystemd
 * when the build has it (FERRYD_HAVE_SYSTEMD), else calls that do nothing.
 * Knows nothing of listeners or connections: server.c says when and what.
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FERRYD_HAVE_SYSTEMD

#include <sys/socket.h>

#include <systemd/sd-daemon.h>

#include "log.h"

bool service_supported(void)
{
    return true;
}

bool service_notify_enabled(void)
{
    return getenv("NOTIFY_SOCKET") != NULL;
}

int service_listen_fds(int *first)
{
    *first = SD_LISTEN_FDS_START;
    int n = sd_listen_fds(1);
    if (n < 0)
        log_error("sockets passed by systemd: %s", strerror(-n));
    return n;
}

bool service_fd_is_listener(int fd, bool *is_unix)
{
    *is_unix = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1) > 0;
    return *is_unix || sd_is_socket(fd, AF_INET, SOCK_STREAM, 1) > 0 ||
           sd_is_socket(fd, AF_INET6, SOCK_STREAM, 1) > 0;
}

/* One notification; a failure is worth a debug line only (systemd gone). */
static void notify(const char *state, const char *status)
{
    int rc = status ? sd_notifyf(0, "%s%sSTATUS=%s", state, state[0] ? "\n" : "", status)
                    : sd_notify(0, state);
    if (rc < 0)
        log_debug("sd_notify: %s", strerror(-rc));
}

void service_ready(const char *status)
{
    notify("READY=1", status);
}

void service_reloading(void)
{
    notify("RELOADING=1", NULL);
}

void service_status(const char *status)
{
    notify("", status);
}

void service_stopping(const char *status)
{
    notify("STOPPING=1", status);
}

uint64_t service_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void service_watchdog_ping(void)
{
    notify("WATCHDOG=1", NULL);
}

#else /* no libsystemd: ferryd is not a notify service */

bool service_supported(void)
{
    return false;
}

bool service_notify_enabled(void)
{
    return false;
}

int service_listen_fds(int *first)
{
    *first = 3;
    return 0;
}

bool service_fd_is_listener(int fd, bool *is_unix)
{
    *is_unix = false;
    return false;
}

void service_ready(const char *status)
{
}

void service_reloading(void)
{
}

void service_status(const char *status)
{
}

void service_stopping(const char *status)
{
}

uint64_t service_watchdog_usec(void)
{
    return 0;
}

void service_watchdog_ping(void)
{
}

#endif
