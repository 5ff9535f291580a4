/*
 * handoff.c - the hand-off that ferry replaces, as a service.
 *
 * In one program you would write: worker threads and processes put jobs
 * on a queue.Queue / multiprocessing.Queue, an asyncio loop takes them,
 * a None sentinel says "no more work", and queue.join() waits until every
 * job is done. Here the queue lives in ferryd:
 *
 *   - 4 worker threads share ONE connection and publish jobs (thread-safe);
 *   - 2 worker processes (fork) each open their own connection;
 *   - an asynchronous consumer on a libevent loop takes the jobs and acks
 *     each one once it is processed;
 *   - when the producers are done, a coordinator marks the queue ended
 *     (the sentinel) and joins it (queue.join()): it returns once every
 *     job has been acked, and the consumer gets end-of-stream and stops.
 *
 * Usage: handoff [URL]   (default: $FERRY_URL, else the default socket)
 * Exit 0 when every job was processed exactly once.
 */
#include <ferry.h>

#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define PROCESSES 2
#define JOBS_PER_WORKER 10000

static const char *url;
static char queue[64];

/* One job: which worker made it and its number. */
struct job {
    uint32_t worker;
    uint32_t seq;
};

static int publish_jobs(ferry_conn *c, uint32_t worker)
{
    for (uint32_t i = 0; i < JOBS_PER_WORKER; i++) {
        struct job j = { worker, i };
        int rc = ferry_publish(c, queue, &j, sizeof j, NULL, 0, 0);
        if (rc != FERRY_OK)
            return rc;
    }
    return ferry_flush(c, -1); /* every job confirmed by the broker */
}

struct thread_arg {
    ferry_conn *shared;
    uint32_t worker;
    int rc;
};

static void *worker_thread(void *p)
{
    struct thread_arg *a = p;
    a->rc = publish_jobs(a->shared, a->worker);
    return NULL;
}

static int worker_process(uint32_t worker)
{
    ferry_conn *c;
    int rc = ferry_connect(url, &c);
    if (rc != FERRY_OK) {
        fprintf(stderr, "handoff: worker %u: connect: %s\n", worker, ferry_strerror(rc));
        return 1;
    }
    rc = publish_jobs(c, worker);
    if (rc != FERRY_OK)
        fprintf(stderr, "handoff: worker %u: publish: %s\n", worker, ferry_strerror(rc));
    ferry_close(c);
    return rc == FERRY_OK ? 0 : 1;
}

/* The coordinator: wait for the producers, end the queue, join it. */
struct coordinator {
    pthread_t threads[THREADS];
    struct thread_arg args[THREADS];
    pid_t children[PROCESSES];
    int failed;
};

static void *coordinate(void *p)
{
    struct coordinator *co = p;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(co->threads[i], NULL);
        if (co->args[i].rc != FERRY_OK) {
            fprintf(stderr, "handoff: worker %u: publish: %s\n", co->args[i].worker,
                    ferry_strerror(co->args[i].rc));
            co->failed = 1;
        }
    }
    for (int i = 0; i < PROCESSES; i++) {
        int status;
        waitpid(co->children[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "handoff: worker process %d failed (status %#x)\n",
                    (int)co->children[i], status);
            co->failed = 1;
        }
    }
    ferry_conn *c;
    if (ferry_connect(url, &c) != FERRY_OK) {
        co->failed = 1;
        return NULL;
    }
    /* The sentinel: no more work will come. */
    co->failed |= ferry_end(c, queue) != FERRY_OK;
    /* queue.join(): returns once every job published so far is acked. */
    co->failed |= ferry_join(c, queue, 60000) != FERRY_OK;
    printf("handoff: join returned: every job is done\n");
    ferry_close(c);
    return NULL;
}

/* The asynchronous consumer's state. */
struct consumer {
    struct event_base *base;
    uint64_t processed;
    uint64_t duplicates;
    uint8_t seen[THREADS + PROCESSES][JOBS_PER_WORKER];
};

static void on_job(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct consumer *st = arg;
    struct job j;
    if (m->len == sizeof j) {
        memcpy(&j, m->data, sizeof j);
        if (j.worker < THREADS + PROCESSES && j.seq < JOBS_PER_WORKER) {
            st->duplicates += st->seen[j.worker][j.seq];
            st->seen[j.worker][j.seq] = 1;
        }
    }
    st->processed++;
    ferry_ack(c, m->tag); /* done with this job */
}

static void on_end(ferry_conn *c, uint64_t sub, const char *q, void *arg)
{
    struct consumer *st = arg;
    printf("handoff: end of stream on %s\n", q);
    event_base_loopbreak(st->base);
}

int main(int argc, char **argv)
{
    url = argc > 1 ? argv[1] : NULL;
    snprintf(queue, sizeof queue, "handoff.%d", (int)getpid());

    /* Fork the worker processes first, before any connection exists. */
    struct coordinator co = { .failed = 0 };
    for (int i = 0; i < PROCESSES; i++) {
        co.children[i] = fork();
        if (co.children[i] == 0)
            _exit(worker_process(THREADS + (uint32_t)i));
    }

    ferry_conn *consumer_conn, *producer_conn;
    if (ferry_connect(url, &consumer_conn) != FERRY_OK ||
        ferry_connect(url, &producer_conn) != FERRY_OK) {
        fprintf(stderr, "handoff: cannot connect to %s\n", url ? url : ferry_default_url());
        return 1;
    }

    struct consumer *st = calloc(1, sizeof *st);
    st->base = event_base_new();
    struct ferry_consume_options opts = { .credit = 512, .on_message = on_job, .on_eos = on_end, .arg = st };
    uint64_t sub;
    if (ferry_attach(consumer_conn, st->base) != FERRY_OK ||
        ferry_consume(consumer_conn, queue, &opts, &sub) != FERRY_OK) {
        fprintf(stderr, "handoff: cannot consume: %s\n", queue);
        return 1;
    }

    /* Worker threads share one producer connection. */
    for (int i = 0; i < THREADS; i++) {
        co.args[i] = (struct thread_arg){ producer_conn, (uint32_t)i, 0 };
        pthread_create(&co.threads[i], NULL, worker_thread, &co.args[i]);
    }
    pthread_t coordinator;
    pthread_create(&coordinator, NULL, coordinate, &co);

    event_base_dispatch(st->base); /* runs until end of stream */
    pthread_join(coordinator, NULL);

    uint64_t expected = (uint64_t)(THREADS + PROCESSES) * JOBS_PER_WORKER;
    printf("handoff: processed %" PRIu64 " of %" PRIu64 " jobs, %" PRIu64 " duplicates\n",
           st->processed, expected, st->duplicates);
    int ok = !co.failed && st->processed == expected && st->duplicates == 0;

    ferry_conn *admin = producer_conn;
    ferry_delete(admin, queue);
    ferry_close(producer_conn);
    ferry_close(consumer_conn);
    event_base_free(st->base);
    free(st);
    return ok ? 0 : 1;
}
