/*
 * server.h - ferryd's process: the configuration it runs with, and the
 * event loop that owns the listeners, the signals and the connections.
 *
 * The configuration is plain data: main.c fills it from the command line
 * (a configuration file may fill it later); server.c never sees getopt.
 */
#ifndef FERRYD_SERVER_H
#define FERRYD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry_proto.h"
#include "log.h"

/* Listen addresses one server takes at most. */
#define SERVER_LISTEN_MAX 16

#define SERVER_MAX_CONNECTIONS_DEFAULT 10000u
#define SERVER_MAX_OUTPUT_DEFAULT (64u * 1024u * 1024u)
/* Bounds of --max-output. */
#define SERVER_MAX_OUTPUT_FLOOR (64u * 1024u)
#define SERVER_MAX_OUTPUT_CEILING (4096u * 1024u * 1024u)
#define SERVER_MAX_CONNECTIONS_CEILING 1000000u

/* Process exit statuses (see ferryd(8)). */
#define SERVER_EXIT_OK 0       /* stopped by a signal, output flushed */
#define SERVER_EXIT_FAILURE 1  /* could not start, or stopped by a second signal */
#define SERVER_EXIT_USAGE 64   /* bad command line (EX_USAGE) */

struct server_config {
    struct ferry_addr listen[SERVER_LISTEN_MAX];
    size_t listen_count;
    /* Create the parent directory (0755) of Unix sockets when missing;
     * set for the default socket only. */
    bool make_socket_dir;
    size_t max_frame;       /* frame body bound, announced in WELCOME */
    size_t max_connections; /* more are refused with a fatal ERROR LIMIT */
    size_t max_output;      /* per-connection output bound (throttling) */
    enum log_level log_level;
};

/* Fills *cfg with the defaults (no listen address yet). */
void server_config_init(struct server_config *cfg);
/* Adds the default listen address, unix:FERRY_DEFAULT_SOCKET. */
void server_config_use_default_listen(struct server_config *cfg);

/* Runs ferryd until SIGINT or SIGTERM. Returns the process exit status
 * (SERVER_EXIT_OK or SERVER_EXIT_FAILURE). */
int server_run(const struct server_config *cfg);

#endif
