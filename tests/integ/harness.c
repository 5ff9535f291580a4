/*
 * harness.c - real ferryd processes for integration tests: start on a
 * temporary socket, wait for readiness, stop by PID, clean the directory.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000
/* Under valgrind, ferryd stops slowly: the leak check runs at exit. */
#define VALGRIND_STOP_TIMEOUT_MS 60000
#define MAX_ARGS 64
/* Lines of ferryd's log shown when it did not exit cleanly. */
#define LOG_TAIL_LINES 60

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *harness_ferryd_path(void) { return env_or("FERRYD", "ferryd"); }
const char *harness_cli_path(void) { return env_or("FERRY_CLI", "ferry"); }

pid_t harness_cli_spawn(const struct ferryd *d, const char *const *args, int child_fd,
                        int *pipe_fd)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, like ferryd */
        dup2(fds[1], child_fd);
        close(fds[0]);
        close(fds[1]);
        char *argv[16];
        size_t n = 0;
        argv[n++] = (char *)harness_cli_path();
        for (; args[n - 1] != NULL && n < 15; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        setenv("FERRY_URL", d->url, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    *pipe_fd = fds[0];
    return pid;
}

int harness_raw_connect(const struct ferryd *d)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

void harness_sleep_ms(long ms)
{
    sleep_ms(ms);
}

bool harness_valgrind(void)
{
    const char *v = getenv("FERRYD_VALGRIND");
    return v && *v && strcmp(v, "0") != 0;
}

/* Raises the soft descriptor limit to the hard one: load tests open
 * thousands of connections (ferryd raises its own limit as well). */
int harness_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return rl.rlim_cur > INT32_MAX ? INT32_MAX : (int)rl.rlim_cur;
}

bool harness_rss_reliable(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return false;
#endif
#endif
    return !harness_valgrind();
}

long harness_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static pid_t spawn(const struct ferryd *d, const char *const *extra)
{
    const char *argv[MAX_ARGS];
    char valgrind_log[sizeof d->dir + 32];
    int n = 0;
    if (harness_valgrind()) {
        /* memcheck's verdict is ferryd's exit status (99), which
         * ferryd_stop reports; the details go to dir/valgrind.log. */
        snprintf(valgrind_log, sizeof valgrind_log, "--log-file=%s/valgrind.log", d->dir);
        argv[n++] = "valgrind";
        argv[n++] = "--quiet";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
        argv[n++] = valgrind_log;
    }
    argv[n++] = harness_ferryd_path();
    argv[n++] = "-l";
    argv[n++] = d->url;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    if (d->conf[0]) {
        argv[n++] = "-c";
        argv[n++] = d->conf;
    }
    for (int i = 0; extra && extra[i] && n < MAX_ARGS - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child: die with the test process, log to the directory. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) {
        dup2(log, STDERR_FILENO);
        dup2(log, STDOUT_FILENO);
    }
    if (d->fsize_limit != 0) {
        struct rlimit rl = { (rlim_t)d->fsize_limit, (rlim_t)d->fsize_limit };
        setrlimit(RLIMIT_FSIZE, &rl);
    }
    harness_raise_fd_limit();
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int wait_ready(struct ferryd *d)
{
    long long deadline = harness_now_ms() + READY_TIMEOUT_MS;
    while (harness_now_ms() < deadline) {
        int fd = harness_raw_connect(d);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (!ferryd_alive(d)) {
            fprintf(stderr, "harness: ferryd exited during start-up (log: %s)\n", d->log);
            return -1;
        }
        sleep_ms(5);
    }
    fprintf(stderr, "harness: ferryd not ready within %d ms\n", READY_TIMEOUT_MS);
    return -1;
}

/* Every daemon's directory is made inside one directory of this test
 * program, made before main() and removed when its main process exits: a
 * failed Check assertion ends a forked test at once (_exit, no teardown),
 * which left that test's directory behind (its ferryd dies with it,
 * PR_SET_PDEATHSIG). "" if it could not be made: then directly in /tmp. */
static char root_dir[32];
static pid_t root_owner;

static void remove_root_dir(void)
{
    if (getpid() != root_owner) /* a forked test, or a child of one */
        return;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", root_dir);
}

__attribute__((constructor)) static void make_root_dir(void)
{
    snprintf(root_dir, sizeof root_dir, "/tmp/ferry-test-XXXXXX");
    if (!mkdtemp(root_dir)) {
        root_dir[0] = '\0';
        return;
    }
    root_owner = getpid();
    if (atexit(remove_root_dir) != 0)
        root_owner = 0;
}

int ferryd_prepare(struct ferryd *d)
{
    memset(d, 0, sizeof *d);
    d->pid = -1;
    if (root_dir[0])
        snprintf(d->dir, sizeof d->dir, "%s/ferryd-XXXXXX", root_dir);
    else
        snprintf(d->dir, sizeof d->dir, "/tmp/ferry-test-XXXXXX");
    if (!mkdtemp(d->dir)) {
        perror("harness: mkdtemp");
        return -1;
    }
    snprintf(d->sock, sizeof d->sock, "%s/ferryd.sock", d->dir);
    snprintf(d->url, sizeof d->url, "unix:%s", d->sock);
    snprintf(d->log, sizeof d->log, "%s/ferryd.log", d->dir);
    snprintf(d->data, sizeof d->data, "%s/data", d->dir);
    return 0;
}

int ferryd_write_conf(struct ferryd *d, const char *text)
{
    snprintf(d->conf, sizeof d->conf, "%s/ferryd.conf", d->dir);
    FILE *f = fopen(d->conf, "w");
    if (!f) {
        perror("harness: conf file");
        return -1;
    }
    for (const char *p = text; *p;) {
        const char *mark = strstr(p, "@DATA@");
        size_t n = mark ? (size_t)(mark - p) : strlen(p);
        fwrite(p, 1, n, f);
        if (!mark)
            break;
        fputs(d->data, f);
        p = mark + strlen("@DATA@");
    }
    return fclose(f) == 0 ? 0 : -1;
}

int ferryd_start(struct ferryd *d, const char *const *extra)
{
    if (ferryd_prepare(d) != 0)
        return -1;
    return ferryd_restart(d, extra);
}

int ferryd_restart(struct ferryd *d, const char *const *extra)
{
    d->pid = spawn(d, extra);
    if (d->pid < 0) {
        perror("harness: fork");
        return -1;
    }
    if (wait_ready(d) != 0) {
        ferryd_kill(d);
        return -1;
    }
    return 0;
}

bool ferryd_alive(struct ferryd *d)
{
    if (d->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid) {
        d->pid = -1;
        return false;
    }
    return r == 0;
}

int harness_reap(pid_t pid, long timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1; /* not our child, or already reaped */
        if (harness_now_ms() >= deadline) {
            fprintf(stderr, "harness: process %d did not exit in %ld ms; killing\n", (int)pid,
                    timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return status;
        }
        sleep_ms(5);
    }
}

int ferryd_terminate(struct ferryd *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int status = harness_reap(d->pid, harness_valgrind() ? VALGRIND_STOP_TIMEOUT_MS : STOP_TIMEOUT_MS);
    d->pid = -1;
    return status;
}

void ferryd_kill(struct ferryd *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
}

/* Copies the last lines of a file to stderr (a report of ferryd's). */
static void show_tail(const char *path, int lines)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2 2>/dev/null", lines, path);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: (no %s)\n", path);
}

int ferryd_stop(struct ferryd *d)
{
    bool was_running = d->pid > 0;
    int status = ferryd_terminate(d);
    int rc = 0;
    if (was_running && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        /* A sanitizer or memcheck report, a crash, or a hang at exit. */
        rc = status;
        fprintf(stderr, "harness: ferryd did not exit cleanly (wait status 0x%x); end of %s:\n",
                (unsigned)status, d->log);
        show_tail(d->log, LOG_TAIL_LINES);
        if (harness_valgrind()) {
            char path[sizeof d->dir + 16];
            snprintf(path, sizeof path, "%s/valgrind.log", d->dir);
            show_tail(path, 200);
        }
    }
    if (d->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", d->dir);
        d->dir[0] = '\0';
    }
    return rc;
}
