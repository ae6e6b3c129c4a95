/* The only "hosted" header the portable code may use, reduced to the five
 * functions it calls (every freestanding toolchain or libc has them). The
 * freestanding check compiles common/ and device/ with -nostdinc against
 * this and the compiler's own freestanding headers (stddef.h, stdint.h,
 * stdbool.h, limits.h), so any other header fails the build. */
#ifndef MQIM_FREESTANDING_STRING_H
#define MQIM_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
