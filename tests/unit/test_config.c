/*
 * test_config.c - ferryd's conf file (daemon/config.c): defaults, every
 * section and key, the size and duration syntax, and every class of error
 * with its exact message, "FILE:LINE: key 'K': reason".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- helpers ------------------------------------------------------------------ */

#define ERRORS_MAX 16

struct errors {
    char lines[ERRORS_MAX][512];
    int count;
};

static void collect(void *arg, const char *line)
{
    struct errors *e = arg;
    if (e->count < ERRORS_MAX)
        snprintf(e->lines[e->count], sizeof e->lines[0], "%s", line);
    e->count++;
}

/* Loads `text` as file "t.conf" into a fresh *cfg; returns config_load's result. */
static int load(struct config *cfg, const char *text, struct errors *e)
{
    memset(e, 0, sizeof *e);
    config_init(cfg);
    return config_load_string(cfg, "t.conf", text, collect, e);
}

static void load_ok(struct config *cfg, const char *text)
{
    struct errors e;
    int rc = load(cfg, text, &e);
    ck_assert_msg(rc == 0 && e.count == 0, "refused (%d errors), first: %s", e.count,
                  e.count ? e.lines[0] : "");
}

/* The file gives exactly one error, `expected`. */
static void assert_one_error(const char *text, const char *expected)
{
    struct config cfg;
    struct errors e;
    ck_assert_int_eq(load(&cfg, text, &e), -1);
    ck_assert_msg(e.count == 1, "%d errors, first: %s", e.count, e.count ? e.lines[0] : "");
    ck_assert_str_eq(e.lines[0], expected);
    config_free(&cfg);
}

static uint64_t size_of(const char *text)
{
    uint64_t v = 0;
    char why[256];
    ck_assert_msg(config_parse_size(text, &v, why, sizeof why) == 0, "%s: %s", text, why);
    return v;
}

static void assert_bad_size(const char *text)
{
    uint64_t v;
    char why[256];
    ck_assert_msg(config_parse_size(text, &v, why, sizeof why) == -1, "'%s' accepted", text);
    ck_assert_ptr_nonnull(strstr(why, "bad size"));
}

static uint64_t ms_of(const char *text)
{
    uint64_t v = 0;
    char why[256];
    ck_assert_msg(config_parse_duration_ms(text, &v, why, sizeof why) == 0, "%s: %s", text, why);
    return v;
}

static void assert_bad_duration(const char *text)
{
    uint64_t v;
    char why[256];
    ck_assert_msg(config_parse_duration_ms(text, &v, why, sizeof why) == -1, "'%s' accepted",
                  text);
    ck_assert_ptr_nonnull(strstr(why, "bad duration"));
}

/* ---- defaults ------------------------------------------------------------------- */

START_TEST(test_defaults_are_the_documented_ones)
{
    struct config cfg;
    config_init(&cfg);
    ck_assert_uint_eq(cfg.listen_count, 0);
    ck_assert_uint_eq(cfg.max_connections, 10000);
    ck_assert_uint_eq(cfg.max_frame, 16u * 1024 * 1024);
    ck_assert_uint_eq(cfg.max_output, 64u * 1024 * 1024);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.heartbeat_ms, 30000);
    ck_assert_uint_eq(cfg.dedup_window_ms, 60000);
    ck_assert_uint_eq(cfg.dedup_entries, 100000);
    ck_assert_uint_eq(cfg.max_queues, 10000);
    ck_assert_uint_eq(cfg.max_consumers_per_queue, 10000);
    ck_assert_uint_eq(cfg.max_queued_memory, 1024u * 1024 * 1024);
    ck_assert_uint_eq(cfg.queue_defaults.max_length, 0);
    ck_assert_uint_eq(cfg.queue_defaults.max_bytes, 0);
    ck_assert_int_eq(cfg.queue_defaults.overflow, CONFIG_OVERFLOW_BLOCK);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
    ck_assert_str_eq(cfg.data_dir, "/var/lib/ferry");
    ck_assert_str_eq(cfg.pid_file, "");
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 5000);
    ck_assert_int_eq(cfg.fsync, CONFIG_FSYNC_ALWAYS);
    ck_assert_uint_eq(cfg.fsync_interval_ms, 100);
    ck_assert_uint_eq(cfg.segment_size, 64u * 1024 * 1024);
    ck_assert_uint_eq(cfg.max_bytes, 0);
    ck_assert(!cfg.queue_defaults.durable);
    ck_assert_int_eq(cfg.queue_defaults.fsync, CONFIG_FSYNC_UNSET);
    ck_assert(!config_any_durable(&cfg));
    ck_assert_uint_eq(cfg.queue_count, 0);
    config_free(&cfg);
}
END_TEST

START_TEST(test_an_empty_file_or_only_comments_keeps_the_defaults)
{
    struct config cfg;
    load_ok(&cfg, "");
    ck_assert_uint_eq(cfg.max_frame, 16u * 1024 * 1024);
    config_free(&cfg);
    load_ok(&cfg, "# a comment\n; another\n\n   \n[limits]\n# max_frame = 1MiB\n");
    ck_assert_uint_eq(cfg.max_frame, 16u * 1024 * 1024);
    config_free(&cfg);
}
END_TEST

START_TEST(test_the_default_listener_is_added_only_when_there_is_none)
{
    struct config cfg;
    config_init(&cfg);
    config_use_default_listen(&cfg);
    ck_assert_uint_eq(cfg.listen_count, 1);
    ck_assert(cfg.listen_is_default);
    ck_assert_str_eq(cfg.listen[0].addr.path, FERRY_DEFAULT_SOCKET);
    config_free(&cfg);

    load_ok(&cfg, "[listen \"a\"]\naddress = unix:/tmp/a.sock\n");
    config_use_default_listen(&cfg);
    ck_assert_uint_eq(cfg.listen_count, 1);
    ck_assert(!cfg.listen_is_default);
    ck_assert_str_eq(cfg.listen[0].addr.path, "/tmp/a.sock");
    config_free(&cfg);
}
END_TEST

/* ---- every section and key -------------------------------------------------------- */

START_TEST(test_every_key_of_every_section_is_read)
{
    struct config cfg;
    load_ok(&cfg,
            "[server]\n"
            "data_dir = /var/lib/ferry\n"
            "pid_file = /run/ferry/ferryd.pid\n"
            "shutdown_timeout = 30s\n"
            "[log]\n"
            "level = debug\n"
            "[limits]\n"
            "max_connections = 500\n"
            "max_frame = 1MiB\n"
            "max_output = 128MiB\n"
            "handshake_timeout = 2500ms\n"
            "max_queues = 42\n"
            "max_consumers_per_queue = 7\n"
            "[listen \"local\"]\n"
            "address = unix:/run/ferry/ferryd.sock\n"
            "mode = 0660\n"
            "owner = ferry\n"
            "group = 1000\n"
            "[listen \"lan\"]\n"
            "address = tcp://127.0.0.1:7070\n"
            "[queues]\n"
            "[queue \"jobs\"]\n"
            "[queue \"mail.out\"]\n");
    ck_assert_str_eq(cfg.data_dir, "/var/lib/ferry");
    ck_assert_str_eq(cfg.pid_file, "/run/ferry/ferryd.pid");
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 30000);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    ck_assert_uint_eq(cfg.max_connections, 500);
    ck_assert_uint_eq(cfg.max_frame, 1024 * 1024);
    ck_assert_uint_eq(cfg.max_output, 128u * 1024 * 1024);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 2500);
    ck_assert_uint_eq(cfg.max_queues, 42);
    ck_assert_uint_eq(cfg.max_consumers_per_queue, 7);

    ck_assert_uint_eq(cfg.listen_count, 2);
    ck_assert_str_eq(cfg.listen[0].name, "local");
    ck_assert_int_eq(cfg.listen[0].addr.kind, FERRY_ADDR_UNIX);
    ck_assert_str_eq(cfg.listen[0].addr.path, "/run/ferry/ferryd.sock");
    ck_assert(cfg.listen[0].has_mode);
    ck_assert_uint_eq(cfg.listen[0].mode, 0660);
    ck_assert_str_eq(cfg.listen[0].owner, "ferry");
    ck_assert_str_eq(cfg.listen[0].group, "1000");
    ck_assert_str_eq(cfg.listen[1].name, "lan");
    ck_assert_int_eq(cfg.listen[1].addr.kind, FERRY_ADDR_TCP);
    ck_assert_str_eq(cfg.listen[1].addr.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen[1].addr.port, 7070);
    ck_assert(!cfg.listen[1].has_mode);
    ck_assert(!cfg.listen_is_default);

    ck_assert_uint_eq(cfg.queue_count, 2);
    ck_assert_str_eq(cfg.queues[0].name, "jobs");
    ck_assert_int_eq(cfg.queues[0].line, 22);
    ck_assert_str_eq(cfg.queues[1].name, "mail.out");
    ck_assert_ptr_eq(config_queue_settings(&cfg, "jobs"), &cfg.queues[0].settings);
    ck_assert_ptr_eq(config_queue_settings(&cfg, "other"), &cfg.queue_defaults);
    config_free(&cfg);
}
END_TEST

START_TEST(test_every_log_level_is_accepted)
{
    const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof text, "[log]\nlevel = %s\n", names[i]);
        struct config cfg;
        load_ok(&cfg, text);
        ck_assert_int_eq(cfg.log_level, i);
        config_free(&cfg);
    }
}
END_TEST

START_TEST(test_indentation_inline_comments_crlf_and_a_bom_are_understood)
{
    struct config cfg;
    load_ok(&cfg, "\xEF\xBB\xBF[limits]\r\n"
                  "    max_frame = 64KiB ; a comment\r\n"
                  "\tmax_connections=12\r\n"
                  "  [log]\n"
                  "  level : warn\n");
    ck_assert_uint_eq(cfg.max_frame, 64 * 1024);
    ck_assert_uint_eq(cfg.max_connections, 12);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_WARN);
    config_free(&cfg);
}
END_TEST

START_TEST(test_a_file_on_disk_is_read_with_its_line_numbers)
{
    char path[] = "/tmp/ferry-test-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "[limits]\nmax_frame = 8KiB\n\nmax_output = 1\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);

    struct config cfg;
    struct errors e = { .count = 0 };
    config_init(&cfg);
    ck_assert_int_eq(config_load(&cfg, path, collect, &e), -1);
    ck_assert_int_eq(e.count, 1);
    char expected[256];
    snprintf(expected, sizeof expected,
             "%s:4: key 'max_output': '1' is out of range (64KiB..4GiB)", path);
    ck_assert_str_eq(e.lines[0], expected);
    ck_assert_uint_eq(cfg.max_frame, 8192);
    config_free(&cfg);
    unlink(path);
}
END_TEST

START_TEST(test_a_missing_file_is_an_error_that_names_it)
{
    struct config cfg;
    struct errors e = { .count = 0 };
    config_init(&cfg);
    ck_assert_int_eq(config_load(&cfg, "/nonexistent/ferryd.conf", collect, &e), -1);
    ck_assert_int_eq(e.count, 1);
    ck_assert_str_eq(e.lines[0], "/nonexistent/ferryd.conf: cannot open: No such file or directory");
    config_free(&cfg);
}
END_TEST

/* ---- units ---------------------------------------------------------------------------- */

START_TEST(test_sizes_take_binary_units)
{
    ck_assert_uint_eq(size_of("0"), 0);
    ck_assert_uint_eq(size_of("4096"), 4096);
    ck_assert_uint_eq(size_of("100B"), 100);
    ck_assert_uint_eq(size_of("64KiB"), 64 * 1024);
    ck_assert_uint_eq(size_of("512MiB"), 512ull * 1024 * 1024);
    ck_assert_uint_eq(size_of("3GiB"), 3ull * 1024 * 1024 * 1024);
    ck_assert_uint_eq(size_of("2TiB"), 2ull << 40);
}
END_TEST

START_TEST(test_sizes_refuse_other_spellings_signs_and_overflow)
{
    assert_bad_size("");
    assert_bad_size("KiB");
    assert_bad_size("16MB");
    assert_bad_size("16mib");
    assert_bad_size("16 MiB");
    assert_bad_size(" 16");
    assert_bad_size("-1");
    assert_bad_size("+1");
    assert_bad_size("1.5MiB");
    assert_bad_size("0x10");
    assert_bad_size("18446744073709551616");  /* 2^64 */
    assert_bad_size("16777216TiB");           /* 2^64 bytes */
}
END_TEST

START_TEST(test_durations_need_a_unit)
{
    ck_assert_uint_eq(ms_of("250ms"), 250);
    ck_assert_uint_eq(ms_of("30s"), 30000);
    ck_assert_uint_eq(ms_of("0s"), 0);
    ck_assert_uint_eq(ms_of("2min"), 120000);
    ck_assert_uint_eq(ms_of("1h"), 3600000);
    assert_bad_duration("30");
    assert_bad_duration("30sec");
    assert_bad_duration("1.5s");
    assert_bad_duration("s");
    assert_bad_duration("5m");
    assert_bad_duration("-1s");
    assert_bad_duration("18446744073709551615h");
}
END_TEST

START_TEST(test_a_bad_size_error_says_what_is_expected)
{
    assert_one_error("[limits]\nmax_frame = 16MB\n",
                     "t.conf:2: key 'max_frame': bad size '16MB': expected bytes or a number "
                     "with B, KiB, MiB, GiB or TiB, as in 64KiB");
}
END_TEST

START_TEST(test_a_bad_duration_error_says_what_is_expected)
{
    assert_one_error("[server]\nshutdown_timeout = 30\n",
                     "t.conf:2: key 'shutdown_timeout': bad duration '30': expected a number "
                     "with ms, s, min or h, as in 30s");
}
END_TEST

/* ---- every class of error --------------------------------------------------------------- */

START_TEST(test_an_unknown_section_is_an_error)
{
    assert_one_error("[limits]\nmax_frame = 8KiB\n[bogus]\nx = 1\n",
                     "t.conf:3: section [bogus]: unknown section");
}
END_TEST

START_TEST(test_an_empty_unknown_section_is_an_error_too)
{
    assert_one_error("[bogus]\n", "t.conf:1: section [bogus]: unknown section");
}
END_TEST

START_TEST(test_an_unknown_key_is_an_error)
{
    assert_one_error("[limits]\nmax_frames = 8KiB\n",
                     "t.conf:2: key 'max_frames': unknown key in [limits]");
}
END_TEST

START_TEST(test_a_key_outside_any_section_is_an_error)
{
    assert_one_error("level = debug\n", "t.conf:1: key 'level': outside any section");
}
END_TEST

START_TEST(test_a_duplicate_key_is_an_error)
{
    assert_one_error("[limits]\nmax_frame = 8KiB\n\nmax_frame = 16KiB\n",
                     "t.conf:4: key 'max_frame': duplicate key (first at line 2)");
}
END_TEST

START_TEST(test_a_duplicate_section_is_an_error)
{
    assert_one_error("[limits]\nmax_frame = 8KiB\n[log]\n[limits]\nmax_output = 1MiB\n",
                     "t.conf:4: section [limits]: duplicate section (first at line 1)");
}
END_TEST

START_TEST(test_heartbeat_timeout_and_dedup_window_take_a_duration_or_0_for_off)
{
    struct config cfg;
    load_ok(&cfg, "[limits]\nheartbeat_timeout = 5s\n");
    ck_assert_uint_eq(cfg.heartbeat_ms, 5000);
    config_free(&cfg);
    load_ok(&cfg, "[limits]\nheartbeat_timeout = 0s\n");
    ck_assert_uint_eq(cfg.heartbeat_ms, 0);
    config_free(&cfg);
    load_ok(&cfg, "[limits]\ndedup_window = 0s\ndedup_entries = 5\n");
    ck_assert_uint_eq(cfg.dedup_window_ms, 0);
    ck_assert_uint_eq(cfg.dedup_entries, 5);
    config_free(&cfg);
}
END_TEST

START_TEST(test_a_value_out_of_range_is_an_error_with_the_range)
{
    assert_one_error("[limits]\nmax_frame = 1KiB\n",
                     "t.conf:2: key 'max_frame': '1KiB' is out of range (4KiB..256MiB)");
    assert_one_error("[limits]\nmax_connections = 0\n",
                     "t.conf:2: key 'max_connections': '0' is out of range (1..1000000)");
    assert_one_error("[limits]\nhandshake_timeout = 50ms\n",
                     "t.conf:2: key 'handshake_timeout': '50ms' is out of range (100ms..1h)");
    assert_one_error("[limits]\nheartbeat_timeout = 50ms\n",
                     "t.conf:2: key 'heartbeat_timeout': '50ms' is out of range (0 or 100ms..1h)");
    assert_one_error("[server]\nshutdown_timeout = 2h\n",
                     "t.conf:2: key 'shutdown_timeout': '2h' is out of range (0ms..1h)");
}
END_TEST

START_TEST(test_a_bad_number_or_level_or_path_is_an_error)
{
    assert_one_error("[limits]\nmax_queues = ten\n", "t.conf:2: key 'max_queues': bad number 'ten'");
    assert_one_error("[log]\nlevel = loud\n",
                     "t.conf:2: key 'level': bad level 'loud': expected error, warn, info or debug");
    assert_one_error("[server]\npid_file = ferryd.pid\n",
                     "t.conf:2: key 'pid_file': bad path 'ferryd.pid': expected an absolute path");
    assert_one_error("[server]\ndata_dir = data\n",
                     "t.conf:2: key 'data_dir': bad path 'data': expected an absolute path");
}
END_TEST

START_TEST(test_a_line_that_is_not_a_key_value_pair_is_an_error)
{
    assert_one_error("[limits]\nmax_frame 8KiB\n",
                     "t.conf:2: expected 'key = value' or a [section] header");
}
END_TEST

START_TEST(test_a_bad_section_header_is_an_error)
{
    assert_one_error("[limits\n", "t.conf:1: bad section header: expected [name] or [name \"label\"]");
    assert_one_error("[limits] junk\n",
                     "t.conf:1: bad section header: expected [name] or [name \"label\"]");
    assert_one_error("[queue jobs]\n",
                     "t.conf:1: bad section header: expected [name] or [name \"label\"]");
}
END_TEST

START_TEST(test_keys_of_a_refused_section_give_no_further_errors)
{
    assert_one_error("[bogus]\na = 1\nb = 2\n", "t.conf:1: section [bogus]: unknown section");
}
END_TEST

START_TEST(test_a_line_too_long_is_an_error)
{
    char text[600];
    snprintf(text, sizeof text, "[server]\ndata_dir = /%0400d\n[log]\nlevel = debug\n", 0);
    struct config cfg;
    struct errors e;
    ck_assert_int_eq(load(&cfg, text, &e), -1);
    ck_assert_int_eq(e.count, 1);
    ck_assert_msg(strncmp(e.lines[0], "t.conf:2: line too long (at most ", 33) == 0, "%s",
                  e.lines[0]);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG); /* the lines after it are read */
    config_free(&cfg);
}
END_TEST

START_TEST(test_every_error_is_reported_not_only_the_first)
{
    struct config cfg;
    struct errors e;
    ck_assert_int_eq(load(&cfg,
                          "[limits]\n"
                          "max_frame = 1\n"
                          "nonsense\n"
                          "max_output = big\n"
                          "[nope]\n"
                          "[log]\n"
                          "level = debug\n"
                          "level = info\n",
                          &e), -1);
    ck_assert_int_eq(e.count, 5);
    ck_assert_str_eq(e.lines[0], "t.conf:2: key 'max_frame': '1' is out of range (4KiB..256MiB)");
    ck_assert_str_eq(e.lines[1], "t.conf:3: expected 'key = value' or a [section] header");
    ck_assert_str_eq(e.lines[2], "t.conf:4: key 'max_output': bad size 'big': expected bytes or "
                                 "a number with B, KiB, MiB, GiB or TiB, as in 64KiB");
    ck_assert_str_eq(e.lines[3], "t.conf:5: section [nope]: unknown section");
    ck_assert_str_eq(e.lines[4], "t.conf:8: key 'level': duplicate key (first at line 7)");
    config_free(&cfg);
}
END_TEST

/* ---- listeners ------------------------------------------------------------------------------ */

START_TEST(test_a_listener_without_address_is_an_error)
{
    assert_one_error("[listen \"a\"]\nmode = 0600\n[log]\n",
                     "t.conf:1: section [listen \"a\"]: key 'address' is missing");
    assert_one_error("[listen \"a\"]\n", "t.conf:1: section [listen \"a\"]: key 'address' is missing");
}
END_TEST

START_TEST(test_mode_owner_and_group_are_for_unix_sockets_only)
{
    assert_one_error("[listen \"a\"]\nmode = 0600\naddress = tcp://127.0.0.1:7070\n",
                     "t.conf:2: key 'mode': only for unix: addresses");
    assert_one_error("[listen \"a\"]\naddress = tcp://127.0.0.1:7070\ngroup = ferry\n",
                     "t.conf:3: key 'group': only for unix: addresses");
}
END_TEST

START_TEST(test_bad_listener_values_are_errors)
{
    assert_one_error("[listen \"a\"]\naddress = http://x\n",
                     "t.conf:2: key 'address': bad address 'http://x': unknown scheme "
                     "(expected unix: or tcp://)");
    assert_one_error("[listen \"a\"]\naddress = unix:/a\nmode = 0666x\n",
                     "t.conf:3: key 'mode': bad mode '0666x': expected octal permissions "
                     "0000..0777, as in 0660");
    assert_one_error("[listen \"a\"]\naddress = unix:/a\nmode = 4755\n",
                     "t.conf:3: key 'mode': bad mode '4755': expected octal permissions "
                     "0000..0777, as in 0660");
    assert_one_error("[listen \"a\"]\naddress = unix:/a\nowner = bad name\n",
                     "t.conf:3: key 'owner': bad name 'bad name': expected a user or group "
                     "name (at most 32 characters) or a numeric id");
}
END_TEST

START_TEST(test_two_listeners_on_one_address_are_an_error)
{
    assert_one_error("[listen \"a\"]\naddress = unix:/a\n[listen \"b\"]\naddress = unix:/a\n",
                     "t.conf:4: key 'address': same address as [listen \"a\"]");
}
END_TEST

START_TEST(test_listener_names_are_unique_and_plain)
{
    assert_one_error("[listen \"a\"]\naddress = unix:/a\n[listen \"a\"]\naddress = unix:/b\n",
                     "t.conf:3: section [listen \"a\"]: duplicate section");
    assert_one_error("[listen \"a b\"]\naddress = unix:/a\n",
                     "t.conf:1: section [listen \"a b\"]: bad name: expected letters, digits, "
                     "'_', '-' or '.', at most 63");
    assert_one_error("[listen]\naddress = unix:/a\n",
                     "t.conf:1: section [listen]: needs a name, as in [listen \"NAME\"]");
}
END_TEST

START_TEST(test_more_than_the_maximum_of_listeners_is_an_error)
{
    char text[4096] = "";
    size_t len = 0;
    for (int i = 0; i <= CONFIG_LISTEN_MAX; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "[listen \"l%d\"]\naddress = unix:/tmp/l%d.sock\n", i, i);
    char expected[128];
    snprintf(expected, sizeof expected,
             "t.conf:%d: section [listen \"l%d\"]: too many listeners (at most %d)",
             2 * CONFIG_LISTEN_MAX + 1, CONFIG_LISTEN_MAX, CONFIG_LISTEN_MAX);
    assert_one_error(text, expected);
}
END_TEST

/* ---- queue sections ------------------------------------------------------------------------- */

START_TEST(test_queue_sections_take_only_their_keys)
{
    assert_one_error("[queue \"jobs\"]\nmax_queues = 10\n",
                     "t.conf:2: key 'max_queues': unknown key in [queue]");
    assert_one_error("[queues]\nsegment_size = 4KiB\n",
                     "t.conf:2: key 'segment_size': unknown key in [queues]");
}
END_TEST

START_TEST(test_durable_and_fsync_are_read_per_queue_over_the_defaults)
{
    struct config cfg;
    load_ok(&cfg, "[storage]\n"
                  "fsync = interval\n"
                  "[queues]\n"
                  "durable = yes\n"
                  "[queue \"fast\"]\n"
                  "fsync = never\n"
                  "[queue \"scratch\"]\n"
                  "durable = no\n"
                  "[queue \"money\"]\n"
                  "fsync = always\n");
    ck_assert_int_eq(cfg.durable_line, 4);
    ck_assert(config_queue_settings(&cfg, "fast")->durable); /* from [queues] */
    ck_assert_int_eq(config_queue_fsync(&cfg, config_queue_settings(&cfg, "fast")),
                     CONFIG_FSYNC_NEVER);
    ck_assert(!config_queue_settings(&cfg, "scratch")->durable);
    ck_assert_int_eq(config_queue_fsync(&cfg, config_queue_settings(&cfg, "other")),
                     CONFIG_FSYNC_INTERVAL); /* [storage] fsync */
    ck_assert(config_any_durable(&cfg));
    ck_assert_int_eq(config_strongest_fsync(&cfg), CONFIG_FSYNC_ALWAYS);
    config_free(&cfg);

    load_ok(&cfg, "[queue \"only\"]\ndurable = true\nfsync = never\n");
    ck_assert(!config_queue_settings(&cfg, "other")->durable);
    ck_assert_int_eq(config_strongest_fsync(&cfg), CONFIG_FSYNC_NEVER);
    config_free(&cfg);
}
END_TEST

START_TEST(test_priority_is_read_per_queue_over_the_defaults_and_checked)
{
    struct config cfg;
    load_ok(&cfg, "[queues]\n"
                  "priority = 2\n"
                  "[queue \"alerts\"]\n"
                  "priority = 9\n"
                  "[queue \"plain\"]\n"
                  "durable = no\n");
    ck_assert_uint_eq(config_queue_settings(&cfg, "alerts")->priority, 9);
    ck_assert_uint_eq(config_queue_settings(&cfg, "plain")->priority, 2); /* from [queues] */
    ck_assert_uint_eq(config_queue_settings(&cfg, "other")->priority, 2);
    config_free(&cfg);
    load_ok(&cfg, "[queue \"q\"]\ndurable = no\n");
    ck_assert_uint_eq(config_queue_settings(&cfg, "q")->priority, 0);
    config_free(&cfg);
    assert_one_error("[queue \"q\"]\npriority = 10\n",
                     "t.conf:2: key 'priority': '10' is out of range (0..9)");
    assert_one_error("[queues]\npriority = high\n",
                     "t.conf:2: key 'priority': bad number 'high'");
}
END_TEST

START_TEST(test_ttl_is_read_per_queue_over_the_defaults_and_checked)
{
    struct config cfg;
    load_ok(&cfg, "[queues]\n"
                  "ttl = 1h\n"
                  "[queue \"brief\"]\n"
                  "ttl = 250ms\n"
                  "[queue \"forever\"]\n"
                  "ttl = 0s\n");
    ck_assert_uint_eq(config_queue_settings(&cfg, "brief")->ttl_ms, 250);
    ck_assert_uint_eq(config_queue_settings(&cfg, "forever")->ttl_ms, 0);
    ck_assert_uint_eq(config_queue_settings(&cfg, "other")->ttl_ms, 3600 * 1000);
    config_free(&cfg);
    assert_one_error("[queue \"q\"]\nttl = soon\n",
                     "t.conf:2: key 'ttl': bad duration 'soon': expected a number with ms, s, "
                     "min or h, as in 30s");
}
END_TEST

START_TEST(test_bounds_and_overflow_are_read_per_queue_over_the_defaults_and_checked)
{
    struct config cfg;
    load_ok(&cfg, "[limits]\n"
                  "max_queued_memory = 256MiB\n"
                  "[queues]\n"
                  "max_length = 1000\n"
                  "overflow = drop-oldest\n"
                  "[queue \"jobs\"]\n"
                  "max_bytes = 1MiB\n"
                  "overflow = reject\n"
                  "[queue \"free\"]\n"
                  "max_length = 0\n"
                  "overflow = block\n");
    ck_assert_uint_eq(cfg.max_queued_memory, 256u * 1024 * 1024);
    const struct config_queue_settings *jobs = config_queue_settings(&cfg, "jobs");
    ck_assert_uint_eq(jobs->max_length, 1000); /* from [queues] */
    ck_assert_uint_eq(jobs->max_bytes, 1024u * 1024);
    ck_assert_int_eq(jobs->overflow, CONFIG_OVERFLOW_REJECT);
    ck_assert_uint_eq(config_queue_settings(&cfg, "free")->max_length, 0);
    ck_assert_int_eq(config_queue_settings(&cfg, "free")->overflow, CONFIG_OVERFLOW_BLOCK);
    ck_assert_int_eq(config_queue_settings(&cfg, "other")->overflow, CONFIG_OVERFLOW_DROP_OLDEST);
    config_free(&cfg);
    load_ok(&cfg, "[limits]\nmax_queued_memory = 0\n");
    ck_assert_uint_eq(cfg.max_queued_memory, 0); /* no limit */
    config_free(&cfg);
    assert_one_error("[queues]\noverflow = drop\n",
                     "t.conf:2: key 'overflow': bad policy 'drop': expected block, reject or "
                     "drop-oldest");
    assert_one_error("[queue \"q\"]\nmax_length = -1\n",
                     "t.conf:2: key 'max_length': bad number '-1'");
    assert_one_error("[limits]\nmax_queued_memory = 1KiB\n",
                     "t.conf:2: key 'max_queued_memory': '1KiB' is out of range (0 or 64KiB..1024TiB)");
}
END_TEST

START_TEST(test_retry_settings_are_read_per_queue_and_checked)
{
    struct config cfg;
    load_ok(&cfg, "[queues]\n"
                  "ack_deadline = 30s\n"
                  "[queue \"jobs\"]\n"
                  "retry_backoff = 250ms\n"
                  "retry_backoff_max = 10s\n"
                  "max_attempts = 5\n"
                  "dead_letter_queue = jobs.dead\n");
    const struct config_queue_settings *q = config_queue_settings(&cfg, "jobs");
    ck_assert_uint_eq(q->ack_deadline_ms, 30000);
    ck_assert_uint_eq(q->retry_backoff_ms, 250);
    ck_assert_uint_eq(q->retry_backoff_max_ms, 10000);
    ck_assert_uint_eq(q->max_attempts, 5);
    ck_assert_str_eq(q->dead_letter_queue, "jobs.dead");
    q = config_queue_settings(&cfg, "other");
    ck_assert_uint_eq(q->ack_deadline_ms, 30000);
    ck_assert_uint_eq(q->retry_backoff_ms, 0);
    ck_assert_uint_eq(q->retry_backoff_max_ms, CONFIG_RETRY_BACKOFF_MAX_MS_DEFAULT);
    ck_assert_uint_eq(q->max_attempts, 0);
    ck_assert_str_eq(q->dead_letter_queue, "");
    config_free(&cfg);
    assert_one_error("[queues]\ndead_letter_queue = bad/name\n",
                     "t.conf:2: key 'dead_letter_queue': bad queue name 'bad/name': 1..255 bytes "
                     "of A-Z a-z 0-9 . _ - :");
    assert_one_error("[queue \"jobs\"]\ndead_letter_queue = tmp.dead\n",
                     "t.conf:2: key 'dead_letter_queue': queue name 'tmp.dead': names beginning "
                     "with tmp. are for temporary queues");
    assert_one_error("[queues]\nmax_attempts = 2000000\n",
                     "t.conf:2: key 'max_attempts': '2000000' is out of range (0 or 1..1000000)");
    assert_one_error("[queues]\nack_deadline = 25h\n",
                     "t.conf:2: key 'ack_deadline': '25h' is out of range (0 or 1ms..24h)");
}
END_TEST

START_TEST(test_bad_durable_or_fsync_values_are_errors)
{
    assert_one_error("[queues]\ndurable = maybe\n",
                     "t.conf:2: key 'durable': bad value 'maybe': expected yes or no");
    assert_one_error("[queue \"q\"]\nfsync = sometimes\n",
                     "t.conf:2: key 'fsync': bad policy 'sometimes': expected always, interval "
                     "or never");
    assert_one_error("[storage]\nfsync = 1\n",
                     "t.conf:2: key 'fsync': bad policy '1': expected always, interval or never");
}
END_TEST

START_TEST(test_storage_keys_are_read_and_checked)
{
    struct config cfg;
    load_ok(&cfg, "[storage]\n"
                  "fsync = never\n"
                  "fsync_interval = 250ms\n"
                  "segment_size = 1MiB\n"
                  "max_bytes = 2GiB\n");
    ck_assert_int_eq(cfg.fsync, CONFIG_FSYNC_NEVER);
    ck_assert_uint_eq(cfg.fsync_interval_ms, 250);
    ck_assert_uint_eq(cfg.segment_size, 1024 * 1024);
    ck_assert_uint_eq(cfg.max_bytes, 2ull * 1024 * 1024 * 1024);
    config_free(&cfg);
    assert_one_error("[storage]\nsegment_size = 1KiB\n",
                     "t.conf:2: key 'segment_size': '1KiB' is out of range (4KiB..1GiB)");
    assert_one_error("[storage]\nfsync_interval = 2min\n",
                     "t.conf:2: key 'fsync_interval': '2min' is out of range (1ms..1min)");
    assert_one_error("[storage]\nsegment_size = 1MiB\nmax_bytes = 1MiB\n",
                     "t.conf:3: key 'max_bytes': 1MiB is below twice segment_size (1MiB); "
                     "0 means no limit");
}
END_TEST

START_TEST(test_durable_queues_without_a_data_dir_are_refused)
{
    struct config cfg;
    struct errors e = { 0 };
    load_ok(&cfg, "[server]\ndata_dir =\n[queue \"jobs\"]\n\ndurable = yes\n");
    ck_assert_str_eq(cfg.data_dir, "");
    ck_assert_int_eq(config_check(&cfg, "t.conf", collect, &e), -1);
    ck_assert_int_eq(e.count, 1);
    ck_assert_str_eq(e.lines[0], "t.conf:5: key 'durable': durable queues need a data "
                                 "directory, and data_dir is empty (set it in [server], or "
                                 "--data-dir)");
    /* The command line may give it. */
    char why[128];
    ck_assert_int_eq(config_set(&cfg, "server", "data_dir", "/srv/ferry", why, sizeof why), 0);
    ck_assert_int_eq(config_check(&cfg, "t.conf", collect, &e), 0);
    config_free(&cfg);
    /* Without durable queues, no data_dir is needed. */
    load_ok(&cfg, "[server]\ndata_dir =\n");
    ck_assert_int_eq(config_check(&cfg, "t.conf", collect, &e), 0);
    config_free(&cfg);
}
END_TEST

START_TEST(test_bind_lists_patterns_and_may_come_again)
{
    struct config cfg;
    load_ok(&cfg, "[queue \"audit\"]\nbind = orders.# invoices.*\nbind = #.created, a\n"
                  "[queue \"plain\"]\ndurable = no\n");
    ck_assert_uint_eq(cfg.queue_count, 2);
    ck_assert_uint_eq(cfg.queues[0].bind_count, 4);
    ck_assert_str_eq(cfg.queues[0].binds, "orders.# invoices.* #.created a");
    ck_assert_ptr_null(cfg.queues[1].binds);
    config_free(&cfg);
}
END_TEST

START_TEST(test_a_bad_bind_is_refused_with_its_line)
{
    assert_one_error("[queue \"q\"]\nbind = a..b\n",
                     "t.conf:2: key 'bind': bad pattern 'a..b': expected words of A-Z a-z 0-9 _ - : "
                     "separated by '.', a word may be * or #; at most 255 bytes, 32 words");
    assert_one_error("[queue \"q\"]\nbind = ok x*\n",
                     "t.conf:2: key 'bind': bad pattern 'x*': expected words of A-Z a-z 0-9 _ - : "
                     "separated by '.', a word may be * or #; at most 255 bytes, 32 words");
    assert_one_error("[queue \"q\"]\nbind = ,\n",
                     "t.conf:2: key 'bind': expected one or more patterns");
    assert_one_error("[queues]\nbind = a\n", "t.conf:2: key 'bind': only in a [queue \"NAME\"] section");
    assert_one_error("[queue \"tmp.1\"]\nbind = a\n",
                     "t.conf:2: key 'bind': queue 'tmp.1' is a temporary queue's name (tmp.): its "
                     "connection binds it");
}
END_TEST

START_TEST(test_a_queue_section_needs_a_valid_unique_name)
{
    assert_one_error("[queue \"no spaces\"]\n",
                     "t.conf:1: section [queue \"no spaces\"]: bad queue name: expected 1..255 "
                     "letters, digits, '.', '_', '-' or ':'");
    assert_one_error("[queue \"\"]\n",
                     "t.conf:1: section [queue \"\"]: bad queue name: expected 1..255 "
                     "letters, digits, '.', '_', '-' or ':'");
    assert_one_error("[queue \"jobs\"]\n[queue \"jobs\"]\n",
                     "t.conf:2: section [queue \"jobs\"]: duplicate section (first at line 1)");
    assert_one_error("[queue]\n", "t.conf:1: section [queue]: needs a name, as in [queue \"NAME\"]");
    assert_one_error("[limits \"x\"]\n", "t.conf:1: section [limits]: takes no name");
}
END_TEST

START_TEST(test_queue_defaults_come_before_the_queue_sections)
{
    assert_one_error("[queue \"jobs\"]\n[queues]\n",
                     "t.conf:2: section [queues]: must come before the [queue \"NAME\"] sections");
}
END_TEST

/* ---- the command line's way in ---------------------------------------------------------------- */

START_TEST(test_config_set_takes_the_same_values_as_the_file)
{
    struct config cfg;
    config_init(&cfg);
    char why[256];
    ck_assert_int_eq(config_set(&cfg, "limits", "max_frame", "32KiB", why, sizeof why), 0);
    ck_assert_uint_eq(cfg.max_frame, 32 * 1024);
    ck_assert_int_eq(config_set(&cfg, "log", "level", "warn", why, sizeof why), 0);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_WARN);
    ck_assert_int_eq(config_set(&cfg, "server", "pid_file", "/run/f.pid", why, sizeof why), 0);
    ck_assert_str_eq(cfg.pid_file, "/run/f.pid");
    ck_assert_int_eq(config_set(&cfg, "limits", "max_frame", "1GiB", why, sizeof why), -1);
    ck_assert_str_eq(why, "'1GiB' is out of range (4KiB..256MiB)");
    ck_assert_uint_eq(cfg.max_frame, 32 * 1024);
    config_free(&cfg);
}
END_TEST

START_TEST(test_config_add_listen_url_checks_the_url_and_the_count)
{
    struct config cfg;
    config_init(&cfg);
    char why[256];
    ck_assert_int_eq(config_add_listen_url(&cfg, "tcp://[::1]:7000", why, sizeof why), 0);
    ck_assert_str_eq(cfg.listen[0].addr.host, "::1");
    ck_assert_int_eq(config_add_listen_url(&cfg, "udp://x", why, sizeof why), -1);
    ck_assert_ptr_nonnull(strstr(why, "bad address 'udp://x'"));
    for (int i = 1; i < CONFIG_LISTEN_MAX; i++)
        ck_assert_int_eq(config_add_listen_url(&cfg, "unix:/tmp/x", why, sizeof why), 0);
    ck_assert_int_eq(config_add_listen_url(&cfg, "unix:/tmp/x", why, sizeof why), -1);
    ck_assert_uint_eq(cfg.listen_count, CONFIG_LISTEN_MAX);
    config_free(&cfg);
}
END_TEST

START_TEST(test_config_move_hands_over_the_queue_sections)
{
    struct config a, b;
    load_ok(&a, "[queue \"one\"]\n[queue \"two\"]\n");
    config_init(&b);
    config_move(&b, &a);
    ck_assert_uint_eq(b.queue_count, 2);
    ck_assert_str_eq(b.queues[1].name, "two");
    ck_assert_uint_eq(a.queue_count, 0);
    ck_assert_ptr_null(a.queues);
    config_free(&a);
    config_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *basics = tcase_create("basics");
    tcase_add_test(basics, test_defaults_are_the_documented_ones);
    tcase_add_test(basics, test_an_empty_file_or_only_comments_keeps_the_defaults);
    tcase_add_test(basics, test_the_default_listener_is_added_only_when_there_is_none);
    tcase_add_test(basics, test_every_key_of_every_section_is_read);
    tcase_add_test(basics, test_every_log_level_is_accepted);
    tcase_add_test(basics, test_indentation_inline_comments_crlf_and_a_bom_are_understood);
    tcase_add_test(basics, test_a_file_on_disk_is_read_with_its_line_numbers);
    tcase_add_test(basics, test_a_missing_file_is_an_error_that_names_it);
    suite_add_tcase(s, basics);

    TCase *units = tcase_create("units");
    tcase_add_test(units, test_sizes_take_binary_units);
    tcase_add_test(units, test_sizes_refuse_other_spellings_signs_and_overflow);
    tcase_add_test(units, test_durations_need_a_unit);
    tcase_add_test(units, test_a_bad_size_error_says_what_is_expected);
    tcase_add_test(units, test_a_bad_duration_error_says_what_is_expected);
    suite_add_tcase(s, units);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_an_unknown_section_is_an_error);
    tcase_add_test(errors, test_an_empty_unknown_section_is_an_error_too);
    tcase_add_test(errors, test_an_unknown_key_is_an_error);
    tcase_add_test(errors, test_a_key_outside_any_section_is_an_error);
    tcase_add_test(errors, test_a_duplicate_key_is_an_error);
    tcase_add_test(errors, test_a_duplicate_section_is_an_error);
    tcase_add_test(errors, test_heartbeat_timeout_and_dedup_window_take_a_duration_or_0_for_off);
    tcase_add_test(errors, test_a_value_out_of_range_is_an_error_with_the_range);
    tcase_add_test(errors, test_a_bad_number_or_level_or_path_is_an_error);
    tcase_add_test(errors, test_a_line_that_is_not_a_key_value_pair_is_an_error);
    tcase_add_test(errors, test_a_bad_section_header_is_an_error);
    tcase_add_test(errors, test_keys_of_a_refused_section_give_no_further_errors);
    tcase_add_test(errors, test_a_line_too_long_is_an_error);
    tcase_add_test(errors, test_every_error_is_reported_not_only_the_first);
    suite_add_tcase(s, errors);

    TCase *listen = tcase_create("listen");
    tcase_add_test(listen, test_a_listener_without_address_is_an_error);
    tcase_add_test(listen, test_mode_owner_and_group_are_for_unix_sockets_only);
    tcase_add_test(listen, test_bad_listener_values_are_errors);
    tcase_add_test(listen, test_two_listeners_on_one_address_are_an_error);
    tcase_add_test(listen, test_listener_names_are_unique_and_plain);
    tcase_add_test(listen, test_more_than_the_maximum_of_listeners_is_an_error);
    suite_add_tcase(s, listen);

    TCase *queues = tcase_create("queues");
    tcase_add_test(queues, test_queue_sections_take_only_their_keys);
    tcase_add_test(queues, test_durable_and_fsync_are_read_per_queue_over_the_defaults);
    tcase_add_test(queues, test_priority_is_read_per_queue_over_the_defaults_and_checked);
    tcase_add_test(queues, test_ttl_is_read_per_queue_over_the_defaults_and_checked);
    tcase_add_test(queues, test_bounds_and_overflow_are_read_per_queue_over_the_defaults_and_checked);
    tcase_add_test(queues, test_retry_settings_are_read_per_queue_and_checked);
    tcase_add_test(queues, test_bad_durable_or_fsync_values_are_errors);
    tcase_add_test(queues, test_storage_keys_are_read_and_checked);
    tcase_add_test(queues, test_durable_queues_without_a_data_dir_are_refused);
    tcase_add_test(queues, test_a_queue_section_needs_a_valid_unique_name);
    tcase_add_test(queues, test_bind_lists_patterns_and_may_come_again);
    tcase_add_test(queues, test_a_bad_bind_is_refused_with_its_line);
    tcase_add_test(queues, test_queue_defaults_come_before_the_queue_sections);
    suite_add_tcase(s, queues);

    TCase *cli = tcase_create("command line");
    tcase_add_test(cli, test_config_set_takes_the_same_values_as_the_file);
    tcase_add_test(cli, test_config_add_listen_url_checks_the_url_and_the_count);
    tcase_add_test(cli, test_config_move_hands_over_the_queue_sections);
    suite_add_tcase(s, cli);

    SRunner *sr = srunner_create(s);
    /* One process for all tests unless CK_FORK says otherwise (see test_addr.c). */
    if (!getenv("CK_FORK"))
        srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
