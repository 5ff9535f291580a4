/*
 * crc32c.h - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the
 * checksum of every record of the durable log (docs/STORAGE.md). Pure
 * arithmetic on bytes: knows nothing of records or files.
 */
#ifndef FERRY_CRC32C_H
#define FERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of buf[0..len), continuing from `crc` (0 to start): so
 * crc32c(crc32c(0, a, n), b, m) is the CRC of a followed by b. Uses the
 * SSE4.2 instruction when the CPU has it, else crc32c_portable. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same, always in software (slicing by 8): for tests that compare it
 * with the instruction. */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
