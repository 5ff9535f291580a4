/*
 * test_load.c - a real ferryd under a storm of connections: 2,000 clients
 * (FERRY_TEST_LOAD_CONNS) connect at once, each consumes its own queue and
 * publishes to it a few messages every ROUND_GAP_MS for a few seconds,
 * acks what comes back, deletes its queue and leaves: 100,000 messages a
 * second in all, a load ferryd carries without being saturated. Meanwhile a small libferry
 * client times publish-with-confirm round trips: their p99 must stay under
 * a generous bound (the target is 50 ms on a normal build), and ferryd's
 * memory must come back near its idle level once the storm is over.
 *
 * The storm is one thread and one epoll set of raw non-blocking sockets
 * speaking frames with proto/'s codec; the probe is a second thread.
 */
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNS 2000
#define VALGRIND_CONNS 100
/* Per connection: a round of PER_ROUND publishes every ROUND_GAP_MS,
 * each round confirmed and delivered back before the next; at least
 * ROUNDS rounds, and more until the storm has lasted STORM_MIN_MS (so
 * that the probe gets a few thousand round trips in). */
#define ROUNDS 8
#define ROUND_GAP_MS 100
#define STORM_MIN_MS 3000
#define PER_ROUND 5
#define PAYLOAD_BYTES 100
#define CREDIT 8
/* The whole storm must be over by then. */
#define STORM_LIMIT_MS 45000
/* The probe's round trips: one every PROBE_GAP_US, at most PROBES_MAX. */
#define PROBE_GAP_US 1000
#define PROBES_MAX 100000
/* p99 of the probe's round trips must stay under this (normal and ASan
 * builds; the target, 50 ms at p99, is for a normal build), on a
 * machine that lets ferryd run: see starved(). */
#define P99_BOUND_MS 250.0
/* After the storm, ferryd's VmRSS must have given back at least three
 * quarters of what the storm added, or be within this of its idle level. */
#define AFTER_SLACK_KB (8 * 1024)

static struct ferryd daemon_;

static int conn_count(void)
{
    const char *s = getenv("FERRY_TEST_LOAD_CONNS");
    if (s && *s)
        return atoi(s);
    return harness_valgrind() ? VALGRIND_CONNS : DEFAULT_CONNS;
}

/* ---- one storm connection --------------------------------------------------- */

enum load_state {
    LOAD_RUNNING,  /* a round published, its confirms and deliveries coming */
    LOAD_WAITING,  /* the round is over; the next one waits for its time */
    LOAD_DELETING, /* DELETE of its queue sent, waiting for the OK */
    LOAD_DONE,     /* closed */
};

struct load_conn {
    int fd;
    enum load_state state;
    char queue[32];
    struct ferry_buf in;
    struct ferry_buf out;
    bool want_out;          /* EPOLLOUT is on */
    unsigned round;         /* rounds completed */
    long long round_start;  /* when the current round was sent */
    unsigned confirmed;     /* confirms of the current round */
    unsigned delivered;     /* deliveries of the current round */
    uint64_t next_id;       /* publish ids count up from 1 */
    uint64_t acks[64];      /* tags read in this batch, acked at its end */
    size_t ack_count;
    bool deleted;           /* its queue's DELETE was answered: it leaves */
};

struct storm {
    int epfd;
    struct load_conn *conns; /* owned array of n */
    int n;
    int done;
    long long busy_until;    /* rounds go on until then (monotonic ms) */
    long messages;           /* published, confirmed, delivered and acked */
    char failure[256];       /* first protocol surprise, "" if none */
    /* Connections whose next round is due later, in the order it is due
     * (every round waits the same gap, so arrival order is due order). */
    struct load_conn **waiting; /* owned ring of n */
    int wait_head, wait_count;
};

static void storm_fail(struct storm *s, const char *what, const struct load_conn *c)
{
    if (s->failure[0] == '\0')
        snprintf(s->failure, sizeof s->failure, "%s (queue %s)", what, c->queue);
}

static void queue_frame(struct storm *s, struct load_conn *c, const struct ferry_frame *f)
{
    if (ferry_frame_encode(&c->out, f) != 0)
        storm_fail(s, "out of memory", c);
}

static void publish_round(struct storm *s, struct load_conn *c)
{
    static const uint8_t payload[PAYLOAD_BYTES];
    for (int i = 0; i < PER_ROUND; i++) {
        struct ferry_frame f = {
            .type = FERRY_F_PUBLISH, .queue = { (const uint8_t *)c->queue, strlen(c->queue) },
            .payload = { payload, sizeof payload }, .id = c->next_id++, .has_id = true,
        };
        queue_frame(s, c, &f);
    }
    c->confirmed = 0;
    c->delivered = 0;
    c->round_start = harness_now_ms();
    c->state = LOAD_RUNNING;
}

static void set_events(struct storm *s, struct load_conn *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c };
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* Writes what the socket takes; asks for EPOLLOUT for the rest. */
static void flush_out(struct storm *s, struct load_conn *c)
{
    while (ferry_buf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, ferry_buf_pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            ferry_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            storm_fail(s, "write failed", c);
        break;
    }
    set_events(s, c, ferry_buf_pending(&c->out) > 0);
}

static void finish(struct storm *s, struct load_conn *c)
{
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = LOAD_DONE;
    ferry_buf_free(&c->in);
    ferry_buf_free(&c->out);
    s->done++;
}

static void on_frame(struct storm *s, struct load_conn *c, const struct ferry_frame *f)
{
    switch (f->type) {
    case FERRY_F_WELCOME:
    case FERRY_F_EOS: /* the DELETE ends the subscription */
        break;
    case FERRY_F_OK:
        if (f->rid == 2 && c->state == LOAD_DELETING)
            c->deleted = true; /* on_readable closes it after this frame */
        break;
    case FERRY_F_CONFIRM:
        c->confirmed += f->list_count;
        break;
    case FERRY_F_DELIVER:
        c->delivered++;
        if (c->ack_count < sizeof c->acks / sizeof c->acks[0])
            c->acks[c->ack_count++] = f->tag;
        else
            storm_fail(s, "more deliveries than credit", c);
        break;
    default:
        storm_fail(s, f->type == FERRY_F_ERROR ? "an ERROR from ferryd" : "an unexpected frame", c);
        break;
    }
}

/* After a batch of input: ack it, and start the next round or leave. */
static void after_batch(struct storm *s, struct load_conn *c)
{
    if (c->ack_count > 0) {
        struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = c->acks, .uint_count = c->ack_count };
        queue_frame(s, c, &ack);
        c->ack_count = 0;
    }
    if (c->state == LOAD_RUNNING && c->confirmed == PER_ROUND && c->delivered == PER_ROUND) {
        s->messages += PER_ROUND;
        if (++c->round < ROUNDS || harness_now_ms() < s->busy_until) {
            /* Its next round waits for its time (start_due_rounds). */
            s->waiting[(s->wait_head + s->wait_count++) % s->n] = c;
            c->state = LOAD_WAITING;
        } else {
            struct ferry_frame del = { .type = FERRY_F_DELETE, .rid = 2,
                                       .queue = { (const uint8_t *)c->queue, strlen(c->queue) } };
            queue_frame(s, c, &del);
            c->state = LOAD_DELETING;
        }
    }
    flush_out(s, c);
}

static void on_readable(struct storm *s, struct load_conn *c)
{
    for (;;) {
        if (ferry_buf_reserve(&c->in, 16384) != 0) {
            storm_fail(s, "out of memory", c);
            return;
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            storm_fail(s, "ferryd closed the connection", c);
            finish(s, c);
            return;
        }
        c->in.len += (size_t)n;
        struct ferry_bytes body;
        size_t used;
        while (!c->deleted
               && ferry_frame_split(c->in.data + c->in.off, ferry_buf_pending(&c->in),
                                    FERRY_FRAME_MAX_CEILING, &body, &used) == FERRY_SPLIT_FRAME) {
            struct ferry_frame f;
            const char *why;
            if (ferry_frame_decode(body.ptr, body.len, &f, &why) != FERRY_CODE_OK)
                storm_fail(s, why, c);
            else
                on_frame(s, c, &f);
            ferry_buf_consume(&c->in, used);
        }
        if (c->deleted) {
            finish(s, c);
            return;
        }
    }
    after_batch(s, c);
}

/* Connects connection i and queues its opening: HELLO, CONSUME, round 1. */
static void open_conn(struct storm *s, int i)
{
    struct load_conn *c = &s->conns[i];
    memset(c, 0, sizeof *c);
    c->next_id = 1;
    snprintf(c->queue, sizeof c->queue, "load-%d", i);
    c->fd = harness_raw_connect(&daemon_);
    ck_assert_msg(c->fd >= 0, "connection %d: %s", i, strerror(errno));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    ck_assert_int_eq(epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev), 0);

    struct ferry_frame hello = { .type = FERRY_F_HELLO, .version = FERRY_PROTO_VERSION };
    struct ferry_frame consume = {
        .type = FERRY_F_CONSUME, .rid = 1, .sub = 1, .credit = CREDIT,
        .queue = { (const uint8_t *)c->queue, strlen(c->queue) },
    };
    queue_frame(s, c, &hello);
    queue_frame(s, c, &consume);
    publish_round(s, c);
    flush_out(s, c);
}

/* Sends the rounds that are due; returns ms until the next one (-1: none). */
static int start_due_rounds(struct storm *s)
{
    long long now = harness_now_ms();
    while (s->wait_count > 0) {
        struct load_conn *c = s->waiting[s->wait_head];
        long long due = c->round_start + ROUND_GAP_MS;
        if (due > now)
            return (int)(due - now);
        s->wait_head = (s->wait_head + 1) % s->n;
        s->wait_count--;
        publish_round(s, c);
        flush_out(s, c);
    }
    return -1;
}

/* Runs the whole storm; returns its duration in ms. */
static long long run_storm(struct storm *s)
{
    long long t0 = harness_now_ms();
    s->busy_until = t0 + STORM_MIN_MS;
    for (int i = 0; i < s->n; i++)
        open_conn(s, i);
    struct epoll_event events[256];
    while (s->done < s->n && s->failure[0] == '\0') {
        ck_assert_msg(harness_now_ms() - t0 < STORM_LIMIT_MS, "storm not over in %d ms: %d of %d done",
                      STORM_LIMIT_MS, s->done, s->n);
        int next_due = start_due_rounds(s);
        int k = epoll_wait(s->epfd, events, 256, next_due >= 0 && next_due < 1000 ? next_due : 1000);
        for (int e = 0; e < k; e++) {
            struct load_conn *c = events[e].data.ptr;
            if (c->state == LOAD_DONE)
                continue;
            if (events[e].events & EPOLLOUT)
                flush_out(s, c);
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(s, c);
        }
    }
    return harness_now_ms() - t0;
}

/* ---- the probe: a small client's round trips during the storm ------------- */

struct probe {
    ferry_conn *conn;
    atomic_bool stop;
    double *ms;        /* owned: one round trip each */
    size_t count;
    long peak_rss_kb;
    int failures;
};

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void *probe_loop(void *arg)
{
    struct probe *p = arg;
    long long next_rss = 0;
    while (!atomic_load(&p->stop) && p->count < PROBES_MAX) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = ferry_publish(p->conn, "probe", "ping", 4, NULL, 0, FERRY_PUBLISH_CONFIRM);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc != FERRY_OK)
            p->failures++;
        p->ms[p->count++] = elapsed_ms(&a, &b);
        if (harness_now_ms() >= next_rss) {
            long kb = harness_rss_kb(daemon_.pid);
            if (kb > p->peak_rss_kb)
                p->peak_rss_kb = kb;
            next_rss = harness_now_ms() + 50;
        }
        usleep(PROBE_GAP_US);
    }
    return NULL;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *sorted, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* ---- the machine ------------------------------------------------------------------- */

/* Milliseconds process `pid` (ferryd: one thread) has spent runnable but
 * waiting for a CPU (/proc/PID/schedstat); -1 if unknown. */
static long long cpu_wait_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long long on_cpu, waiting;
    int n = fscanf(f, "%llu %llu", &on_cpu, &waiting);
    fclose(f);
    return n == 2 ? (long long)(waiting / 1000000u) : -1;
}

/* Whether the machine kept ferryd from running for half the storm or more
 * (other builds beside the suite, or the suite under nice among them).
 * The p99 bound says how ferryd shares its time among its clients; with
 * ferryd waiting that long for a CPU, a round trip measures the scheduler
 * instead. Measured on 2 cores: a quiet machine has ferryd wait 20 % of
 * the storm (31 % under ASan), with p99 4 ms (35 ms under ASan); two to
 * four busy processes beside it, 45-76 % and p99 30-190 ms; the same at a
 * lower priority than they (nice 5 or 10), 79-90 % and p99 260-1,200 ms,
 * in both builds. */
static bool starved(long long waited_ms, long long storm_ms)
{
    return waited_ms >= 0 && 2 * waited_ms >= storm_ms;
}

/* ---- the test ---------------------------------------------------------------------- */

static uint64_t connections(ferry_conn *c)
{
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(c, "probe", &st), FERRY_OK);
    uint64_t n = st->connections;
    ferry_stats_free(st);
    return n;
}

/* ferryd's memory once it is idle: the probe's queue emptied, and its
 * connection's buffers given back (conn.c trims them after 1 s idle). */
static long idle_rss_kb(ferry_conn *probe)
{
    uint64_t purged;
    ck_assert_int_eq(ferry_purge(probe, "probe", &purged), FERRY_OK);
    usleep(1500 * 1000);
    return harness_rss_kb(daemon_.pid);
}

static void setup(void)
{
    /* ferryd raises its own limit toward max_connections (10,000). */
    int limit = harness_raise_fd_limit();
    ck_assert_msg(limit >= conn_count() + 64, "descriptor limit %d is too low for %d connections",
                  limit, conn_count());
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
}

static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

START_TEST(test_a_small_client_stays_responsive_through_a_storm_of_connections)
{
    int n = conn_count();

    struct probe p = { .ms = calloc(PROBES_MAX, sizeof(double)) };
    ck_assert_ptr_nonnull(p.ms);
    ck_assert_int_eq(ferry_connect(daemon_.url, &p.conn), FERRY_OK);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(ferry_publish(p.conn, "probe", "warm", 4, NULL, 0, FERRY_PUBLISH_CONFIRM),
                         FERRY_OK);
    long rss_idle = idle_rss_kb(p.conn);

    struct storm s = { .epfd = epoll_create1(EPOLL_CLOEXEC), .n = n };
    s.conns = calloc((size_t)n, sizeof *s.conns);
    s.waiting = calloc((size_t)n, sizeof *s.waiting);
    ck_assert_ptr_nonnull(s.conns);
    ck_assert_ptr_nonnull(s.waiting);
    ck_assert_int_ge(s.epfd, 0);
    pthread_t probe_thread;
    pthread_create(&probe_thread, NULL, probe_loop, &p);
    long long wait_before = cpu_wait_ms(daemon_.pid);
    long long storm_ms = run_storm(&s);
    long long waited_ms = cpu_wait_ms(daemon_.pid);
    waited_ms = waited_ms >= 0 && wait_before >= 0 ? waited_ms - wait_before : -1;
    atomic_store(&p.stop, true);
    pthread_join(probe_thread, NULL);
    ck_assert_msg(s.failure[0] == '\0', "storm: %s", s.failure);
    ck_assert_int_eq(p.failures, 0);

    /* Every storm connection is gone; what they held must be too. */
    long long deadline = harness_now_ms() + 10000;
    while (connections(p.conn) != 1 && harness_now_ms() < deadline)
        usleep(20000);
    ck_assert_uint_eq(connections(p.conn), 1);
    long rss_after = idle_rss_kb(p.conn);

    ck_assert_uint_gt(p.count, 10);
    qsort(p.ms, p.count, sizeof *p.ms, compare_double);
    double p50 = percentile(p.ms, p.count, 0.50), p99 = percentile(p.ms, p.count, 0.99);
    double max = p.ms[p.count - 1];
    printf("load: %d connections, %ld messages published, confirmed, delivered and acked in %lld ms\n",
           n, s.messages, storm_ms);
    printf("load: probe round trips (publish with confirm): %zu, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           p.count, p50, p99, max);
    printf("load: ferryd VmRSS idle %ld KiB, peak during the storm %ld KiB, after %ld KiB\n",
           rss_idle, p.peak_rss_kb, rss_after);
    printf("load: ferryd waited %lld ms of the storm's %lld ms for a CPU%s\n", waited_ms,
           storm_ms, starved(waited_ms, storm_ms) ? ": the machine starved it, p99 not judged" : "");
    fflush(stdout); /* before a failed assertion ends this process */
    if (!harness_valgrind() && !starved(waited_ms, storm_ms))
        ck_assert_msg(p99 < P99_BOUND_MS, "p99 %.2f ms is over %.0f ms (ferryd waited %lld ms "
                      "of %lld for a CPU)", p99, P99_BOUND_MS, waited_ms, storm_ms);
    long kept_bound = (p.peak_rss_kb - rss_idle) / 4;
    if (kept_bound < AFTER_SLACK_KB)
        kept_bound = AFTER_SLACK_KB;
    if (harness_rss_reliable())
        ck_assert_msg(rss_after - rss_idle <= kept_bound,
                      "ferryd holds %ld KiB after the storm, %ld KiB idle before, %ld at the peak",
                      rss_after, rss_idle, p.peak_rss_kb);

    ferry_close(p.conn);
    close(s.epfd);
    free(s.conns);
    free(s.waiting);
    free(p.ms);
}
END_TEST

static Suite *load_suite(void)
{
    Suite *s = suite_create("load");
    TCase *tc = tcase_create("storm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, harness_valgrind() ? 600 : 120);
    tcase_add_test(tc, test_a_small_client_stays_responsive_through_a_storm_of_connections);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* meson sets MALLOC_PERTURB_, with which glibc fills every allocation
     * and every free: ferryd's VmRSS would then count each of its 64 KiB
     * read buffers whole, measuring the fill rather than ferryd. */
    unsetenv("MALLOC_PERTURB_");
    SRunner *sr = srunner_create(load_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
