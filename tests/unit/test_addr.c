/*
 * test_addr.c - ferry_addr_parse: the URL forms ferryd and libferry accept
 * ("unix:...", "tcp://...") and every way a URL is refused, with a reason.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_proto.h"

static struct ferry_addr parse_ok(const char *url)
{
    struct ferry_addr a;
    const char *why = NULL;
    int rc = ferry_addr_parse(url, &a, &why);
    ck_assert_msg(rc == 0, "%s refused: %s", url, why ? why : "(no reason)");
    return a;
}

/* Refused, with a reason that contains `reason_part`. */
static void assert_refused(const char *url, const char *reason_part)
{
    struct ferry_addr a;
    const char *why = NULL;
    ck_assert_msg(ferry_addr_parse(url, &a, &why) == -1, "%s accepted", url);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, reason_part) != NULL, "%s: reason '%s' lacks '%s'", url, why, reason_part);
}

/* "unix:" followed by n path bytes, on the heap. */
static char *unix_url_of_length(size_t n)
{
    char *url = malloc(5 + n + 1);
    ck_assert_ptr_nonnull(url);
    memcpy(url, "unix:", 5);
    url[5] = '/';
    memset(url + 6, 'p', n - 1);
    url[5 + n] = '\0';
    return url;
}

START_TEST(test_unix_absolute_path_is_taken_as_is)
{
    struct ferry_addr a = parse_ok("unix:/run/ferry/ferryd.sock");
    ck_assert_int_eq(a.kind, FERRY_ADDR_UNIX);
    ck_assert_str_eq(a.path, "/run/ferry/ferryd.sock");
}
END_TEST

START_TEST(test_unix_relative_path_stays_relative)
{
    struct ferry_addr a = parse_ok("unix:sock/ferryd.sock");
    ck_assert_int_eq(a.kind, FERRY_ADDR_UNIX);
    ck_assert_str_eq(a.path, "sock/ferryd.sock");
}
END_TEST

START_TEST(test_unix_url_with_three_slashes_is_an_absolute_path)
{
    struct ferry_addr a = parse_ok("unix:///tmp/f.sock");
    ck_assert_int_eq(a.kind, FERRY_ADDR_UNIX);
    ck_assert_str_eq(a.path, "/tmp/f.sock");
}
END_TEST

START_TEST(test_unix_path_of_107_bytes_is_accepted_and_108_refused)
{
    char *url = unix_url_of_length(107);
    struct ferry_addr a = parse_ok(url);
    ck_assert_uint_eq(strlen(a.path), 107);
    free(url);

    url = unix_url_of_length(108);
    assert_refused(url, "too long");
    free(url);
}
END_TEST

START_TEST(test_unix_empty_path_is_refused)
{
    assert_refused("unix:", "empty");
    assert_refused("unix://", "empty");
}
END_TEST

START_TEST(test_unix_double_slash_needs_an_absolute_path)
{
    assert_refused("unix://tmp/f.sock", "absolute");
}
END_TEST

START_TEST(test_tcp_url_splits_into_host_and_port)
{
    struct ferry_addr a = parse_ok("tcp://broker.example.com:9000");
    ck_assert_int_eq(a.kind, FERRY_ADDR_TCP);
    ck_assert_str_eq(a.host, "broker.example.com");
    ck_assert_uint_eq(a.port, 9000);

    a = parse_ok("tcp://127.0.0.1:1");
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 1);

    a = parse_ok("tcp://localhost:65535");
    ck_assert_uint_eq(a.port, 65535);
}
END_TEST

START_TEST(test_tcp_without_port_uses_the_default_port)
{
    struct ferry_addr a = parse_ok("tcp://localhost");
    ck_assert_int_eq(a.kind, FERRY_ADDR_TCP);
    ck_assert_str_eq(a.host, "localhost");
    ck_assert_uint_eq(a.port, FERRY_DEFAULT_TCP_PORT);
}
END_TEST

START_TEST(test_tcp_ipv6_literal_comes_in_brackets)
{
    struct ferry_addr a = parse_ok("tcp://[::1]:7071");
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 7071);

    a = parse_ok("tcp://[fe80::1%eth0]");
    ck_assert_str_eq(a.host, "fe80::1%eth0");
    ck_assert_uint_eq(a.port, FERRY_DEFAULT_TCP_PORT);
}
END_TEST

START_TEST(test_tcp_port_out_of_range_is_refused)
{
    assert_refused("tcp://h:0", "range");
    assert_refused("tcp://h:65536", "range");
    assert_refused("tcp://h:99999999999999999999999", "range");
}
END_TEST

START_TEST(test_tcp_port_that_is_not_a_number_is_refused)
{
    assert_refused("tcp://h:", "number");
    assert_refused("tcp://h:http", "number");
    assert_refused("tcp://h:-1", "number");
    assert_refused("tcp://h:+80", "number");
}
END_TEST

START_TEST(test_tcp_junk_after_the_port_or_host_is_refused)
{
    assert_refused("tcp://h:80x", "junk after the port");
    assert_refused("tcp://h:80/", "junk after the port");
    assert_refused("tcp://h:80 ", "junk after the port");
    assert_refused("tcp://h/path", "junk after the host");
    assert_refused("tcp://[::1]x", "junk after the host");
    assert_refused("tcp://user@h:80", "junk after the host");
}
END_TEST

START_TEST(test_tcp_bad_hosts_are_refused)
{
    assert_refused("tcp://", "empty host");
    assert_refused("tcp://:80", "empty host");
    assert_refused("tcp://[]:80", "empty host");
    assert_refused("tcp://[::1:80", "']'");
    assert_refused("tcp://[::1/]:80", "bad character");

    char url[300] = "tcp://";
    memset(url + 6, 'h', 256);
    url[6 + 256] = '\0';
    assert_refused(url, "too long");
    url[6 + 255] = '\0';
    struct ferry_addr a = parse_ok(url);
    ck_assert_uint_eq(strlen(a.host), 255);
}
END_TEST

START_TEST(test_unknown_schemes_are_refused)
{
    assert_refused("http://h:80", "scheme");
    assert_refused("/run/ferry.sock", "scheme");
    assert_refused("TCP://h", "scheme");
    assert_refused("", "scheme");
    assert_refused("tcp:/h", "scheme");
    assert_refused(NULL, "no address");
}
END_TEST

START_TEST(test_a_refused_url_leaves_a_zeroed_address)
{
    struct ferry_addr a;
    memset(&a, 0xab, sizeof a);
    const char *why;
    ck_assert_int_eq(ferry_addr_parse("tcp://h:0", &a, &why), -1);
    ck_assert_str_eq(a.host, "");
    ck_assert_uint_eq(a.port, 0);
    /* a NULL why is allowed */
    ck_assert_int_eq(ferry_addr_parse("bogus", &a, NULL), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *unix_tc = tcase_create("unix");
    tcase_add_test(unix_tc, test_unix_absolute_path_is_taken_as_is);
    tcase_add_test(unix_tc, test_unix_relative_path_stays_relative);
    tcase_add_test(unix_tc, test_unix_url_with_three_slashes_is_an_absolute_path);
    tcase_add_test(unix_tc, test_unix_path_of_107_bytes_is_accepted_and_108_refused);
    tcase_add_test(unix_tc, test_unix_empty_path_is_refused);
    tcase_add_test(unix_tc, test_unix_double_slash_needs_an_absolute_path);
    suite_add_tcase(s, unix_tc);

    TCase *tcp_tc = tcase_create("tcp");
    tcase_add_test(tcp_tc, test_tcp_url_splits_into_host_and_port);
    tcase_add_test(tcp_tc, test_tcp_without_port_uses_the_default_port);
    tcase_add_test(tcp_tc, test_tcp_ipv6_literal_comes_in_brackets);
    tcase_add_test(tcp_tc, test_tcp_port_out_of_range_is_refused);
    tcase_add_test(tcp_tc, test_tcp_port_that_is_not_a_number_is_refused);
    tcase_add_test(tcp_tc, test_tcp_junk_after_the_port_or_host_is_refused);
    tcase_add_test(tcp_tc, test_tcp_bad_hosts_are_refused);
    suite_add_tcase(s, tcp_tc);

    TCase *other_tc = tcase_create("other");
    tcase_add_test(other_tc, test_unknown_schemes_are_refused);
    tcase_add_test(other_tc, test_a_refused_url_leaves_a_zeroed_address);
    suite_add_tcase(s, other_tc);

    SRunner *sr = srunner_create(s);
    /* One process for all tests unless CK_FORK says otherwise: under ASan a
     * fork per test costs ~100 ms (LeakSanitizer runs at every exit), and
     * these tests share no state that a failure could leave behind. */
    if (!getenv("CK_FORK"))
        srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
