/*
 * listeners.c - ferryd's listening sockets (Unix and TCP, from the
 * configuration or from systemd), their accept loop, the permissions of
 * their socket files, and their reconciliation with a new configuration.
 *
 * Knows sockets, addresses and the user database; knows nothing of
 * connections (accepted sockets go to the set's callback).
 */
#include "listeners.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "service.h"

/* Accepts per readiness event: enough to take a burst, few enough to let
 * the connections already open be served in between. */
#define ACCEPTS_PER_EVENT 64
/* After EMFILE and the like, the listener rests this long instead of
 * spinning on a backlog it cannot take. */
#define ACCEPT_PAUSE_MS 100
/* A TCP name may resolve to several addresses; each gets a listener. */
#define LISTENERS_MAX (CONFIG_LISTEN_MAX * 4)
/* Room for a Unix socket path, NUL included (sun_path is 108 bytes). */
#define SOCKET_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct listener {
    struct listener_set *set;
    int fd;                   /* owned */
    bool is_tcp;
    struct ferry_addr addr;   /* as configured: what reconciliation compares */
    struct event *accept_ev;  /* owned */
    struct event *resume_ev;  /* owned: ends a pause after EMFILE */
    bool pause_logged;        /* one warning per run of failed accepts */
    char url[300];            /* as logged: "unix:/path", "tcp://[::1]:7070" */
    /* Unix: the socket file this listener created, unlinked at the end
     * if it is still the same file ("" for systemd's sockets). */
    char path[SOCKET_PATH_MAX];
    dev_t dev;
    ino_t ino;
};

struct listener_set {
    struct event_base *base;
    listener_accept_fn *on_accept;
    void *arg;
    struct listener *all[LISTENERS_MAX]; /* owned, count of them */
    size_t count;
    bool from_systemd;
};

/* ---- the set ---------------------------------------------------------------------- */

struct listener_set *listeners_new(struct event_base *base, listener_accept_fn *on_accept,
                                   void *arg)
{
    struct listener_set *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->base = base;
    set->on_accept = on_accept;
    set->arg = arg;
    return set;
}

static struct listener *add_listener(struct listener_set *set, int fd)
{
    if (set->count == LISTENERS_MAX) {
        log_error("too many listening sockets (at most %d)", LISTENERS_MAX);
        return NULL;
    }
    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        log_error("out of memory");
        return NULL;
    }
    l->set = set;
    l->fd = fd; /* l owns fd from here */
    set->all[set->count++] = l; /* the set owns l from here */
    return l;
}

/* true if l made a socket file and it is still there: never touch
 * another server's. */
static bool still_our_file(const struct listener *l)
{
    struct stat st;
    return l->path[0] && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino;
}

/* Closes one listener and removes the socket file it made. */
static void close_listener(struct listener *l)
{
    if (l->accept_ev)
        event_free(l->accept_ev);
    if (l->resume_ev)
        event_free(l->resume_ev);
    close(l->fd);
    if (still_our_file(l))
        unlink(l->path);
    free(l);
}

/* Closes and removes set->all[i]; the ones after it move down. */
static void remove_listener(struct listener_set *set, size_t i)
{
    close_listener(set->all[i]);
    memmove(&set->all[i], &set->all[i + 1], (set->count - i - 1) * sizeof set->all[0]);
    set->count--;
}

/* Undoes the add_listener of a listener that failed to start. */
static int drop_newest(struct listener_set *set)
{
    remove_listener(set, set->count - 1);
    return -1;
}

void listeners_close_all(struct listener_set *set)
{
    while (set->count > 0)
        remove_listener(set, set->count - 1);
}

void listeners_free(struct listener_set *set)
{
    if (!set)
        return;
    listeners_close_all(set);
    free(set);
}

size_t listeners_count(const struct listener_set *set)
{
    return set->count;
}

/* ---- accepting ---------------------------------------------------------------------- */

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

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
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
        if (l->is_tcp) {
            /* Output is already batched into one write per flush; Nagle's
             * delay would only add latency. */
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        l->set->on_accept(l->set->arg, cfd, l->is_tcp); /* it owns cfd from here */
    }
}

/* listen() right after bind(), so that the socket file never exists for
 * long without a server behind it; connections wait in the backlog until
 * the loop runs. */
static int activate(struct listener *l)
{
    if (listen(l->fd, SOMAXCONN) != 0) {
        log_error("cannot listen on %s: %s", l->url, strerror(errno));
        return -1;
    }
    l->accept_ev = event_new(l->set->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    l->resume_ev = evtimer_new(l->set->base, on_resume, l);
    if (!l->accept_ev || !l->resume_ev || event_add(l->accept_ev, NULL) != 0) {
        log_error("out of memory");
        return -1;
    }
    log_info("listening on %s", l->url);
    return 0;
}

/* ---- Unix sockets --------------------------------------------------------------------- */

/* mkdir of the socket's directory (one level, like /run/ferry). */
static int make_parent_dir(const char *path)
{
    char dir[SOCKET_PATH_MAX];
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

/* A user or group of the configuration: a numeric id, or a name. */
static int resolve_owner(const struct config_listener *c, uid_t *uid, gid_t *gid)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (c->owner[0]) {
        const struct passwd *pw = getpwnam(c->owner);
        char *end;
        unsigned long id = strtoul(c->owner, &end, 10);
        if (pw)
            *uid = pw->pw_uid;
        else if (*end == '\0')
            *uid = (uid_t)id;
        else {
            log_error("socket owner '%s': no such user", c->owner);
            return -1;
        }
    }
    if (c->group[0]) {
        const struct group *gr = getgrnam(c->group);
        char *end;
        unsigned long id = strtoul(c->group, &end, 10);
        if (gr)
            *gid = gr->gr_gid;
        else if (*end == '\0')
            *gid = (gid_t)id;
        else {
            log_error("socket group '%s': no such group", c->group);
            return -1;
        }
    }
    return 0;
}

/* Mode, owner and group of a socket file, as the configuration says;
 * what it leaves unset stays as bind() and the umask made it. */
static int apply_file_settings(const struct listener *l, const struct config_listener *c)
{
    uid_t uid;
    gid_t gid;
    if (resolve_owner(c, &uid, &gid) != 0)
        return -1;
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(l->path, uid, gid) != 0) {
        log_error("cannot set owner of %s to %s:%s: %s", l->path, c->owner, c->group,
                  strerror(errno));
        return -1;
    }
    if (c->has_mode && chmod(l->path, (mode_t)c->mode) != 0) {
        log_error("cannot set mode of %s to %04o: %s", l->path, c->mode, strerror(errno));
        return -1;
    }
    return 0;
}

static int listen_unix(struct listener_set *set, const struct config_listener *c,
                       bool make_dir)
{
    const char *path = c->addr.path;
    if (make_dir && make_parent_dir(path) != 0)
        return -1;
    if (clear_stale_socket(path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    struct listener *l = add_listener(set, fd);
    if (!l) {
        close(fd);
        return -1;
    }
    l->addr = c->addr;
    snprintf(l->url, sizeof l->url, "unix:%s", path);
    struct sockaddr_un sa = unix_sockaddr(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        log_error("cannot bind %s: %s", l->url, strerror(errno));
        return drop_newest(set);
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        snprintf(l->path, sizeof l->path, "%s", path);
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    /* Before listen(): until then a connect is refused, so no one gets
     * in through permissions about to be narrowed. */
    if ((l->path[0] && apply_file_settings(l, c) != 0) || activate(l) != 0)
        return drop_newest(set);
    return 0;
}

/* ---- TCP sockets ------------------------------------------------------------------------ */

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
static int listen_tcp_one(struct listener_set *set, const struct ferry_addr *a,
                          const struct addrinfo *ai)
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
    struct listener *l = add_listener(set, fd);
    if (!l) {
        close(fd);
        return -1;
    }
    l->is_tcp = true;
    l->addr = *a;
    format_tcp_url(fd, l->url, sizeof l->url);
    return activate(l) == 0 ? 0 : drop_newest(set);
}

/* Every address the host resolves to, numeric or by name. */
static int listen_tcp(struct listener_set *set, const struct ferry_addr *a)
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
        int one = listen_tcp_one(set, a, ai);
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

/* ---- systemd's sockets ------------------------------------------------------------------- */

/* systemd's sockets are blocking and may lack close-on-exec. */
static int make_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int listeners_adopt_systemd(struct listener_set *set)
{
    int first;
    int n = service_listen_fds(&first);
    if (n <= 0)
        return n;
    for (int fd = first; fd < first + n; fd++) {
        bool is_unix;
        if (!service_fd_is_listener(fd, &is_unix) || make_nonblocking(fd) != 0) {
            log_error("socket %d passed by systemd is not a listening stream socket", fd);
            return -1;
        }
        struct listener *l = add_listener(set, fd);
        if (!l)
            return -1;
        l->is_tcp = !is_unix;
        if (is_unix) {
            struct sockaddr_un sa;
            socklen_t len = sizeof sa;
            if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof sa.sun_family)
                snprintf(l->url, sizeof l->url, "unix:%.*s",
                         (int)(len - sizeof sa.sun_family), sa.sun_path);
            else
                snprintf(l->url, sizeof l->url, "unix:?");
        } else {
            format_tcp_url(fd, l->url, sizeof l->url);
        }
        log_info("taking %s from systemd", l->url);
        if (activate(l) != 0)
            return -1;
    }
    set->from_systemd = true;
    return n;
}

/* ---- reconciliation ------------------------------------------------------------------------- */

static bool addr_equal(const struct ferry_addr *a, const struct ferry_addr *b)
{
    return a->kind == b->kind && strcmp(a->path, b->path) == 0 &&
           strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static bool config_has(const struct config *cfg, const struct ferry_addr *a)
{
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (addr_equal(&cfg->listen[i].addr, a))
            return true;
    }
    return false;
}

int listeners_apply(struct listener_set *set, const struct config *cfg)
{
    if (set->from_systemd)
        return 0;
    for (size_t i = set->count; i-- > 0;) {
        if (!config_has(cfg, &set->all[i]->addr)) {
            log_info("no longer listening on %s", set->all[i]->url);
            remove_listener(set, i);
        }
    }
    int result = 0;
    for (size_t i = 0; i < cfg->listen_count; i++) {
        const struct config_listener *c = &cfg->listen[i];
        struct listener *open = NULL;
        for (size_t j = 0; j < set->count && !open; j++) {
            if (addr_equal(&set->all[j]->addr, &c->addr))
                open = set->all[j];
        }
        int rc;
        if (open)
            rc = still_our_file(open) ? apply_file_settings(open, c) : 0;
        else if (c->addr.kind == FERRY_ADDR_UNIX)
            rc = listen_unix(set, c, cfg->listen_is_default);
        else
            rc = listen_tcp(set, &c->addr);
        if (rc != 0)
            result = -1;
    }
    return result;
}
