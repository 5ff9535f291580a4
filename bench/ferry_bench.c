/*
 * ferry_bench.c - throughput and latency of ferry, measured the way
 * ../shared/bench-anchors measures beanstalkd, Redis and NATS, so that the
 * figures can be set side by side (bench/README.md).
 *
 * Process model: the parent forks 1 consumer and P producers; each child
 * connects, reports ready, and waits on a "go" pipe; t0 is taken when all
 * are ready. The consumer (asynchronous, on a libevent loop, acking every
 * message) records the time of its last receive. Rate = received / (t_end - t0).
 * Payload: [0..7] send time ns, [8..11] producer, [12..15] sequence, filler.
 *
 * Workloads: w1a one confirmed publish at a time; w1b batches of -b
 * messages (confirmed asynchronously, flushed at the end); w2 one message
 * in flight (latency); w3 64 KiB messages in batches; delay: delayed
 * delivery lateness, below.
 *
 * Without -a it starts its own ferryd (from --ferryd, or next to this
 * binary in the build tree) on a temporary socket and stops it by PID.
 * With -D always|interval|never that ferryd makes every queue durable with
 * that fsync policy, its log in the temporary directory (bench/README.md,
 * "Durable queues"). With -p N every message carries a priority, spread
 * over N levels (message i of a producer at level i mod N, 1..10), so that
 * the queue's ready lists are mixed. With -f N the producers publish to a
 * topic that N queues are bound to, one PUBLISH_TOPIC per message (a topic
 * has no batch frame: w1a confirms each, w1b and w3 confirm at the end),
 * and the consumer subscribes to all N: the rate counts every copy
 * delivered, and the summary line the publishes too.
 * With -w delay the producers publish every message (one PUBLISH each)
 * with a deliver-at time: all of them are due between 5 s after the start
 * and 5 s + -W ms (default 10,000), evenly spread, so that with the
 * default -n 100000 all 100,000 are pending in the broker before the first
 * is due; the consumer records each one's lateness (its arrival minus its
 * deliver-at, on the wall clock the broker uses too) and the result line
 * gives p50 and p99 of it in microseconds, the summary line the maximum and
 * whether every publish was done before the first message was due.
 * A benchmark, not a test: it never fails on a timing.
 */
#include <ferry.h>

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LAT 1000000

struct config {
    const char *label;
    const char *workload;
    const char *url;
    const char *ferryd;
    int producers;
    long per_producer;
    int size;
    int batch;
    int timeout_s;
    int gap_us;
    int credit;
    unsigned busy_poll_us; /* the consumer's ferry_dispatch() busy polling; 0: off */
    const char *fsync;  /* durable queues with this policy; NULL: in memory */
    int priorities;     /* 1..10: messages at i mod N; 0: no priority sent */
    int fanout;         /* -f N: publish to a topic bound to N queues; 0: to one queue */
    long window_ms;     /* -w delay: the due times are spread over this long */
};

/* -w delay: the first message is due this long after the start. */
#define DELAY_LEAD_MS 5000

/* The publish options of message i of a producer under -p. */
static void set_priority(const struct config *c, long i, bool *has, uint8_t *priority)
{
    *has = c->priorities > 0;
    *priority = c->priorities > 0 ? (uint8_t)(i % c->priorities) : 0;
}

/* Shared between the parent and its children (MAP_SHARED). */
struct shared {
    volatile int ready;
    volatile int failed;
    volatile uint64_t t0;
    volatile uint64_t t0_unix_ms;     /* -w delay: the wall clock at t0 */
    volatile uint64_t published_unix_ms; /* -w delay: when the last producer was done */
    volatile uint64_t t_end;
    volatile long received;
    volatile uint64_t seqsum;
    volatile long badlen;
    volatile int complete;
    long nlat;
    double lat_us[MAX_LAT];
};

static struct shared *sh;
static int go_pipe[2];
static int delivered_pipe[2]; /* w2: consumer -> producer "acked" */
static char queue[64]; /* with -f, the topic; the queues are queue.0 .. queue.N-1 */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "ferry-bench [%d]: %s: %s\n", (int)getpid(), what, ferry_strerror(rc));
    sh->failed = 1;
    _exit(2);
}

static void wait_go(void)
{
    close(go_pipe[1]); /* only the parent may hold it: its close is the start signal */
    __sync_fetch_and_add(&sh->ready, 1);
    char c;
    while (read(go_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
}

static bool is_w2(const struct config *c) { return strcmp(c->workload, "w2") == 0; }
static bool is_delay(const struct config *c) { return strcmp(c->workload, "delay") == 0; }

static uint64_t unix_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* -w delay: message i of a producer is due at this Unix time in ms;
 * producers interleave. */
static uint64_t due_ms(const struct config *c, uint32_t producer, long i)
{
    long total = (long)c->producers * c->per_producer;
    long k = i * c->producers + (long)producer;
    return sh->t0_unix_ms + DELAY_LEAD_MS + (uint64_t)(k * c->window_ms / total);
}

/* -w delay: publishes every message with its deliver-at in bytes 0..7. */
static void run_delayed_producer(const struct config *c, ferry_conn *conn, uint32_t index,
                                 uint8_t *payload)
{
    for (long i = 0; i < c->per_producer; i++) {
        uint64_t due = due_ms(c, index, i);
        memset(payload, 0, (size_t)c->size);
        memcpy(payload, &due, 8);
        memcpy(payload + 8, &index, 4);
        uint32_t seq = (uint32_t)i;
        memcpy(payload + 12, &seq, 4);
        struct ferry_publish_options o = { .deliver_at_ms = due };
        int rc = ferry_publish_opts(conn, queue, payload, (size_t)c->size, &o);
        if (rc != FERRY_OK)
            die("publish", rc);
    }
    uint64_t done = unix_us() / 1000u;
    if (done > sh->published_unix_ms)
        sh->published_unix_ms = done; /* a race between producers only blurs this report */
}

static void fill_payload(uint8_t *p, int size, uint32_t producer, uint32_t seq)
{
    uint64_t t = now_ns();
    memcpy(p, &t, 8);
    memcpy(p + 8, &producer, 4);
    memcpy(p + 12, &seq, 4);
}

static void run_producer(const struct config *c, uint32_t index)
{
    ferry_conn *conn;
    int rc = ferry_connect(c->url, &conn);
    if (rc != FERRY_OK)
        die("connect", rc);
    int batch = c->batch < 1 ? 1 : c->batch;
    uint8_t *payloads = calloc((size_t)batch, (size_t)c->size);
    struct ferry_msg *msgs = calloc((size_t)batch, sizeof *msgs);
    wait_go();

    if (is_delay(c))
        run_delayed_producer(c, conn, index, payloads);
    for (long i = 0; i < c->per_producer && !is_delay(c);) {
        if (strcmp(c->workload, "w1a") == 0 || is_w2(c) || c->fanout > 0) {
            fill_payload(payloads, c->size, index, (uint32_t)i);
            bool confirm = strcmp(c->workload, "w1a") == 0;
            struct ferry_publish_options o = { .flags = confirm ? FERRY_PUBLISH_CONFIRM : 0 };
            set_priority(c, i, &o.has_priority, &o.priority);
            rc = c->fanout > 0 ? ferry_publish_topic(conn, queue, payloads, (size_t)c->size, &o)
                               : ferry_publish_opts(conn, queue, payloads, (size_t)c->size, &o);
            if (rc != FERRY_OK)
                die("publish", rc);
            i++;
            if (is_w2(c)) {
                char ack;
                if (read(delivered_pipe[0], &ack, 1) != 1)
                    break;
                struct timespec gap = { 0, c->gap_us * 1000L };
                nanosleep(&gap, NULL);
            }
            continue;
        }
        int n = 0;
        for (; n < batch && i < c->per_producer; n++, i++) {
            uint8_t *p = payloads + (size_t)n * (size_t)c->size;
            fill_payload(p, c->size, index, (uint32_t)i);
            msgs[n] = (struct ferry_msg){ .data = p, .len = (size_t)c->size };
            set_priority(c, i, &msgs[n].has_priority, &msgs[n].priority);
        }
        rc = ferry_publish_batch(conn, queue, msgs, (size_t)n, 0);
        if (rc != FERRY_OK)
            die("publish_batch", rc);
    }
    rc = ferry_flush(conn, c->timeout_s * 1000);
    if (rc != FERRY_OK)
        die("flush", rc);
    ferry_close(conn);
    free(payloads);
    free(msgs);
    _exit(0);
}

struct consumer_state {
    const struct config *c;
    struct event_base *base;
    long expected;
};

static void on_message(ferry_conn *conn, const ferry_message *m, void *arg)
{
    struct consumer_state *st = arg;
    uint64_t t = now_ns();
    if ((int)m->len != st->c->size) {
        sh->badlen++;
    } else {
        uint64_t sent;
        uint32_t seq;
        memcpy(&sent, m->data, 8);
        memcpy(&seq, (const uint8_t *)m->data + 12, 4);
        sh->seqsum += seq;
        if (is_w2(st->c) && sh->nlat < MAX_LAT)
            sh->lat_us[sh->nlat++] = (double)(t - sent) / 1000.0;
        if (is_delay(st->c) && sh->nlat < MAX_LAT) /* sent: the deliver-at, Unix ms */
            sh->lat_us[sh->nlat++] = (double)unix_us() - (double)sent * 1000.0;
    }
    ferry_ack(conn, m->tag);
    sh->received++;
    sh->t_end = t;
    if (is_w2(st->c)) {
        ferry_write_pending(conn); /* the ack goes out before the producer moves on */
        if (write(delivered_pipe[1], "a", 1) != 1)
            sh->failed = 1;
    }
    if (sh->received >= st->expected) {
        sh->complete = 1;
        event_base_loopbreak(st->base);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void run_consumer(const struct config *c)
{
    ferry_conn *conn;
    int rc = ferry_connect(c->url, &conn);
    if (rc != FERRY_OK)
        die("connect", rc);
    int queues = c->fanout > 0 ? c->fanout : 1;
    struct consumer_state st = { c, event_base_new(), (long)c->producers * c->per_producer * queues };
    struct ferry_consume_options o = { .credit = (uint32_t)c->credit, .on_message = on_message, .arg = &st };
    uint64_t sub;
    if ((rc = ferry_attach(conn, st.base)) != FERRY_OK)
        die("attach", rc);
    for (int i = 0; i < queues; i++) {
        char name[80];
        if (c->fanout > 0)
            snprintf(name, sizeof name, "%s.%d", queue, i);
        else
            snprintf(name, sizeof name, "%s", queue);
        if ((rc = ferry_consume(conn, name, &o, &sub)) != FERRY_OK)
            die("consume", rc);
    }
    struct timeval limit = { c->timeout_s, 0 };
    struct event *deadline = evtimer_new(st.base, on_deadline, st.base);
    evtimer_add(deadline, &limit);
    wait_go();
    ferry_dispatch(conn, c->busy_poll_us);
    ferry_write_pending(conn);
    event_free(deadline);
    ferry_close(conn);
    event_base_free(st.base);
    _exit(0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The conf file of a ferryd whose queues are all durable; 0 or -1. */
static int write_durable_conf(const char *dir, const char *fsync, char *conf, size_t conflen)
{
    snprintf(conf, conflen, "%s/ferryd.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f, "[server]\ndata_dir = %s/data\n[queues]\ndurable = yes\nfsync = %s\n", dir, fsync);
    return fclose(f);
}

/* Starts ferryd on a temporary socket; returns its pid, sets url. */
static pid_t start_ferryd(const char *path, const char *fsync, char *dir, size_t dirlen, char *url,
                          size_t urllen)
{
    snprintf(dir, dirlen, "/tmp/ferry-bench-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(url, urllen, "unix:%s/ferryd.sock", dir);
    char conf[128];
    if (fsync && write_durable_conf(dir, fsync, conf, sizeof conf) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fsync)
            execl(path, path, "-l", url, "--log-level", "warn", "-c", conf, (char *)NULL);
        else
            execl(path, path, "-l", url, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        ferry_conn *probe;
        if (ferry_connect(url, &probe) == FERRY_OK) {
            ferry_close(probe);
            return pid;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    return -1;
}

/* -f N: binds queue.0 .. queue.N-1 to the topic `queue`. 0 or -1. */
static int bind_fanout(const struct config *c)
{
    ferry_conn *conn = NULL;
    int rc = ferry_connect(c->url, &conn);
    for (int i = 0; rc == FERRY_OK && i < c->fanout; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%d", queue, i);
        rc = ferry_bind(conn, name, queue);
    }
    if (rc != FERRY_OK)
        fprintf(stderr, "ferry-bench: bind: %s\n", ferry_strerror(rc));
    if (conn != NULL)
        ferry_close(conn);
    return rc == FERRY_OK ? 0 : -1;
}

static void default_ferryd(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, len, "%s/../daemon/ferryd", self);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ferry-bench [-w w1a|w1b|w2|w3] [-a URL | --ferryd PATH] [-B label]\n"
            "                   [-P producers] [-n msgs_per_producer] [-s size] [-b batch]\n"
            "                   [-c credit] [-t timeout_s] [-g w2_gap_us]\n"
            "                   [-S busy_poll_us]  (the consumer's ferry_dispatch() busy polling)\n"
            "                   [-D always|interval|never]  (durable queues, own ferryd only)\n"
            "                   [-p levels]  (priorities 0..levels-1, mixed; 1..10)\n"
            "                   [-f N]  (publish to a topic bound to N queues, 1..64; w1a, w1b, w3)\n"
            "                   [-W window_ms]  (-w delay: due times spread over it; default 10000)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct config c = { .label = "ferry-unix", .workload = "w1b", .producers = -1, .per_producer = -1,
                        .size = -1, .batch = -1, .timeout_s = 60, .gap_us = 100, .credit = 1024,
                        .window_ms = 10000 };
    static const struct option longopts[] = { { "ferryd", required_argument, NULL, 'F' }, { 0 } };
    int o;
    while ((o = getopt_long(argc, argv, "w:a:B:P:n:s:b:c:t:g:D:S:p:f:W:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'w': c.workload = optarg; break;
        case 'a': c.url = optarg; break;
        case 'B': c.label = optarg; break;
        case 'P': c.producers = atoi(optarg); break;
        case 'n': c.per_producer = atol(optarg); break;
        case 's': c.size = atoi(optarg); break;
        case 'b': c.batch = atoi(optarg); break;
        case 'c': c.credit = atoi(optarg); break;
        case 't': c.timeout_s = atoi(optarg); break;
        case 'g': c.gap_us = atoi(optarg); break;
        case 'F': c.ferryd = optarg; break;
        case 'D': c.fsync = optarg; break;
        case 'S': c.busy_poll_us = (unsigned)atoi(optarg); break;
        case 'p': c.priorities = atoi(optarg); break;
        case 'f': c.fanout = atoi(optarg); break;
        case 'W': c.window_ms = atol(optarg); break;
        default: usage();
        }
    }
    /* Defaults per workload, as in the anchors. */
    struct { const char *w; int p; long n; int s; int b; } defaults[] = {
        { "w1a", 4, 250000, 64, 1 }, { "w1b", 4, 250000, 64, 100 },
        { "w2", 1, 20000, 64, 1 },   { "w3", 1, 20000, 65536, 100 },
        { "delay", 1, 100000, 64, 1 },
    };
    bool known = false;
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (strcmp(c.workload, defaults[i].w) != 0)
            continue;
        known = true;
        if (c.producers < 0) c.producers = defaults[i].p;
        if (c.per_producer < 0) c.per_producer = defaults[i].n;
        if (c.size < 0) c.size = defaults[i].s;
        if (c.batch < 0) c.batch = defaults[i].b;
    }
    if (!known || c.size < 16 || c.producers < 1 || c.per_producer < 1 || c.priorities < 0 ||
        c.priorities > 10 || c.fanout < 0 || c.fanout > 64 || (c.fanout > 0 && is_w2(&c)) ||
        (c.fanout > 0 && is_delay(&c)) || c.window_ms < 0)
        usage();
    if (c.fsync && (c.url || (strcmp(c.fsync, "always") != 0 && strcmp(c.fsync, "interval") != 0 &&
                              strcmp(c.fsync, "never") != 0)))
        usage();
    if (is_w2(&c))
        c.producers = 1;

    char dir[64] = "", url[128], ferryd_path[PATH_MAX + 32];
    pid_t daemon_pid = -1;
    if (!c.url) {
        if (!c.ferryd) {
            default_ferryd(ferryd_path, sizeof ferryd_path);
            c.ferryd = ferryd_path;
        }
        daemon_pid = start_ferryd(c.ferryd, c.fsync, dir, sizeof dir, url, sizeof url);
        if (daemon_pid < 0) {
            fprintf(stderr, "ferry-bench: could not start %s\n", c.ferryd);
            return 2;
        }
        c.url = url;
    }
    snprintf(queue, sizeof queue, "bench.%s.%d", c.workload, (int)getpid());
    if (c.fanout > 0 && bind_fanout(&c) != 0)
        return 2;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || pipe(go_pipe) != 0 || pipe(delivered_pipe) != 0)
        return 2;

    pid_t children[65];
    int nchildren = 0;
    if ((children[nchildren++] = fork()) == 0)
        run_consumer(&c);
    for (int i = 0; i < c.producers && i < 64; i++)
        if ((children[nchildren++] = fork()) == 0)
            run_producer(&c, (uint32_t)i);

    while (sh->ready < nchildren && !sh->failed)
        usleep(1000);
    sh->t0 = now_ns();
    sh->t0_unix_ms = unix_us() / 1000u;
    close(go_pipe[1]);

    struct rusage before, after;
    getrusage(RUSAGE_CHILDREN, &before);
    for (int i = 0; i < nchildren; i++)
        waitpid(children[i], NULL, 0);
    getrusage(RUSAGE_CHILDREN, &after);

    long copies = c.fanout > 0 ? c.fanout : 1;
    long total = (long)c.producers * c.per_producer * copies;
    double elapsed = sh->t_end > sh->t0 ? (double)(sh->t_end - sh->t0) / 1e9 : 0;
    uint64_t want_sum = (uint64_t)copies * (uint64_t)c.producers *
                        (uint64_t)(c.per_producer * (c.per_producer - 1) / 2);
    bool verify = sh->badlen == 0 && sh->received == total && sh->seqsum == want_sum;
    if (is_w2(&c) || is_delay(&c)) {
        qsort(sh->lat_us, (size_t)sh->nlat, sizeof(double), cmp_double);
        double p50 = sh->nlat ? sh->lat_us[sh->nlat / 2] : 0;
        double p99 = sh->nlat ? sh->lat_us[(long)((double)sh->nlat * 0.99)] : 0;
        printf("%s %s - - %.1f %.1f\n", c.label, c.workload, p50, p99);
        if (is_delay(&c))
            printf("# delay lateness_us: min %.0f p50 %.0f p99 %.0f max %.0f; all %ld published "
                   "before the first was due: %s\n", sh->nlat ? sh->lat_us[0] : 0, p50, p99,
                   sh->nlat ? sh->lat_us[sh->nlat - 1] : 0, (long)c.producers * c.per_producer,
                   sh->published_unix_ms < sh->t0_unix_ms + DELAY_LEAD_MS ? "yes" : "NO");
    } else {
        double rate = elapsed > 0 ? (double)sh->received / elapsed : 0;
        printf("%s %s %.0f %.2f - -\n", c.label, c.workload, rate, rate * c.size / 1e6);
    }
    printf("# %s %s n=%ld/%ld size=%d producers=%d batch=%d credit=%d busy_poll_us=%u priorities=%d fanout=%d publishes=%ld queues=%s elapsed_s=%.3f complete=%s verify=%s\n",
           c.label, c.workload, sh->received, total, c.size, c.producers, c.batch, c.credit,
           c.busy_poll_us, c.priorities, c.fanout, (long)c.producers * c.per_producer, c.fsync ? c.fsync : "memory", elapsed, sh->complete ? "yes" : "no", verify ? "ok" : "FAIL");
    if (daemon_pid > 0) {
        char status[64], line[256];
        snprintf(status, sizeof status, "/proc/%d/status", (int)daemon_pid);
        FILE *f = fopen(status, "r");
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM", 5) || !strncmp(line, "VmRSS", 5))
                printf("# ferryd %s", line);
        if (f)
            fclose(f);
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "ferry-bench: could not remove %s\n", dir);
    }
    return sh->failed ? 1 : 0;
}
