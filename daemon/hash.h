/*
 * hash.h - the hash functions behind the core's tables. Keys chosen by
 * clients are mixed with a per-broker random seed so that a client cannot
 * aim many keys at one bucket. Shared by the core's tables and the
 * store's. Knows nothing of the tables.
 */
#ifndef FERRY_HASH_H
#define FERRY_HASH_H

#include <stdint.h>
#include <sys/random.h>
#include <time.h>

#include "ferry_proto.h"

/* The MurmurHash3 finalizer: every input bit moves every output bit. */
static inline uint64_t hash_u64(uint64_t key, uint64_t seed)
{
    uint64_t h = key ^ seed;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* FNV-1a over the bytes from a seeded basis, then the finalizer above. */
static inline uint64_t hash_bytes(struct ferry_bytes s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < s.len; i++) {
        h ^= s.ptr[i];
        h *= 0x100000001b3ULL;
    }
    return hash_u64(h, seed);
}

/* A seed for the tables of one broker or store: random, or the clock if
 * the kernel has no entropy to give yet (early boot). */
static inline uint64_t hash_random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)now.tv_sec;
}

#endif
