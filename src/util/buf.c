#include "util/buf.h"

#include <string.h>

#include "util/alloc.h"

hamok_status hamok__buf_reserve(hamok_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) {
        return HAMOK_ERR_TOO_BIG;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return HAMOK_OK;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    uint8_t *p = hamok__realloc(b->data, cap);
    if (p == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    b->data = p;
    b->cap = cap;
    return HAMOK_OK;
}

hamok_status hamok__buf_append(hamok_buf *b, const void *data, size_t len)
{
    hamok_status st = hamok__buf_reserve(b, len);
    if (st != HAMOK_OK) {
        return st;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return HAMOK_OK;
}

void hamok__buf_reset(hamok_buf *b)
{
    b->len = 0;
}

void hamok__buf_free(hamok_buf *b)
{
    hamok__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
