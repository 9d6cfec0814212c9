/* Internal allocation wrappers: every allocation in Hamok goes through these so
 * an application (or a test) can replace the allocator. */
#ifndef HAMOK_UTIL_ALLOC_H
#define HAMOK_UTIL_ALLOC_H

#include <stddef.h>

void *hamok__malloc(size_t size);
void *hamok__calloc(size_t n, size_t size);
void *hamok__realloc(void *ptr, size_t size);
void hamok__free(void *ptr);
/* Copy `len` bytes into a fresh allocation (len 0 gives a valid 1-byte block). */
void *hamok__memdup(const void *src, size_t len);
char *hamok__strdup(const char *s);

#endif
