/*
 * topic.c - the syntax of topics and binding patterns (AMQP's topic
 * syntax: words separated by '.', `*` one word, `#` zero or more words),
 * splitting them into words, and a plain reference matcher. Pure: the
 * daemon's fast matcher (daemon/bindings.c) is tested against this one.
 */
#include "ferry_proto.h"

static bool word_char_valid(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '_' || c == '-' || c == ':';
}

static bool is_wildcard(struct ferry_bytes w)
{
    return w.len == 1 && (w.ptr[0] == '*' || w.ptr[0] == '#');
}

size_t ferry_topic_split(struct ferry_bytes s, struct ferry_bytes *words, size_t max)
{
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '.')
            continue;
        if (n == max)
            return max + 1;
        words[n++] = (struct ferry_bytes){ s.ptr + start, i - start };
        start = i + 1;
    }
    return n;
}

/* Shared by both checks: length, word count, no empty word, characters. */
static bool words_valid(struct ferry_bytes s, bool wildcards)
{
    if (s.len == 0 || s.len > FERRY_TOPIC_MAX)
        return false;
    struct ferry_bytes words[FERRY_TOPIC_WORDS_MAX];
    size_t n = ferry_topic_split(s, words, FERRY_TOPIC_WORDS_MAX);
    if (n > FERRY_TOPIC_WORDS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        struct ferry_bytes w = words[i];
        if (w.len == 0)
            return false;
        if (wildcards && is_wildcard(w))
            continue;
        for (size_t k = 0; k < w.len; k++) {
            if (!word_char_valid(w.ptr[k]))
                return false;
        }
    }
    return true;
}

bool ferry_topic_valid(struct ferry_bytes topic)
{
    return words_valid(topic, false);
}

bool ferry_pattern_valid(struct ferry_bytes pattern)
{
    return words_valid(pattern, true);
}

static bool word_eq(struct ferry_bytes a, struct ferry_bytes b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        if (a.ptr[i] != b.ptr[i])
            return false;
    }
    return true;
}

/* Dynamic programming over (pattern words, topic words): at most 33 x 33
 * cells, no recursion, so its cost is bounded whatever the pattern. */
bool ferry_topic_match(struct ferry_bytes pattern, struct ferry_bytes topic)
{
    struct ferry_bytes pw[FERRY_TOPIC_WORDS_MAX], tw[FERRY_TOPIC_WORDS_MAX];
    if (!ferry_pattern_valid(pattern) || !ferry_topic_valid(topic))
        return false;
    size_t np = ferry_topic_split(pattern, pw, FERRY_TOPIC_WORDS_MAX);
    size_t nt = ferry_topic_split(topic, tw, FERRY_TOPIC_WORDS_MAX);
    /* ok[j]: the first i pattern words match the first j topic words. */
    bool ok[FERRY_TOPIC_WORDS_MAX + 1];
    ok[0] = true;
    for (size_t j = 1; j <= nt; j++)
        ok[j] = false;
    for (size_t i = 0; i < np; i++) {
        bool hash = pw[i].len == 1 && pw[i].ptr[0] == '#';
        bool star = pw[i].len == 1 && pw[i].ptr[0] == '*';
        if (hash) {
            /* '#' takes zero or more words: true from the first true on. */
            for (size_t j = 1; j <= nt; j++)
                ok[j] = ok[j] || ok[j - 1];
            continue;
        }
        for (size_t j = nt; j >= 1; j--)
            ok[j] = ok[j - 1] && (star || word_eq(pw[i], tw[j - 1]));
        ok[0] = false;
    }
    return ok[nt];
}
