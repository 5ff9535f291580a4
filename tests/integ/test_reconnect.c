/*
 * test_reconnect.c - libferry's reconnect against a real ferryd, through a
 * small proxy inside this process that cuts every connection on demand:
 * a stream of confirmed publishes cut again and again arrives whole, each
 * message once (ferryd drops what the producer sends again); a consumer
 * cut again and again opens its subscription again and carries on until
 * the queue is drained; an operator's KILL is survived the same way; the
 * descriptor stays close-on-exec, and a subscription the broker refuses
 * to open again reaches the error handler.
 */
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct ferryd daemon_;

static void setup(void)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

/* The queue "stream" durable (fsync always), the others in memory: a
 * publish sent again waits for the log write of its first copy. */
static void setup_durable(void)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[server]\ndata_dir = @DATA@\n"
                                                 "[queue \"stream\"]\ndurable = yes\n"), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

/* ---- the cutting proxy ------------------------------------------------------ */

#define PROXY_PAIRS_MAX 64

/* Accepts on its own Unix socket and forwards each connection to ferryd's,
 * byte for byte, in one thread with poll(). proxy_cut() closes every pair. */
struct proxy {
    char path[108];
    char url[120];
    int listen_fd;
    int wake[2];               /* a byte here makes the thread look at `cut` and `stop` */
    pthread_t thread;
    atomic_bool stop;
    atomic_int cut_requests;   /* cuts asked for */
    atomic_int cuts_done;      /* cuts made */
    int pairs[PROXY_PAIRS_MAX][2]; /* client side, ferryd side; -1 unused */
};

static void pair_close(struct proxy *p, int i)
{
    close(p->pairs[i][0]);
    close(p->pairs[i][1]);
    p->pairs[i][0] = p->pairs[i][1] = -1;
}

static void accept_one(struct proxy *p)
{
    int client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0)
        return;
    int server = harness_raw_connect(&daemon_);
    for (int i = 0; i < PROXY_PAIRS_MAX; i++) {
        if (p->pairs[i][0] < 0 && server >= 0) {
            p->pairs[i][0] = client;
            p->pairs[i][1] = server;
            return;
        }
    }
    close(client);
    if (server >= 0)
        close(server);
}

/* Moves what one side has to the other; false when the pair is over. */
static bool forward(int from, int to)
{
    char buf[65536];
    ssize_t n = recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return false;
    for (ssize_t done = 0; n > 0 && done < n;) {
        ssize_t w = send(to, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        done += w;
    }
    return true;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2 + 2 * PROXY_PAIRS_MAX];
        int index[2 + 2 * PROXY_PAIRS_MAX];
        int n = 0;
        fds[n++] = (struct pollfd){ .fd = p->listen_fd, .events = POLLIN };
        fds[n++] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
        for (int i = 0; i < PROXY_PAIRS_MAX; i++) {
            if (p->pairs[i][0] < 0)
                continue;
            for (int side = 0; side < 2; side++) {
                index[n] = i * 2 + side;
                fds[n++] = (struct pollfd){ .fd = p->pairs[i][side], .events = POLLIN };
            }
        }
        if (poll(fds, (nfds_t)n, 1000) <= 0)
            continue;
        if (fds[1].revents) {
            char drain[64];
            while (read(p->wake[0], drain, sizeof drain) > 0)
                continue;
            while (atomic_load(&p->cuts_done) < atomic_load(&p->cut_requests)) {
                for (int i = 0; i < PROXY_PAIRS_MAX; i++)
                    if (p->pairs[i][0] >= 0)
                        pair_close(p, i);
                atomic_fetch_add(&p->cuts_done, 1);
            }
            continue; /* the fds polled above may be closed now */
        }
        for (int k = 2; k < n; k++) {
            int i = index[k] / 2, side = index[k] % 2;
            if (fds[k].revents && p->pairs[i][0] >= 0
                && !forward(p->pairs[i][side], p->pairs[i][1 - side]))
                pair_close(p, i);
        }
        if (fds[0].revents)
            accept_one(p);
    }
    for (int i = 0; i < PROXY_PAIRS_MAX; i++)
        if (p->pairs[i][0] >= 0)
            pair_close(p, i);
    return NULL;
}

static void proxy_start(struct proxy *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_PAIRS_MAX; i++)
        p->pairs[i][0] = p->pairs[i][1] = -1;
    snprintf(p->path, sizeof p->path, "%s/proxy.sock", daemon_.dir);
    snprintf(p->url, sizeof p->url, "unix:%s", p->path);
    p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->path);
    ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(p->listen_fd, 16), 0);
    ck_assert_int_eq(pipe2(p->wake, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

/* Cuts every connection through the proxy and waits until it is done. */
static void proxy_cut(struct proxy *p)
{
    int want = atomic_fetch_add(&p->cut_requests, 1) + 1;
    ck_assert_int_eq(write(p->wake[1], "c", 1), 1);
    while (atomic_load(&p->cuts_done) < want)
        usleep(1000);
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    ck_assert_int_eq(write(p->wake[1], "s", 1), 1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    unlink(p->path);
}

static ferry_conn *connect_reconnecting(const char *url, const char *name)
{
    struct ferry_options o = {
        .url = url, .name = name, .reconnect = true,
        .reconnect_base_ms = 20, .reconnect_max_ms = 200,
    };
    ferry_conn *c = NULL;
    int rc = ferry_connect_opts(&o, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

/* ---- the producer --------------------------------------------------------- */

struct cutter {
    struct proxy *proxy;
    int cuts;
    int interval_ms;
};

static void *cut_repeatedly(void *arg)
{
    struct cutter *k = arg;
    for (int i = 0; i < k->cuts; i++) {
        usleep((useconds_t)k->interval_ms * 1000);
        proxy_cut(k->proxy);
    }
    return NULL;
}

/* What drain_counting saw: payload "m<i>" marks seen[i]. */
struct drain {
    bool *seen;
    int n;
    int got;     /* distinct messages */
    int twice;   /* messages that came again */
    int strange; /* payloads that are no "m<i>" with i < n */
};

static void on_drained(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct drain *d = arg;
    char text[32] = { 0 };
    memcpy(text, m->data, m->len < sizeof text - 1 ? m->len : sizeof text - 1);
    int i = atoi(text + 1);
    if (text[0] != 'm' || i < 0 || i >= d->n)
        d->strange++;
    else if (d->seen[i])
        d->twice++;
    else {
        d->seen[i] = true;
        d->got++;
    }
    ferry_ack(c, m->tag);
}

/* Takes every message of `queue` through one subscription, acking each,
 * until all n payloads "m0".."m<n-1>" came, each once; then ferryd must
 * say it queued exactly n, all acked: none lost, none twice. (A GET per
 * message took 23,000 round trips: some 20 s under ASan on a loaded
 * machine.) */
static void drain_counting(const char *queue, bool *seen, int n)
{
    ferry_conn *c = NULL;
    ck_assert_int_eq(ferry_connect(daemon_.url, &c), FERRY_OK);
    struct drain d = { .seen = seen, .n = n };
    struct ferry_consume_options o = { .credit = 512, .on_message = on_drained, .arg = &d };
    ck_assert_int_eq(ferry_consume(c, queue, &o, NULL), FERRY_OK);
    long long deadline = harness_now_ms() + 60000;
    while (d.got < n && d.twice == 0 && d.strange == 0) {
        ck_assert_msg(harness_now_ms() < deadline, "%d of %d messages came in 60 s", d.got, n);
        struct pollfd p = { .fd = ferry_fd(c), .events = POLLIN };
        poll(&p, 1, 100);
        ck_assert_int_eq(ferry_process(c), FERRY_OK);
    }
    ck_assert_msg(d.twice == 0, "%d messages came twice", d.twice);
    ck_assert_msg(d.strange == 0, "%d unexpected messages", d.strange);
    /* Asked on the same connection, after its acks went out. */
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, queue, &st), FERRY_OK);
    ck_assert_uint_eq(st->queues[0].published, (uint64_t)n);
    ck_assert_uint_eq(st->queues[0].acked, (uint64_t)n);
    ck_assert_uint_eq(st->queues[0].depth + st->queues[0].inflight, 0);
    ferry_stats_free(st);
    ferry_close(c);
}

static void publish_through_cuts(int n, int cuts)
{
    struct proxy proxy;
    proxy_start(&proxy);
    ferry_conn *c = connect_reconnecting(proxy.url, "producer");
    struct cutter k = { .proxy = &proxy, .cuts = cuts, .interval_ms = 60 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, cut_repeatedly, &k), 0);
    for (int i = 0; i < n; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "m%d", i);
        int rc = ferry_publish(c, "stream", payload, (size_t)len, NULL, 0, 0);
        ck_assert_msg(rc == FERRY_OK, "publish %d: %s", i, ferry_strerror(rc));
        if (i % 1000 == 999)
            usleep(20000); /* spread the stream over the cuts */
    }
    pthread_join(t, NULL);
    int rc = ferry_flush(c, 30000);
    ck_assert_msg(rc == FERRY_OK, "flush: %s", ferry_strerror(rc));
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, NULL, &st), FERRY_OK);
    printf("reconnect: %llu reconnects, %llu publishes sent again and dropped by ferryd\n",
           (unsigned long long)ferry_reconnects(c), (unsigned long long)st->duplicates_dropped);
    ck_assert_uint_gt(ferry_reconnects(c), 0);
    ferry_stats_free(st);
    ferry_close(c);
    printf("reconnect: %d publishes through %d cuts\n", n, atomic_load(&proxy.cuts_done));
    proxy_stop(&proxy);

    bool *seen = calloc((size_t)n, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    drain_counting("stream", seen, n); /* none lost, none twice */
    free(seen);
}

START_TEST(test_confirmed_publishes_cut_again_and_again_arrive_each_once)
{
    publish_through_cuts(20000, 8);
}
END_TEST

/* The same into a durable queue: a resend waits for its first copy's log
 * write, and is confirmed, not logged twice. */
START_TEST(test_durable_publishes_cut_again_and_again_arrive_each_once)
{
    publish_through_cuts(3000, 5);
}
END_TEST

/* ---- the consumer ------------------------------------------------------------ */

struct consumer {
    atomic_int acked;
    bool *seen;
    int n;
    struct event_base *base;
};

static void on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct consumer *k = arg;
    char text[32] = { 0 };
    memcpy(text, m->data, m->len < sizeof text - 1 ? m->len : sizeof text - 1);
    int i = atoi(text + 1);
    if (i >= 0 && i < k->n)
        k->seen[i] = true; /* redelivery after a lost ack may show one again */
    ferry_ack(c, m->tag);
    atomic_fetch_add(&k->acked, 1);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct consumer *k = arg;
    bool all = true;
    for (int i = 0; i < k->n && all; i++)
        all = k->seen[i];
    if (all)
        event_base_loopbreak(k->base);
}

static void run_consumer_through_cuts(bool use_kill)
{
    enum { N = 3000, CUTS = 5 };
    struct proxy proxy;
    proxy_start(&proxy);
    ferry_conn *producer = NULL;
    ck_assert_int_eq(ferry_connect(daemon_.url, &producer), FERRY_OK);

    static bool seen[N];
    memset(seen, 0, sizeof seen);
    struct consumer k = { .seen = seen, .n = N, .base = event_base_new() };
    ferry_conn *c = connect_reconnecting(use_kill ? daemon_.url : proxy.url, "consumer");
    ck_assert_int_eq(ferry_attach(c, k.base), FERRY_OK);
    struct ferry_consume_options o = { .credit = 64, .on_message = on_message, .arg = &k };
    ck_assert_int_eq(ferry_consume(c, "work", &o, NULL), FERRY_OK);

    struct timeval every = { 0, 50000 };
    struct event *tick = event_new(k.base, -1, EV_PERSIST, on_tick, &k);
    event_add(tick, &every);
    struct timeval limit = { 30, 0 };
    event_base_loopexit(k.base, &limit);
    for (int round = 0; round < CUTS; round++) {
        for (int i = round * N / CUTS; i < (round + 1) * N / CUTS; i++) {
            char payload[32];
            int len = snprintf(payload, sizeof payload, "m%d", i);
            ck_assert_int_eq(ferry_publish(producer, "work", payload, (size_t)len, NULL, 0, 0),
                             FERRY_OK);
        }
        ck_assert_int_eq(ferry_flush(producer, 10000), FERRY_OK);
        struct timeval slice = { 0, 100000 };
        event_base_loopexit(k.base, &slice);
        event_base_dispatch(k.base); /* consumes for a while */
        if (use_kill) {
            struct ferry_connections *l = NULL;
            ck_assert_int_eq(ferry_connections(producer, &l), FERRY_OK);
            for (size_t i = 0; i < l->count; i++)
                if (strcmp(l->conns[i].name, "consumer") == 0)
                    ck_assert_int_eq(ferry_kill(producer, l->conns[i].id), FERRY_OK);
            ferry_connections_free(l);
        } else {
            proxy_cut(&proxy);
        }
    }
    event_base_loopexit(k.base, &limit);
    event_base_dispatch(k.base); /* until every message was seen, or the limit */
    int missing = 0;
    for (int i = 0; i < N; i++)
        missing += !seen[i];
    printf("reconnect: consumer acked %d deliveries of %d messages through %d %s\n",
           atomic_load(&k.acked), N, CUTS, use_kill ? "kills" : "cuts");
    ck_assert_msg(missing == 0, "%d messages never reached the consumer", missing);

    event_free(tick);
    ferry_close(c);
    event_base_free(k.base);
    /* Every message was acked in the end: nothing ready, nothing in flight. */
    struct ferry_stats *st = NULL;
    long long until = harness_now_ms() + 10000;
    for (;;) {
        ck_assert_int_eq(ferry_stats(producer, "work", &st), FERRY_OK);
        bool settled = st->queues[0].depth == 0 && st->queues[0].inflight == 0;
        ferry_stats_free(st);
        if (settled)
            break;
        ck_assert_msg(harness_now_ms() < until, "messages left in the queue after the consumer");
        usleep(50000);
    }
    ferry_close(producer);
    proxy_stop(&proxy);
}

START_TEST(test_a_consumer_cut_again_and_again_resubscribes_and_carries_on)
{
    run_consumer_through_cuts(false);
}
END_TEST

START_TEST(test_a_consumer_killed_again_and_again_resubscribes_and_carries_on)
{
    run_consumer_through_cuts(true);
}
END_TEST

/* ---- what a reconnect must keep, and what it must tell ---------------------- */

/* Closes the broker's connection named `name` (KILL, through `admin`). */
static void kill_named(ferry_conn *admin, const char *name)
{
    struct ferry_connections *l = NULL;
    ck_assert_int_eq(ferry_connections(admin, &l), FERRY_OK);
    int killed = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->conns[i].name, name) == 0) {
            ck_assert_int_eq(ferry_kill(admin, l->conns[i].id), FERRY_OK);
            killed++;
        }
    }
    ferry_connections_free(l);
    ck_assert_int_eq(killed, 1);
}

/* A blocking call on c after its KILL: it reads the KILLED error, makes the
 * connection again and asks again on the new one. */
static void stats_through_reconnect(ferry_conn *c)
{
    struct ferry_stats *st = NULL;
    int rc = ferry_stats(c, NULL, &st);
    ck_assert_msg(rc == FERRY_OK, "stats: %s", ferry_strerror(rc));
    ferry_stats_free(st);
    ck_assert_uint_ge(ferry_reconnects(c), 1);
}

static bool close_on_exec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

/* The new socket is put at the old descriptor number: it must stay
 * close-on-exec, or a child that execs (ferry reply --exec) keeps the
 * broker's connection open after the parent closed it. */
START_TEST(test_the_descriptor_stays_close_on_exec_across_a_reconnect)
{
    ferry_conn *admin = NULL;
    ck_assert_int_eq(ferry_connect(daemon_.url, &admin), FERRY_OK);
    ferry_conn *c = connect_reconnecting(daemon_.url, "cloexec");
    ck_assert(close_on_exec(ferry_fd(c)));
    kill_named(admin, "cloexec");
    stats_through_reconnect(c);
    ck_assert_msg(close_on_exec(ferry_fd(c)), "the reconnected socket is not close-on-exec");
    ferry_close(c);
    ferry_close(admin);
}
END_TEST

/* The errors other than the KILL's own (KILLED, which comes first). */
struct error_seen {
    atomic_int count;
    int code;
    char text[256];
};

static void on_error_seen(ferry_conn *c, int code, const char *text, void *arg)
{
    struct error_seen *e = arg;
    if (code == FERRY_CODE_KILLED)
        return;
    if (atomic_load(&e->count) == 0) {
        e->code = code;
        snprintf(e->text, sizeof e->text, "%s", text);
    }
    atomic_fetch_add(&e->count, 1);
}

static void on_message_ack(ferry_conn *c, const ferry_message *m, void *arg)
{
    ferry_ack(c, m->tag);
}

/* A subscription to a temporary queue cannot be opened again after a
 * reconnect (the queue went with the old connection): the broker's refusal
 * reaches the error handler, naming the queue, and the subscription is
 * forgotten; the connection's other subscription is opened again. */
START_TEST(test_a_subscription_refused_after_a_reconnect_reaches_the_error_handler)
{
    ferry_conn *admin = NULL;
    ck_assert_int_eq(ferry_connect(daemon_.url, &admin), FERRY_OK);
    ferry_conn *c = connect_reconnecting(daemon_.url, "temp-consumer");
    struct error_seen e = { 0 };
    ferry_set_error_handler(c, on_error_seen, &e);
    char temp[FERRY_NAME_MAX + 1];
    ck_assert_int_eq(ferry_declare_temp(c, NULL, temp, sizeof temp), FERRY_OK);
    struct ferry_consume_options o = { .credit = 8, .on_message = on_message_ack };
    uint64_t temp_sub = 0, kept_sub = 0;
    ck_assert_int_eq(ferry_consume(c, temp, &o, &temp_sub), FERRY_OK);
    ck_assert_int_eq(ferry_consume(c, "kept", &o, &kept_sub), FERRY_OK);

    kill_named(admin, "temp-consumer");
    stats_through_reconnect(c); /* the refusal comes before the answer */
    ck_assert_int_eq(atomic_load(&e.count), 1);
    ck_assert_int_eq(e.code, FERRY_CODE_NOT_FOUND);
    ck_assert_msg(strstr(e.text, temp) != NULL, "the error does not name the queue: %s", e.text);
    ck_assert_int_eq(ferry_credit(c, temp_sub, 1), FERRY_EINVAL); /* forgotten */
    ck_assert_int_eq(ferry_credit(c, kept_sub, 1), FERRY_OK);
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(admin, "kept", &st), FERRY_OK);
    ck_assert_uint_eq(st->queues[0].consumers, 1); /* opened again */
    ferry_stats_free(st);
    ferry_close(c);
    ferry_close(admin);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("reconnect");
    TCase *tc = tcase_create("cuts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, harness_valgrind() ? 600 : 90);
    tcase_add_test(tc, test_confirmed_publishes_cut_again_and_again_arrive_each_once);
    tcase_add_test(tc, test_a_consumer_cut_again_and_again_resubscribes_and_carries_on);
    tcase_add_test(tc, test_a_consumer_killed_again_and_again_resubscribes_and_carries_on);
    tcase_add_test(tc, test_the_descriptor_stays_close_on_exec_across_a_reconnect);
    tcase_add_test(tc, test_a_subscription_refused_after_a_reconnect_reaches_the_error_handler);
    suite_add_tcase(s, tc);
    TCase *durable = tcase_create("durable");
    tcase_add_checked_fixture(durable, setup_durable, teardown);
    tcase_set_timeout(durable, harness_valgrind() ? 600 : 90);
    tcase_add_test(durable, test_durable_publishes_cut_again_and_again_arrive_each_once);
    suite_add_tcase(s, durable);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
