/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the metrics store's
 * blocks and WAL records (as Prometheus uses for its chunks and index). Uses the SSE4.2
 * crc32 instruction when the CPU has it (checked once at run time), else slicing-by-8. */
#ifndef TR_CRC32C_H
#define TR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0; crc32c_update(crc32c_update(0, a), b) equals the CRC of
 * a followed by b. crc32c("123456789") = 0xE3069283. */
uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);
static inline uint32_t crc32c(const void *p, size_t n) { return crc32c_update(0, p, n); }
/* 1 when the hardware path is in use (for the benchmark note). */
int crc32c_hw(void);

#endif
