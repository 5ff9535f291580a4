/*
 * harness.h - starts and stops real ferryd processes for integration tests.
 *
 * Each daemon gets a fresh temporary directory with its Unix socket and its
 * log; it is stopped by PID (SIGTERM, then SIGKILL) and its directory is
 * removed. A daemon also dies with the test process that started it
 * (PR_SET_PDEATHSIG), so a test killed on timeout leaves nothing behind;
 * and the directories lie inside one directory of the test program, which
 * its main process removes at exit, so a failed assertion (which ends a
 * forked Check test before its teardown) leaves none behind either.
 */
#ifndef FERRY_TEST_HARNESS_H
#define FERRY_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct ferryd {
    pid_t pid;
    char dir[64];    /* temporary directory, removed by ferryd_stop */
    char sock[100];  /* Unix socket path inside dir (fits sun_path) */
    char url[160];   /* "unix:" + sock */
    char log[128];   /* ferryd's stderr */
    char data[128];  /* dir/data: a data directory for tests that want one */
    char conf[128];  /* passed with -c when set (ferryd_write_conf) */
    uint64_t fsize_limit; /* nonzero: RLIMIT_FSIZE of the daemon, in bytes */
};

/* Path of the ferryd binary ($FERRYD, set by meson) and of the ferry CLI ($FERRY_CLI). */
const char *harness_ferryd_path(void);
const char *harness_cli_path(void);

/* Starts ferryd listening on a new Unix socket plus `extra` arguments
 * (NULL-terminated, may be NULL), and waits until it accepts connections.
 * 0 on success, -1 with a message on stderr. */
int ferryd_start(struct ferryd *d, const char *const *extra);
/* Makes the temporary directory and names its files without starting
 * anything (then ferryd_write_conf, then ferryd_restart). 0 or -1. */
int ferryd_prepare(struct ferryd *d);
/* Writes `text` to dir/ferryd.conf, every "@DATA@" in it replaced by
 * d->data; later starts pass -c with it. 0 or -1. */
int ferryd_write_conf(struct ferryd *d, const char *text);
/* Restarts a stopped or killed daemon on the same directory and socket. */
int ferryd_restart(struct ferryd *d, const char *const *extra);
/* SIGTERM, wait up to 5 s, then SIGKILL; reaps it. Returns its exit status
 * as waitpid gives it, or -1 if it was not running. Keeps the directory. */
int ferryd_terminate(struct ferryd *d);
/* Waits for process `pid` to exit, SIGKILLing it after timeout_ms; reaps
 * it and returns its status as waitpid gives it, or -1 if it is not a
 * child to reap. */
int harness_reap(pid_t pid, long timeout_ms);
/* SIGKILL and reap at once. */
void ferryd_kill(struct ferryd *d);
/* Terminates (if running) and removes the directory. Safe to call twice.
 * Returns 0 if ferryd exited with status 0 (or was not running), else its
 * wait status, after copying the end of its log (a sanitizer's report, or
 * memcheck's under FERRYD_VALGRIND) to stderr. */
int ferryd_stop(struct ferryd *d);
/* true while the process is alive. */
bool ferryd_alive(struct ferryd *d);

/* true when $FERRYD_VALGRIND is set (and not "0"): ferryd then runs under
 * valgrind's memcheck, and tests may shrink their loads. */
bool harness_valgrind(void);
/* Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the
 * limit now in force, or -1. ferryd's children get the same. */
int harness_raise_fd_limit(void);
/* VmRSS of a process from /proc/PID/status, in KiB; -1 if unknown. */
long harness_rss_kb(pid_t pid);
/* false when ferryd's VmRSS says little about what it holds: under ASan
 * (whose quarantine keeps freed memory for a while; LeakSanitizer checks
 * leaks at ferryd's exit instead) and under valgrind. Tests then print
 * their memory figures without judging them. */
bool harness_rss_reliable(void);

/* Runs `ferry ARGS...` (args NULL-terminated, at most 14) against d, its
 * file descriptor child_fd (1: stdout, 2: stderr) into a pipe whose read
 * end is *pipe_fd (the caller closes it and reaps the child). Its pid, or -1.
 * Like ferryd, it is killed if the thread that spawned it ends first. */
pid_t harness_cli_spawn(const struct ferryd *d, const char *const *args, int child_fd,
                        int *pipe_fd);

/* Connects a raw Unix stream socket to the daemon (for hostile-input tests). */
int harness_raw_connect(const struct ferryd *d);

/* Sleeps ms milliseconds. */
void harness_sleep_ms(long ms);

/* Monotonic milliseconds. */
long long harness_now_ms(void);

#endif
