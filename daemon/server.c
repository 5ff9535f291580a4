/*
 * server.c - ferryd's process: the libevent loop, the listening sockets
 * (Unix and TCP) and their accept loop, the signals that stop it, and the
 * order in which everything is set up and torn down.
 *
 * Knows sockets and addresses; knows nothing of frames beyond handing
 * accepted sockets to conn.c (which speaks the protocol).
 */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "conn.h"

/* Accepts per readiness event: enough to take a burst, few enough to let
 * the connections already open be served in between. */
#define ACCEPTS_PER_EVENT 64
/* After EMFILE and the like, the listener rests this long instead of
 * spinning on a backlog it cannot take. */
#define ACCEPT_PAUSE_MS 100
/* A graceful stop flushes for at most this long. */
#define STOP_FLUSH_S 5
/* A TCP name may resolve to several addresses; each gets a listener. */
#define LISTENERS_MAX (SERVER_LISTEN_MAX * 4)
/* File descriptors kept beyond the connections (listeners, log, libevent). */
#define FD_RESERVE 64

struct server;

struct listener {
    struct server *server;
    int fd;                   /* owned */
    bool is_tcp;
    struct event *accept_ev;  /* owned */
    struct event *resume_ev;  /* owned: ends a pause after EMFILE */
    bool pause_logged;        /* one warning per run of failed accepts */
    char url[300];            /* as logged: "unix:/path", "tcp://[::1]:7070" */
    /* Unix: the socket file this listener created, unlinked at the end
     * if it is still the same file. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
};

struct server {
    const struct server_config *cfg;
    struct event_base *base;
    struct broker *broker;
    struct conn_set *conns;
    struct listener listeners[LISTENERS_MAX];
    size_t listener_count;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    struct event *stop_timer; /* bounds the graceful stop */
    bool stopping;
    time_t limit_logged_at;   /* rate limit of the max-connections warning */
    int exit_status;
};

/* ---- configuration ---------------------------------------------------------- */

void server_config_init(struct server_config *cfg)
{
    *cfg = (struct server_config){
        .max_frame = FERRY_FRAME_MAX_DEFAULT,
        .max_connections = SERVER_MAX_CONNECTIONS_DEFAULT,
        .max_output = SERVER_MAX_OUTPUT_DEFAULT,
        .log_level = LOG_LEVEL_INFO,
    };
}

void server_config_use_default_listen(struct server_config *cfg)
{
    const char *why;
    if (ferry_addr_parse("unix:" FERRY_DEFAULT_SOCKET, &cfg->listen[0], &why) != 0)
        return; /* a constant that parses; cannot happen */
    cfg->listen_count = 1;
    cfg->make_socket_dir = true;
}

/* ---- listeners: Unix --------------------------------------------------------- */

/* mkdir of the socket's directory (one level, like /run/ferry). */
static int make_parent_dir(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0755) == 0) {
        log_info("created directory %s", dir);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    log_error("cannot create directory %s: %s", dir, strerror(errno));
    return -1;
}

static struct sockaddr_un unix_sockaddr(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    return sa;
}

/* A socket file left by a ferryd that died is removed; one that answers
 * belongs to a live server, and this one must not start. */
static int clear_stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        log_error("cannot inspect %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("%s exists and is not a socket; not touching it", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un sa = unix_sockaddr(path);
    int rc = connect(probe, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    close(probe);
    /* A full backlog (EAGAIN) is a live server too. */
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
        log_error("another server is listening on unix:%s", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        log_error("cannot probe unix:%s: %s", path, strerror(err));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        log_error("cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    log_info("removed stale socket %s", path);
    return 0;
}

static void on_accept(evutil_socket_t fd, short what, void *arg);
static void on_resume(evutil_socket_t fd, short what, void *arg);

/* listen() right after bind(), so that the socket file never exists for
 * long without a server behind it; connections wait in the backlog until
 * the loop runs. */
static int activate(struct server *s, struct listener *l)
{
    if (listen(l->fd, SOMAXCONN) != 0) {
        log_error("cannot listen on %s: %s", l->url, strerror(errno));
        return -1;
    }
    l->accept_ev = event_new(s->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    l->resume_ev = evtimer_new(s->base, on_resume, l);
    if (!l->accept_ev || !l->resume_ev || event_add(l->accept_ev, NULL) != 0) {
        log_error("out of memory");
        return -1;
    }
    log_info("listening on %s", l->url);
    return 0;
}

static struct listener *new_listener(struct server *s, int fd)
{
    if (s->listener_count == LISTENERS_MAX) {
        log_error("too many listening addresses (at most %d)", LISTENERS_MAX);
        return NULL;
    }
    struct listener *l = &s->listeners[s->listener_count++];
    *l = (struct listener){ .server = s, .fd = fd }; /* l owns fd from here */
    return l;
}

/* The socket file keeps the permissions the umask gives it: access is
 * controlled by the umask and the directory, see ferryd(8). */
static int listen_unix(struct server *s, const struct ferry_addr *a)
{
    if (s->cfg->make_socket_dir && make_parent_dir(a->path) != 0)
        return -1;
    if (clear_stale_socket(a->path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    struct listener *l = new_listener(s, fd);
    if (!l) {
        close(fd);
        return -1;
    }
    snprintf(l->url, sizeof l->url, "unix:%s", a->path);
    struct sockaddr_un sa = unix_sockaddr(a->path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        log_error("cannot bind %s: %s", l->url, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(a->path, &st) == 0) {
        snprintf(l->path, sizeof l->path, "%s", a->path);
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    return activate(s, l);
}

/* ---- listeners: TCP ----------------------------------------------------------- */

static void format_tcp_url(int fd, char *url, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[64], port[8]; /* numeric: an IPv6 literal with a zone fits */
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(url, size, "tcp://?");
        return;
    }
    if (ss.ss_family == AF_INET6)
        snprintf(url, size, "tcp://[%s]:%s", host, port);
    else
        snprintf(url, size, "tcp://%s:%s", host, port);
}

/* One address of a TCP name. 0, 1 if the address family is not
 * available here (skipped), or -1. */
static int listen_tcp_one(struct server *s, const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        if (errno == EAFNOSUPPORT)
            return 1;
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Each family binds its own socket, so "::" and "0.0.0.0" can both. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        char host[NI_MAXHOST] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
        close(fd);
        if (err == EADDRNOTAVAIL || err == EAFNOSUPPORT) {
            log_warn("skipping %s: %s", host, strerror(err));
            return 1;
        }
        log_error("cannot bind %s: %s", host, strerror(err));
        return -1;
    }
    struct listener *l = new_listener(s, fd);
    if (!l) {
        close(fd);
        return -1;
    }
    l->is_tcp = true;
    format_tcp_url(fd, l->url, sizeof l->url);
    return activate(s, l) == 0 ? 0 : -1;
}

/* Every address the host resolves to, numeric or by name. */
static int listen_tcp(struct server *s, const struct ferry_addr *a)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_protocol = IPPROTO_TCP,
        .ai_flags = AI_PASSIVE,
    };
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &list);
    if (rc != 0) {
        log_error("cannot resolve %s: %s", a->host, gai_strerror(rc));
        return -1;
    }
    size_t bound = 0;
    int result = 0;
    for (const struct addrinfo *ai = list; ai && result == 0; ai = ai->ai_next) {
        int one = listen_tcp_one(s, ai);
        if (one < 0)
            result = -1;
        else if (one == 0)
            bound++;
    }
    freeaddrinfo(list);
    if (result == 0 && bound == 0) {
        log_error("no usable address for tcp://%s:%u", a->host, (unsigned)a->port);
        result = -1;
    }
    return result;
}

/* ---- accepting ------------------------------------------------------------------ */

static void pause_listener(struct listener *l, int err)
{
    if (!l->pause_logged) {
        log_warn("accept on %s: %s; pausing it for %d ms", l->url, strerror(err),
                 ACCEPT_PAUSE_MS);
        l->pause_logged = true;
    }
    event_del(l->accept_ev);
    struct timeval tv = { .tv_sec = 0, .tv_usec = ACCEPT_PAUSE_MS * 1000 };
    event_add(l->resume_ev, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    event_add(l->accept_ev, NULL);
}

static void refuse_over_limit(struct server *s, int fd)
{
    time_t now = time(NULL);
    if (now != s->limit_logged_at) {
        log_warn("refusing connections: max-connections (%zu) reached", s->cfg->max_connections);
        s->limit_logged_at = now;
    }
    conn_reject(fd, FERRY_CODE_LIMIT, "too many connections");
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    struct server *s = l->server;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            int err = errno;
            if (err == EAGAIN)
                return;
            /* The peer gave up before we took it; try the next one. */
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM and the unexpected: resting
             * beats spinning on a backlog that cannot be taken. */
            pause_listener(l, err);
            return;
        }
        l->pause_logged = false;
        if (conn_set_count(s->conns) >= s->cfg->max_connections) {
            refuse_over_limit(s, cfd);
            continue;
        }
        if (l->is_tcp) {
            /* Output is already batched into one write per flush; Nagle's
             * delay would only add latency. */
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (conn_open(s->conns, cfd, l->is_tcp) != 0)
            log_warn("no memory for a new connection; closed it");
    }
}

static int start_listening(struct server *s)
{
    for (size_t i = 0; i < s->cfg->listen_count; i++) {
        const struct ferry_addr *a = &s->cfg->listen[i];
        int rc = a->kind == FERRY_ADDR_UNIX ? listen_unix(s, a) : listen_tcp(s, a);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Closes every listener and removes the socket files this process made. */
static void stop_listening(struct server *s)
{
    for (size_t i = 0; i < s->listener_count; i++) {
        struct listener *l = &s->listeners[i];
        if (l->accept_ev)
            event_free(l->accept_ev);
        if (l->resume_ev)
            event_free(l->resume_ev);
        close(l->fd);
        struct stat st;
        /* Only the very file we bound: never another server's. */
        if (l->path[0] && lstat(l->path, &st) == 0 && st.st_dev == l->dev &&
            st.st_ino == l->ino)
            unlink(l->path);
    }
    s->listener_count = 0;
}

/* ---- stopping ---------------------------------------------------------------------- */

static void on_all_closed(void *arg)
{
    struct server *s = arg;
    event_base_loopbreak(s->base);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    log_warn("connections still open after %d s; closing them", STOP_FLUSH_S);
    event_base_loopbreak(s->base);
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* Runs in the loop, not in signal context (libevent's signal events). */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    if (s->stopping) {
        log_warn("second %s; exiting at once", signal_name((int)sig));
        s->exit_status = SERVER_EXIT_FAILURE;
        event_base_loopbreak(s->base);
        return;
    }
    s->stopping = true;
    log_info("received %s; stopping", signal_name((int)sig));
    stop_listening(s);
    struct timeval tv = { .tv_sec = STOP_FLUSH_S, .tv_usec = 0 };
    event_add(s->stop_timer, &tv);
    conn_set_shutdown(s->conns, on_all_closed, s);
}

/* ---- setup and teardown -------------------------------------------------------------- */

/* Every connection is a descriptor: raise the soft limit toward what
 * max-connections needs. Falling short is not fatal (accept pauses). */
static void raise_fd_limit(size_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections + FD_RESERVE;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
        log_warn("open file limit %llu is below max-connections + %d; "
                 "accepting will pause when it is reached",
                 (unsigned long long)rl.rlim_cur, FD_RESERVE);
}

static struct event_base *new_base(void)
{
    struct event_config *config = event_config_new();
    if (!config)
        return NULL;
    /* One thread: libevent need not lock. */
    event_config_set_flag(config, EVENT_BASE_FLAG_NOLOCK);
    struct event_base *base = event_base_new_with_config(config);
    event_config_free(config);
    return base;
}

static int setup(struct server *s)
{
    s->base = new_base();
    s->broker = broker_new(&(struct broker_limits){ 0 });
    if (!s->base || !s->broker) {
        log_error("out of memory");
        return -1;
    }
    struct conn_limits limits = {
        .max_frame = s->cfg->max_frame,
        .max_output = s->cfg->max_output,
    };
    s->conns = conn_set_new(s->base, s->broker, &limits);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->stop_timer = evtimer_new(s->base, on_stop_timeout, s);
    if (!s->conns || !s->sigint_ev || !s->sigterm_ev || !s->stop_timer ||
        event_add(s->sigint_ev, NULL) != 0 || event_add(s->sigterm_ev, NULL) != 0) {
        log_error("out of memory");
        return -1;
    }
    return start_listening(s);
}

/* Frees whatever setup made, in the reverse order; safe after a partial
 * setup. */
static void teardown(struct server *s)
{
    stop_listening(s);
    conn_set_free(s->conns); /* sessions first: the broker outlives them */
    if (s->broker)
        broker_free(s->broker);
    if (s->sigint_ev)
        event_free(s->sigint_ev);
    if (s->sigterm_ev)
        event_free(s->sigterm_ev);
    if (s->stop_timer)
        event_free(s->stop_timer);
    if (s->base)
        event_base_free(s->base);
}

int server_run(const struct server_config *cfg)
{
    /* A peer that vanishes makes write() fail with EPIPE, not kill us. */
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ignore, NULL);
    raise_fd_limit(cfg->max_connections);

    struct server s = { .cfg = cfg, .exit_status = SERVER_EXIT_OK };
    if (setup(&s) != 0) {
        teardown(&s);
        return SERVER_EXIT_FAILURE;
    }
    if (event_base_dispatch(s.base) < 0) {
        log_error("event loop failed");
        s.exit_status = SERVER_EXIT_FAILURE;
    }
    teardown(&s);
    log_info("stopped");
    return s.exit_status;
}
