/* A growable byte buffer. */
#ifndef HAMOK_UTIL_BUF_H
#define HAMOK_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "hamok/status.h"

typedef struct hamok_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hamok_buf;

#define HAMOK_BUF_INIT \
    {                  \
        NULL, 0, 0     \
    }

hamok_status hamok__buf_reserve(hamok_buf *b, size_t extra);
hamok_status hamok__buf_append(hamok_buf *b, const void *data, size_t len);
void hamok__buf_reset(hamok_buf *b); /* len = 0, keeps the memory */
void hamok__buf_free(hamok_buf *b);

#endif
