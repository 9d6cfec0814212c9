/* libFuzzer target: the frame decoder.
 *
 * Properties checked on every input, with the default limits, both for the
 * cluster "fuzz" and for any cluster (NULL):
 *  - no crash, leak, undefined behaviour or excessive allocation (sanitizers,
 *    -malloc_limit_mb);
 *  - the status and the reject reason agree, and a rejected frame leaves the
 *    output zeroed;
 *  - a decoded message re-encodes, the re-encoding decodes, and encoding that
 *    again gives identical bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void one(const uint8_t *data, size_t size, const char *cluster)
{
    hamok_codec_limits lim;
    hamok__codec_limits_default(&lim);
    hamok_msg m;
    hamok_codec_reject why = HAMOK_REJECT_COUNT_;
    hamok_status st = hamok__codec_decode(data, size, cluster, NULL, &m, &why);
    if (st != HAMOK_OK) {
        check(is_zero(&m, sizeof m));
        check((st == HAMOK_ERR_TOO_BIG && why == HAMOK_REJECT_TOO_BIG) ||
              (st == HAMOK_ERR_CODEC && why != HAMOK_REJECT_NONE && why != HAMOK_REJECT_TOO_BIG &&
               why < HAMOK_REJECT_COUNT_) ||
              (st == HAMOK_ERR_NOMEM && why == HAMOK_REJECT_NONE));
        return;
    }
    check(why == HAMOK_REJECT_NONE);

    hamok_buf e1 = HAMOK_BUF_INIT, e2 = HAMOK_BUF_INIT;
    st = hamok__codec_encode(&m, "fuzz", NULL, &e1);
    if (st == HAMOK_ERR_TOO_BIG) {
        /* Only possible when the input used narrower integers than the
         * canonical encoding (the entry term is always 9 bytes). */
        size_t n = m.type == HAMOK_MSG_APPEND_ENTRIES ? m.u.append.n_entries : 1;
        check(size + 8 * n + 300 > lim.max_frame);
        hamok__msg_clear(&m);
        hamok__buf_free(&e1);
        return;
    }
    check(st == HAMOK_OK);

    hamok_msg m2;
    st = hamok__codec_decode(e1.data, e1.len, "fuzz", NULL, &m2, &why);
    check(st == HAMOK_OK);
    check(m2.type == m.type && m2.broadcast == m.broadcast);
    st = hamok__codec_encode(&m2, "fuzz", NULL, &e2);
    check(st == HAMOK_OK);
    check(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);

    hamok__msg_clear(&m2);
    hamok__msg_clear(&m);
    check(is_zero(&m, sizeof m));
    hamok__buf_free(&e1);
    hamok__buf_free(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, "fuzz");
    one(data, size, NULL);
    return 0;
}
