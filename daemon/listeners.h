/*
 * listeners.h - ferryd's listening sockets: Unix and TCP ones from the
 * configuration, or the ones systemd passed at socket activation; their
 * accept loop; and bringing the set in line with a new configuration.
 *
 * Knows sockets, addresses and socket-file permissions; knows nothing of
 * connections: each accepted socket goes to a callback.
 */
#ifndef FERRYD_LISTENERS_H
#define FERRYD_LISTENERS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"

struct listener_set;

/* Gets each accepted socket (non-blocking, close-on-exec) and owns it
 * from then on. */
typedef void listener_accept_fn(void *arg, int fd, bool is_tcp);

/* An empty set on `base`. NULL on ENOMEM. */
struct listener_set *listeners_new(struct event_base *base, listener_accept_fn *on_accept,
                                   void *arg);
/* Closes every listener, removes the socket files it made, frees the set. */
void listeners_free(struct listener_set *set);

/* Takes over the listening sockets systemd passed (socket activation).
 * How many (0 if none), or -1 if one of them is not a listening stream
 * socket. Once it has taken some, listeners_apply leaves the set alone:
 * the sockets are systemd's business. */
int listeners_adopt_systemd(struct listener_set *set);

/* Opens every listener of cfg that is not open yet, closes the ones cfg
 * no longer has, and applies mode, owner and group to the socket files
 * again. Connections already accepted are not touched. 0, or -1 if a
 * listener could not be opened or set up (logged; the others stay). */
int listeners_apply(struct listener_set *set, const struct config *cfg);

/* Closes every listener: no more connections (a graceful stop). */
void listeners_close_all(struct listener_set *set);

/* Open listeners (a TCP name may give several). */
size_t listeners_count(const struct listener_set *set);

#endif
