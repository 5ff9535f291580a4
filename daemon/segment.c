/*
 * segment.c - segment files: naming, listing, crash-safe creation, and a
 * read-ahead reader that frames records and checks their checksums.
 * Knows nothing of what records mean or of the store's state.
 */
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEGMENT_SUFFIX ".log"
#define TEMP_SUFFIX ".log.tmp"
#define SEGMENT_DIGITS 16

void segment_name(char out[SEGMENT_NAME_SIZE], uint64_t seq)
{
    snprintf(out, SEGMENT_NAME_SIZE, "%016" PRIx64 SEGMENT_SUFFIX, seq);
}

/* Parses "<16 hex digits><suffix>"; true with *seq if the name is one. */
static bool parse_name(const char *name, const char *suffix, uint64_t *seq)
{
    if (strlen(name) != SEGMENT_DIGITS + strlen(suffix) ||
        strcmp(name + SEGMENT_DIGITS, suffix) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < SEGMENT_DIGITS; i++) {
        char c = name[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else
            return false;
        v = v << 4 | digit;
    }
    *seq = v;
    return true;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int segment_list(int dir_fd, uint64_t **seqs, size_t *count)
{
    int fd = dup(dir_fd);
    if (fd < 0)
        return -1;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return -1;
    }
    rewinddir(dir);
    uint64_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(dir)) != NULL) {
        uint64_t seq;
        if (parse_name(de->d_name, TEMP_SUFFIX, &seq)) {
            unlinkat(dir_fd, de->d_name, 0); /* a creation cut short: never held records */
            continue;
        }
        if (!parse_name(de->d_name, SEGMENT_SUFFIX, &seq))
            continue;
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            uint64_t *grown = realloc(list, new_cap * sizeof *grown);
            if (grown == NULL) {
                free(list);
                closedir(dir);
                errno = ENOMEM;
                return -1;
            }
            list = grown;
            cap = new_cap;
        }
        list[n++] = seq;
    }
    int saved = errno;
    closedir(dir);
    if (saved != 0) {
        free(list);
        errno = saved;
        return -1;
    }
    if (n > 1)
        qsort(list, n, sizeof *list, compare_u64);
    *seqs = list; /* the caller owns the list from here */
    *count = n;
    return 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int segment_create(int dir_fd, const struct segment_header *h, bool sync)
{
    char name[SEGMENT_NAME_SIZE], temp[SEGMENT_NAME_SIZE + 8];
    segment_name(name, h->seq);
    snprintf(temp, sizeof temp, "%016" PRIx64 TEMP_SUFFIX, h->seq);

    uint8_t header[SEGMENT_HEADER_SIZE];
    segment_header_encode(header, h);
    int fd = openat(dir_fd, temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (write_all_at(fd, header, sizeof header, 0) != 0 ||
        (sync && fdatasync(fd) != 0) ||
        renameat(dir_fd, temp, dir_fd, name) != 0 ||
        (sync && fsync(dir_fd) != 0)) {
        int saved = errno;
        close(fd);
        unlinkat(dir_fd, temp, 0);
        errno = saved;
        return -1;
    }
    return fd;
}

/* ---- reading ---- */

void segment_reader_init(struct segment_reader *r)
{
    *r = (struct segment_reader){ .fd = -1 };
}

int segment_reader_open(struct segment_reader *r, int dir_fd, uint64_t seq)
{
    segment_reader_close(r);
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, seq);
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    r->fd = fd;
    r->seq = seq;
    r->file_size = (uint64_t)st.st_size;
    r->start = 0;
    r->len = 0;
    return 0;
}

void segment_reader_close(struct segment_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->len = 0;
}

void segment_reader_free(struct segment_reader *r)
{
    segment_reader_close(r);
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

const uint8_t *segment_reader_get(struct segment_reader *r, uint64_t off, size_t n)
{
    if (off > r->file_size || n > r->file_size - off) {
        errno = 0;
        return NULL;
    }
    if (off >= r->start && off - r->start + n <= r->len)
        return r->buf + (off - r->start);

    uint64_t left = r->file_size - off;
    size_t want = n > SEGMENT_READ_AHEAD ? n : SEGMENT_READ_AHEAD;
    if (want > left)
        want = (size_t)left;
    if (want > r->cap) {
        uint8_t *grown = realloc(r->buf, want);
        if (grown == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        r->buf = grown;
        r->cap = want;
    }
    r->start = off;
    r->len = 0;
    while (r->len < want) {
        ssize_t got = pread(r->fd, r->buf + r->len, want - r->len, (off_t)(off + r->len));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* shorter than fstat said: someone cut it */
            return NULL;
        }
        r->len += (size_t)got;
    }
    return r->buf;
}

enum record_read segment_read_record(struct segment_reader *r, uint64_t off,
                                     struct record_view *out)
{
    const uint8_t *head = segment_reader_get(r, off, RECORD_OVERHEAD);
    if (head == NULL)
        return errno != 0 ? READ_IO_ERROR : READ_SHORT;
    uint32_t length = record_length(head);
    if (length == 0 || length > RECORD_MAX_LENGTH)
        return READ_BAD_LENGTH;
    const uint8_t *rec = segment_reader_get(r, off, RECORD_HEADER_SIZE + (size_t)length);
    if (rec == NULL)
        return errno != 0 ? READ_IO_ERROR : READ_SHORT;
    *out = (struct record_view){
        .rec = rec,
        .size = RECORD_HEADER_SIZE + length,
        .type = rec[RECORD_HEADER_SIZE],
        .body = rec + RECORD_OVERHEAD,
        .body_len = length - 1,
    };
    return record_crc_ok(rec) ? READ_OK : READ_BAD_CRC;
}

bool segment_sound_record_after(struct segment_reader *r, uint64_t off, uint64_t crc_budget)
{
    for (uint64_t at = off + 1; at + RECORD_OVERHEAD <= r->file_size; at++) {
        const uint8_t *head = segment_reader_get(r, at, RECORD_OVERHEAD);
        if (head == NULL)
            return true; /* cannot tell: keep the data */
        uint32_t length = record_length(head);
        /* Cheap tests first: a zeroed or random tail fails them at once. */
        if (length == 0 || length > RECORD_MAX_LENGTH ||
            length > r->file_size - at - RECORD_HEADER_SIZE ||
            !record_type_known(head[RECORD_HEADER_SIZE]))
            continue;
        if (length > crc_budget)
            return true;
        crc_budget -= length;
        const uint8_t *rec = segment_reader_get(r, at, RECORD_HEADER_SIZE + (size_t)length);
        if (rec == NULL || record_crc_ok(rec))
            return true;
    }
    return false;
}
