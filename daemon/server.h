/*
 * server.h - ferryd's process: the event loop that owns the listeners,
 * the signals, the connections and the dealings with systemd, and that
 * applies a configuration at start and again at each SIGHUP.
 *
 * The configuration is plain data (config.h): main.c reads it from the
 * conf file and the command line; server.c never sees either.
 */
#ifndef FERRYD_SERVER_H
#define FERRYD_SERVER_H

#include "config.h"

/* Process exit statuses (see ferryd(8)). */
#define SERVER_EXIT_OK 0               /* stopped by a signal, output flushed */
#define SERVER_EXIT_FAILURE 1          /* could not start, or stopped by a second signal */
#define SERVER_EXIT_USAGE 64           /* bad command line (EX_USAGE) */
#define SERVER_EXIT_CONFIG CONFIG_EXIT_BAD /* bad conf file (EX_CONFIG, 78) */

/* Reads the configuration anew, for SIGHUP: fills *out (which it
 * config_init's first). 0, or -1 once it has logged why; the running
 * configuration then stays in force. */
typedef int server_reload_fn(void *arg, struct config *out);

/* Runs ferryd until SIGINT or SIGTERM. Takes over what *cfg owns (and
 * frees it at the end). `reload` may be NULL: SIGHUP is then only
 * logged. Returns the process exit status (SERVER_EXIT_OK or
 * SERVER_EXIT_FAILURE). */
int server_run(struct config *cfg, server_reload_fn *reload, void *reload_arg);

#endif
