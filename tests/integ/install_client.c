/*
 * install_client.c - a program as a user of the installed library writes
 * it: built by test_install.sh against the ferry.pc that `meson install`
 * put in place, then run against a live ferryd ($FERRY_URL). Publishes
 * one message, gets it back, prints "ok".
 */
#include <ferry.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ferry_conn *c;
    int rc = ferry_connect(NULL, &c);
    if (rc != FERRY_OK) {
        fprintf(stderr, "connect: %s\n", ferry_strerror(rc));
        return 1;
    }
    const char text[] = "from an installed libferry";
    rc = ferry_publish(c, "installed", text, strlen(text), NULL, 0, 0);
    if (rc == FERRY_OK)
        rc = ferry_flush(c, 5000);
    ferry_message *m = NULL;
    if (rc == FERRY_OK)
        rc = ferry_get(c, "installed", 5000, &m);
    if (rc != FERRY_OK) {
        fprintf(stderr, "publish/get: %s\n", ferry_strerror(rc));
        ferry_close(c);
        return 1;
    }
    int same = m->len == strlen(text) && memcmp(m->data, text, m->len) == 0;
    ferry_ack(c, m->tag);
    ferry_message_free(m);
    ferry_close(c);
    puts(same ? "ok" : "wrong message");
    return same ? 0 : 1;
}
