#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hamok/hamok.h"

static void *libc_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

static hamok_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};

hamok_status hamok_set_allocator(const hamok_allocator *allocator)
{
    if (allocator == NULL) {
        current = (hamok_allocator){libc_malloc, libc_realloc, libc_free, NULL};
        return HAMOK_OK;
    }
    if (allocator->malloc == NULL || allocator->realloc == NULL || allocator->free == NULL) {
        return HAMOK_ERR_INVALID;
    }
    current = *allocator;
    return HAMOK_OK;
}

void *hamok__malloc(size_t size)
{
    return current.malloc(current.ud, size == 0 ? 1 : size);
}

void *hamok__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = hamok__malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size == 0 ? 1 : n * size);
    }
    return p;
}

void *hamok__realloc(void *ptr, size_t size)
{
    return current.realloc(current.ud, ptr, size == 0 ? 1 : size);
}

void hamok__free(void *ptr)
{
    if (ptr != NULL) {
        current.free(current.ud, ptr);
    }
}

void *hamok__memdup(const void *src, size_t len)
{
    void *p = hamok__malloc(len);
    if (p != NULL && len > 0) {
        memcpy(p, src, len);
    }
    return p;
}

char *hamok__strdup(const char *s)
{
    return hamok__memdup(s, strlen(s) + 1);
}
