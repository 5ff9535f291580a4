/*
 * fuzz_config.c - libFuzzer target for ferryd's conf file parser
 * (daemon/config.c): the input is the text of a conf file, read with
 * config_load_string() on top of the defaults. Whether it is accepted or
 * not, every error line must be a bounded string and the result must be
 * freeable; the first line is also given to the size and duration parsers
 * that the command line shares.
 *
 * Knows config.h only; the file system is not touched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Conf files are small; more is cut. */
#define INPUT_MAX (256u * 1024u)
/* An error line longer than this is a finding (it must be one line). */
#define ERROR_LINE_MAX 8192u

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_LEVEL_ERROR);
    return 0;
}

static void on_error(void *arg, const char *line)
{
    size_t *count = arg;
    size_t len = strnlen(line, ERROR_LINE_MAX + 1);
    if (len > ERROR_LINE_MAX || memchr(line, '\n', len) != NULL)
        abort();
    (*count)++;
}

/* The first line, NUL-terminated, in buf. */
static void first_line(const char *text, char *buf, size_t cap)
{
    size_t n = strcspn(text, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, text, n);
    buf[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    char *text = malloc(size + 1); /* owned here: the parser wants a C string */
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct config cfg;
    config_init(&cfg);
    size_t errors = 0;
    int rc = config_load_string(&cfg, "fuzz.conf", text, on_error, &errors);
    if ((rc == 0) != (errors == 0))
        abort(); /* refused without a reason, or accepted with errors */
    if (rc == 0) {
        /* A valid file's queue settings can be looked up by any name. */
        for (size_t i = 0; i < cfg.queue_count; i++)
            (void)config_queue_settings(&cfg, cfg.queues[i].name);
        (void)config_queue_settings(&cfg, "absent");
    }
    config_free(&cfg);

    char line[256], why[256];
    uint64_t value;
    first_line(text, line, sizeof line);
    (void)config_parse_size(line, &value, why, sizeof why);
    (void)config_parse_duration_ms(line, &value, why, sizeof why);
    free(text);
    return 0;
}
