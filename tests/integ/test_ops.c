/*
 * test_ops.c - ferryd as an operator runs it: the sd-daemon notify
 * protocol read for real from a NOTIFY_SOCKET datagram socket (READY,
 * STATUS, WATCHDOG, RELOADING, STOPPING), SIGHUP reloads of the conf
 * file with a client connected throughout, the pid file and the bounded
 * graceful stop.
 *
 * Starts its own ferryd processes (not harness.c's: these need their own
 * environment, and a conf file that no command-line option overrides).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"
#include "ferry_proto.h"
#include "harness.h"

#define WAIT_MS 10000

struct daemon {
    pid_t pid;
    char dir[64];      /* temporary, removed at the end */
    char conf[128];
    char sock[100];    /* fits sun_path */
    char url[160];
    char log[128];
    char notify[100];  /* NOTIFY_SOCKET path; fits sun_path */
    int notify_fd;     /* bound datagram socket, or -1 */
    long long spawned_ms;
};

/* ---- helpers --------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void daemon_init(struct daemon *d, bool with_notify)
{
    memset(d, 0, sizeof *d);
    d->pid = -1;
    d->notify_fd = -1;
    snprintf(d->dir, sizeof d->dir, "/tmp/ferry-ops-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d->dir));
    snprintf(d->conf, sizeof d->conf, "%s/ferryd.conf", d->dir);
    snprintf(d->sock, sizeof d->sock, "%s/ferryd.sock", d->dir);
    snprintf(d->url, sizeof d->url, "unix:%s", d->sock);
    snprintf(d->log, sizeof d->log, "%s/ferryd.log", d->dir);
    snprintf(d->notify, sizeof d->notify, "%s/notify.sock", d->dir);
    if (!with_notify)
        return;
    d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(d->notify_fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->notify);
    ck_assert_int_eq(bind(d->notify_fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* Replaces the conf file at once (rename), so a reload never reads half of it. */
static void write_conf(struct daemon *d, const char *body)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->conf);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[listen \"main\"]\naddress = %s\n%s", d->url, body);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, d->conf), 0);
}

/* Starts ferryd -c conf [extra...]; watchdog_usec 0 leaves the watchdog off. */
static void spawn(struct daemon *d, const char *watchdog_usec, const char *const *extra)
{
    const char *argv[16] = { harness_ferryd_path(), "-c", d->conf };
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    d->spawned_ms = harness_now_ms();
    d->pid = fork();
    ck_assert_int_ge(d->pid, 0);
    if (d->pid > 0)
        return;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (d->notify_fd >= 0)
        setenv("NOTIFY_SOCKET", d->notify, 1);
    if (watchdog_usec)
        setenv("WATCHDOG_USEC", watchdog_usec, 1);
    int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0)
        dup2(log, STDERR_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/* Waits for a datagram that contains `what`; copies it to msg. */
static bool wait_notify(struct daemon *d, const char *what, int timeout_ms, char *msg,
                        size_t size)
{
    long long deadline = harness_now_ms() + timeout_ms;
    char buf[512];
    while (harness_now_ms() < deadline) {
        struct pollfd p = { .fd = d->notify_fd, .events = POLLIN };
        if (poll(&p, 1, (int)(deadline - harness_now_ms())) <= 0)
            continue;
        ssize_t n = recv(d->notify_fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, what)) {
            if (msg)
                snprintf(msg, size, "%s", buf);
            return true;
        }
    }
    return false;
}

static int count_in_log(const struct daemon *d, const char *what)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    char line[1024];
    int count = 0;
    while (fgets(line, sizeof line, f))
        count += strstr(line, what) != NULL;
    fclose(f);
    return count;
}

/* Waits until the log has `count` lines containing `what`. */
static bool wait_log(const struct daemon *d, const char *what, int count)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        if (count_in_log(d, what) >= count)
            return true;
        sleep_ms(10);
    }
    return false;
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ferry_connect, retried while the probes of wait_accepting may still
 * count against a max_connections of 1. */
static ferry_conn *connect_retry(const char *url)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    ferry_conn *c = NULL;
    while (ferry_connect(url, &c) != FERRY_OK) {
        ck_assert_msg(harness_now_ms() < deadline, "cannot connect to %s", url);
        sleep_ms(20);
    }
    return c;
}

static void wait_accepting(struct daemon *d)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    for (;;) {
        int fd = raw_connect(d->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        ck_assert_msg(harness_now_ms() < deadline, "ferryd did not start (log %s)", d->log);
        sleep_ms(5);
    }
}

/* Reaps ferryd (SIGKILL after WAIT_MS); the exit status as waitpid gives it. */
static int wait_exit(struct daemon *d)
{
    if (d->pid <= 0)
        return -1;
    int status = harness_reap(d->pid, WAIT_MS);
    d->pid = -1;
    return status;
}

/* SIGTERM and reap. */
static int terminate(struct daemon *d)
{
    if (d->pid > 0)
        kill(d->pid, SIGTERM);
    return wait_exit(d);
}

static void daemon_done(struct daemon *d)
{
    terminate(d);
    /* Under ASan/UBSan a report goes to the log, not to an exit status
     * that every test looks at. */
    int reports = count_in_log(d, "Sanitizer");
    char cmd[256];
    if (reports > 0) {
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", d->log);
        if (system(cmd) != 0)
            fprintf(stderr, "could not show %s\n", d->log);
    }
    if (d->notify_fd >= 0)
        close(d->notify_fd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d->dir);
    ck_assert_msg(reports == 0, "sanitizer report in ferryd's log (above)");
}

static long vm_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    }
    if (f)
        fclose(f);
    return kib;
}

/* ferryd was built with libsystemd (else the notify tests have nothing to read). */
static bool ferryd_has_systemd(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' --version | grep -q '+systemd'", harness_ferryd_path());
    return system(cmd) == 0;
}

#define SKIP_WITHOUT_SYSTEMD()                                               \
    do {                                                                     \
        if (!ferryd_has_systemd()) {                                         \
            fprintf(stderr, "skipped: ferryd built without libsystemd\n");   \
            return;                                                          \
        }                                                                    \
    } while (0)

static void publish_one(ferry_conn *c, const char *queue, const char *text)
{
    ck_assert_int_eq(ferry_publish(c, queue, text, strlen(text), NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_flush(c, WAIT_MS), FERRY_OK);
}

static void get_expect(ferry_conn *c, const char *queue, const char *text)
{
    ferry_message *m = NULL;
    ck_assert_int_eq(ferry_get(c, queue, WAIT_MS, &m), FERRY_OK);
    ck_assert_uint_eq(m->len, strlen(text));
    ck_assert(memcmp(m->data, text, m->len) == 0);
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
}

/* ---- the notify protocol ---------------------------------------------------------------- */

START_TEST(test_ready_comes_once_every_socket_accepts_connections)
{
    SKIP_WITHOUT_SYSTEMD();
    struct daemon d;
    daemon_init(&d, true);
    char second[100], body[200];
    snprintf(second, sizeof second, "%s/second.sock", d.dir);
    snprintf(body, sizeof body, "[listen \"second\"]\naddress = unix:%s\n", second);
    write_conf(&d, body);
    spawn(&d, NULL, NULL);
    char msg[512];
    ck_assert_msg(wait_notify(&d, "READY=1", WAIT_MS, msg, sizeof msg), "no READY=1");
    long long ready_ms = harness_now_ms() - d.spawned_ms;
    const char *socks[] = { d.sock, second };
    for (int i = 0; i < 2; i++) {
        int fd = raw_connect(socks[i]);
        ck_assert_msg(fd >= 0, "READY=1 came before %s accepted connections", socks[i]);
        close(fd);
    }
    ck_assert_msg(strstr(msg, "STATUS=0 connections, 0 messages in 0 queues"), "%s", msg);
    sleep_ms(200);
    /* Figures for docs/OPERATIONS.md. */
    fprintf(stderr, "figures: READY=1 %lld ms after fork+exec; idle VmRSS %ld KiB\n", ready_ms,
            vm_rss_kib(d.pid));
    daemon_done(&d);
}
END_TEST

START_TEST(test_the_status_line_is_refreshed_every_few_seconds)
{
    SKIP_WITHOUT_SYSTEMD();
    struct daemon d;
    daemon_init(&d, true);
    write_conf(&d, "");
    spawn(&d, NULL, NULL);
    ck_assert(wait_notify(&d, "READY=1", WAIT_MS, NULL, 0));
    ferry_conn *c = NULL;
    ck_assert_int_eq(ferry_connect(d.url, &c), FERRY_OK);
    publish_one(c, "jobs", "counted");
    char msg[512];
    ck_assert_msg(wait_notify(&d, "STATUS=", 8000, msg, sizeof msg), "no STATUS= after READY=1");
    ck_assert_str_eq(msg, "STATUS=1 connections, 1 messages in 1 queues");
    ferry_close(c);
    daemon_done(&d);
}
END_TEST

START_TEST(test_stopping_is_sent_on_sigterm_then_ferryd_exits_0)
{
    SKIP_WITHOUT_SYSTEMD();
    struct daemon d;
    daemon_init(&d, true);
    write_conf(&d, "");
    spawn(&d, NULL, NULL);
    ck_assert(wait_notify(&d, "READY=1", WAIT_MS, NULL, 0));
    kill(d.pid, SIGTERM);
    char msg[512];
    ck_assert_msg(wait_notify(&d, "STOPPING=1", WAIT_MS, msg, sizeof msg), "no STOPPING=1");
    int status = wait_exit(&d);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    daemon_done(&d);
}
END_TEST

START_TEST(test_watchdog_is_pinged_at_half_the_interval)
{
    SKIP_WITHOUT_SYSTEMD();
    struct daemon d;
    daemon_init(&d, true);
    write_conf(&d, "");
    spawn(&d, "200000", NULL); /* 200 ms: a ping every 100 ms */
    ck_assert(wait_notify(&d, "READY=1", WAIT_MS, NULL, 0));
    long long start = harness_now_ms();
    int pings = 0;
    while (harness_now_ms() - start < 1000) {
        if (wait_notify(&d, "WATCHDOG=1", 300, NULL, 0))
            pings++;
    }
    ck_assert_msg(pings >= 7 && pings <= 13, "%d pings in 1 s, expected about 10", pings);
    daemon_done(&d);
}
END_TEST

START_TEST(test_sighup_sends_reloading_then_ready)
{
    SKIP_WITHOUT_SYSTEMD();
    struct daemon d;
    daemon_init(&d, true);
    write_conf(&d, "");
    spawn(&d, NULL, NULL);
    ck_assert(wait_notify(&d, "READY=1", WAIT_MS, NULL, 0));
    kill(d.pid, SIGHUP);
    ck_assert_msg(wait_notify(&d, "RELOADING=1", WAIT_MS, NULL, 0), "no RELOADING=1");
    ck_assert_msg(wait_notify(&d, "READY=1", WAIT_MS, NULL, 0), "no READY=1 after reload");
    daemon_done(&d);
}
END_TEST

/* ---- reload ------------------------------------------------------------------------------- */

START_TEST(test_reload_changes_log_level_and_limits_without_dropping_a_connection)
{
    struct daemon d;
    daemon_init(&d, false);
    write_conf(&d, "[log]\nlevel = info\n[limits]\nmax_connections = 10\n");
    spawn(&d, NULL, NULL);
    wait_accepting(&d);
    ferry_conn *a = NULL;
    ck_assert_int_eq(ferry_connect(d.url, &a), FERRY_OK);
    publish_one(a, "jobs", "one");

    write_conf(&d, "[log]\nlevel = debug\n[limits]\nmax_connections = 1\n");
    kill(d.pid, SIGHUP);
    ck_assert_msg(wait_log(&d, "configuration reloaded", 1), "no reload in %s", d.log);
    ck_assert_int_eq(count_in_log(&d, "reload: log level info -> debug"), 1);
    ck_assert_int_eq(count_in_log(&d, "reload: max_connections 10 -> 1"), 1);

    /* The new limit holds: a second connection is refused... */
    ferry_conn *b = NULL;
    ck_assert_int_ne(ferry_connect(d.url, &b), FERRY_OK);
    /* ...the first connection still works... */
    publish_one(a, "jobs", "two");
    get_expect(a, "jobs", "one");
    get_expect(a, "jobs", "two");
    ferry_close(a);
    /* ...and its end is logged at the debug level now in force. */
    ck_assert_msg(wait_log(&d, "debug: ", 1), "no debug line after the reload");
    daemon_done(&d);
}
END_TEST

START_TEST(test_a_broken_file_on_reload_is_reported_and_the_old_config_stays)
{
    struct daemon d;
    daemon_init(&d, false);
    write_conf(&d, "[limits]\nmax_connections = 1\n");
    spawn(&d, NULL, NULL);
    wait_accepting(&d);
    ferry_conn *a = connect_retry(d.url);

    write_conf(&d, "[limits]\nmax_connections = 100\nmax_frame = huge\n");
    kill(d.pid, SIGHUP);
    ck_assert_msg(wait_log(&d, "reload failed", 1), "no failed reload in %s", d.log);
    char expected[256];
    snprintf(expected, sizeof expected, "%s:5: key 'max_frame': bad size 'huge'", d.conf);
    ck_assert_msg(count_in_log(&d, expected) == 1, "no '%s' in %s", expected, d.log);

    /* max_connections is still 1, and the connection is still served. */
    ferry_conn *b = NULL;
    ck_assert_int_ne(ferry_connect(d.url, &b), FERRY_OK);
    publish_one(a, "jobs", "still here");
    get_expect(a, "jobs", "still here");

    /* A good file later is taken. */
    write_conf(&d, "[limits]\nmax_connections = 100\n");
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "configuration reloaded", 1));
    ck_assert_int_eq(ferry_connect(d.url, &b), FERRY_OK);
    ferry_close(b);
    ferry_close(a);
    daemon_done(&d);
}
END_TEST

START_TEST(test_reload_opens_new_listeners_and_closes_removed_ones)
{
    struct daemon d;
    daemon_init(&d, false);
    write_conf(&d, "");
    spawn(&d, NULL, NULL);
    wait_accepting(&d);
    ferry_conn *a = NULL;
    ck_assert_int_eq(ferry_connect(d.url, &a), FERRY_OK);

    char second[160], body[400];
    snprintf(second, sizeof second, "%s/second.sock", d.dir);
    snprintf(body, sizeof body, "[listen \"second\"]\naddress = unix:%s\nmode = 0600\n", second);
    write_conf(&d, body);
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "configuration reloaded", 1));
    struct stat st;
    ck_assert_int_eq(stat(second, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    char url[200];
    snprintf(url, sizeof url, "unix:%s", second);
    ferry_conn *b = NULL;
    ck_assert_int_eq(ferry_connect(url, &b), FERRY_OK);

    /* Drop the first listener: its socket goes, its connection stays. */
    FILE *f = fopen(d.conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(body, f);
    fclose(f);
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "configuration reloaded", 2));
    ck_assert_int_eq(raw_connect(d.sock), -1);
    publish_one(a, "q", "via the first socket");
    get_expect(b, "q", "via the first socket");
    ferry_close(b);
    ferry_close(a);
    daemon_done(&d);
}
END_TEST

/* ---- pid file, stop ------------------------------------------------------------------------ */

START_TEST(test_the_pid_file_is_written_when_asked_and_removed_at_exit)
{
    struct daemon d;
    daemon_init(&d, false);
    write_conf(&d, "");
    char pid_file[160];
    snprintf(pid_file, sizeof pid_file, "%s/ferryd.pid", d.dir);
    const char *extra[] = { "--pid-file", pid_file, NULL };
    spawn(&d, NULL, extra);
    /* Written once the listeners are open: the socket may accept a
     * moment before the file is there. */
    long long deadline = harness_now_ms() + WAIT_MS;
    while (access(pid_file, F_OK) != 0 && harness_now_ms() < deadline)
        sleep_ms(5);
    FILE *f = fopen(pid_file, "r");
    ck_assert_ptr_nonnull(f);
    long pid = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    ck_assert_int_eq(pid, d.pid);
    int status = terminate(&d);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(access(pid_file, F_OK), -1);
    daemon_done(&d);
}
END_TEST

/* A consumer that never reads keeps output queued; the stop waits for
 * it shutdown_timeout long, not more. */
START_TEST(test_shutdown_timeout_bounds_a_stop_that_cannot_flush)
{
    struct daemon d;
    daemon_init(&d, false);
    write_conf(&d, "[server]\nshutdown_timeout = 300ms\n[limits]\nmax_output = 64KiB\n");
    spawn(&d, NULL, NULL);
    wait_accepting(&d);

    int stuck = raw_connect(d.sock);
    ck_assert_int_ge(stuck, 0);
    struct ferry_buf out = { 0 };
    struct ferry_frame hello = { .type = FERRY_F_HELLO, .version = FERRY_PROTO_VERSION,
                                 .name = { (const uint8_t *)"stuck", 5 } };
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 1, .sub = 1,
                                   .credit = 1000000, .queue = { (const uint8_t *)"big", 3 } };
    ck_assert_int_eq(ferry_frame_encode(&out, &hello), 0);
    ck_assert_int_eq(ferry_frame_encode(&out, &consume), 0);
    ck_assert_int_eq(write(stuck, out.data + out.off, ferry_buf_pending(&out)),
                     (ssize_t)ferry_buf_pending(&out));
    ferry_buf_free(&out);

    ferry_conn *p = NULL;
    ck_assert_int_eq(ferry_connect(d.url, &p), FERRY_OK);
    static char payload[64 * 1024];
    for (int i = 0; i < 64; i++)
        ck_assert_int_eq(ferry_publish(p, "big", payload, sizeof payload, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_flush(p, WAIT_MS), FERRY_OK);
    ferry_close(p);

    long long start = harness_now_ms();
    int status = terminate(&d);
    long long took = harness_now_ms() - start;
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(took >= 250 && took < 3000, "stop took %lld ms, expected about 300", took);
    ck_assert_int_eq(count_in_log(&d, "still open after shutdown_timeout (300 ms)"), 1);
    close(stuck);
    daemon_done(&d);
}
END_TEST

int main(void)
{
    /* A peer closing under a write must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("ops");
    TCase *notify = tcase_create("notify");
    tcase_set_timeout(notify, 60);
    tcase_add_test(notify, test_ready_comes_once_every_socket_accepts_connections);
    tcase_add_test(notify, test_the_status_line_is_refreshed_every_few_seconds);
    tcase_add_test(notify, test_stopping_is_sent_on_sigterm_then_ferryd_exits_0);
    tcase_add_test(notify, test_watchdog_is_pinged_at_half_the_interval);
    tcase_add_test(notify, test_sighup_sends_reloading_then_ready);
    suite_add_tcase(s, notify);

    TCase *reload = tcase_create("reload");
    tcase_set_timeout(reload, 60);
    tcase_add_test(reload, test_reload_changes_log_level_and_limits_without_dropping_a_connection);
    tcase_add_test(reload, test_a_broken_file_on_reload_is_reported_and_the_old_config_stays);
    tcase_add_test(reload, test_reload_opens_new_listeners_and_closes_removed_ones);
    suite_add_tcase(s, reload);

    TCase *life = tcase_create("life cycle");
    tcase_set_timeout(life, 60);
    tcase_add_test(life, test_the_pid_file_is_written_when_asked_and_removed_at_exit);
    tcase_add_test(life, test_shutdown_timeout_bounds_a_stop_that_cannot_flush);
    suite_add_tcase(s, life);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
