/*
 * crc32c.c - CRC-32C in software (slicing by 8) and, on x86-64 CPUs that
 * have SSE4.2, with the crc32 instruction, chosen once at first use.
 * Knows nothing of what is checksummed.
 */
#include "crc32c.h"

#include <string.h>
#include <threads.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* Bit-reflected form of the Castagnoli polynomial 0x1EDC6F41. */
#define CRC32C_POLY_REFLECTED 0x82F63B78u

/* table[k][b]: the CRC of byte b followed by k zero bytes, so that eight
 * bytes are folded with eight lookups instead of 64 shifts. */
static uint32_t table[8][256];
static uint32_t (*update)(uint32_t crc, const uint8_t *p, size_t len);
static once_flag init_once = ONCE_FLAG_INIT;

/* ---- software ---- */

static void build_tables(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (crc & 1u)));
        table[0][b] = crc;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

/* The raw update: `crc` is the running register (already inverted). */
static uint32_t update_portable(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len > 0 && ((uintptr_t)p & 7u) != 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        len--;
    }
    while (len >= 8) {
        /* Little-endian assembly of the eight bytes, whatever the host. */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
              table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
              table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        len--;
    }
    return crc;
}

/* ---- SSE4.2 ---- */

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t update_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t crc64 = crc;
    while (len > 0 && ((uintptr_t)p & 7u) != 0) {
        crc64 = _mm_crc32_u8((uint32_t)crc64, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word);
        crc64 = _mm_crc32_u64(crc64, word);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc64 = _mm_crc32_u8((uint32_t)crc64, *p++);
        len--;
    }
    return (uint32_t)crc64;
}
#endif

static void choose_implementation(void)
{
    build_tables();
    update = update_portable;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        update = update_sse42;
#endif
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    call_once(&init_once, choose_implementation);
    return ~update(~crc, buf, len);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    call_once(&init_once, choose_implementation);
    return ~update_portable(~crc, buf, len);
}
