#include "util/id.h"

#include <string.h>

hamok_id hamok__id_from_u64(uint64_t n)
{
    hamok_id id;
    memset(&id, 0, sizeof id);
    for (int i = 0; i < 8; i++) {
        id.b[15 - i] = (uint8_t)(n >> (8 * i));
    }
    return id;
}

void hamok__id_format(const hamok_id *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[id->b[i] >> 4];
        out[o++] = hex[id->b[i] & 0xf];
    }
    out[o] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

hamok_status hamok__id_parse(const char *text, hamok_id *out)
{
    if (text == NULL || strlen(text) != HAMOK_ID_STR_LEN) {
        return HAMOK_ERR_INVALID;
    }
    size_t t = 0;
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (text[t++] != '-') {
                return HAMOK_ERR_INVALID;
            }
        }
        int hi = hexval(text[t++]);
        int lo = hexval(text[t++]);
        if (hi < 0 || lo < 0) {
            return HAMOK_ERR_INVALID;
        }
        out->b[i] = (uint8_t)((hi << 4) | lo);
    }
    return HAMOK_OK;
}

hamok_id hamok__id_uuid4(const uint8_t random16[HAMOK_ID_LEN])
{
    hamok_id id;
    memcpy(id.b, random16, HAMOK_ID_LEN);
    id.b[6] = (uint8_t)((id.b[6] & 0x0f) | 0x40);
    id.b[8] = (uint8_t)((id.b[8] & 0x3f) | 0x80);
    return id;
}

void hamok_id_format(const hamok_id *id, char *out)
{
    hamok__id_format(id, out);
}

hamok_status hamok_id_parse(const char *text, hamok_id *out)
{
    return hamok__id_parse(text, out);
}
