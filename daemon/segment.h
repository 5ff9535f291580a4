/*
 * segment.h - the segment files of the durable log: their names, listing
 * them, creating one crash-safely, and reading records from one through a
 * bounded read-ahead buffer. Knows the framing of records (record.h) but
 * not what they mean, and nothing of the store's state.
 */
#ifndef FERRY_SEGMENT_H
#define FERRY_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* "0000000000000001.log": 16 hex digits, so names sort as numbers do. */
#define SEGMENT_NAME_SIZE 32
void segment_name(char out[SEGMENT_NAME_SIZE], uint64_t seq);

/* The numbers of the segment files in the directory, ascending, in a
 * malloc'd array the caller frees. Removes leftover "*.log.tmp" files of a
 * creation that a crash interrupted. 0, or -1 with errno. */
int segment_list(int dir_fd, uint64_t **seqs, size_t *count);

/* Creates segment `seq` holding just its header: written to a temporary
 * name, synced (if `sync`), renamed into place, directory synced (if
 * `sync`), so that a segment file never exists without a whole header.
 * Returns a descriptor open for writing, or -1 with errno. */
int segment_create(int dir_fd, const struct segment_header *h, bool sync);

/* ---- reading ---- */

/* Reads a segment forwards (or nearly so) through a buffer of at least
 * SEGMENT_READ_AHEAD bytes, grown to hold the largest record met. */
#define SEGMENT_READ_AHEAD (1u << 20)

struct segment_reader {
    int fd;                 /* -1 when closed */
    uint64_t seq;
    uint64_t file_size;
    uint8_t *buf;           /* owned */
    size_t cap;
    uint64_t start;         /* file offset of buf[0] */
    size_t len;             /* bytes valid in buf */
};

void segment_reader_init(struct segment_reader *r);
/* Opens segment `seq` for reading (closing any other). 0, or -1 with errno. */
int segment_reader_open(struct segment_reader *r, int dir_fd, uint64_t seq);
/* Closes the file; keeps the buffer for the next open. */
void segment_reader_close(struct segment_reader *r);
/* Closes and frees the buffer. */
void segment_reader_free(struct segment_reader *r);

/* The n bytes at file offset off, valid until the next call; NULL if they
 * pass the end of the file (errno 0) or cannot be read (errno set). */
const uint8_t *segment_reader_get(struct segment_reader *r, uint64_t off, size_t n);

enum record_read {
    READ_OK,
    READ_SHORT,         /* the file ends inside the record (or its length field) */
    READ_BAD_LENGTH,    /* a length of 0 or above RECORD_MAX_LENGTH */
    READ_BAD_CRC,       /* whole and of plausible length, but the checksum fails */
    READ_IO_ERROR,      /* errno says why */
};

struct record_view {
    const uint8_t *rec;     /* the whole record, framing included */
    uint32_t size;          /* of the whole record */
    uint8_t type;
    const uint8_t *body;
    uint32_t body_len;
};

/* Reads the record at off. On READ_OK and READ_BAD_CRC the view is
 * filled (so a damaged record can be skipped by its size). */
enum record_read segment_read_record(struct segment_reader *r, uint64_t off,
                                     struct record_view *out);

/* Whether a whole record with a good checksum starts anywhere after `off`
 * in the file. Tells a torn tail (nothing sound after the damage) from
 * damage in the middle. Bounded: past `crc_budget` bytes checksummed it
 * answers true, the answer that never throws data away. */
bool segment_sound_record_after(struct segment_reader *r, uint64_t off, uint64_t crc_budget);

#endif
