/* Unit tests of CRC-32C (src/util/crc32c.c): published vectors, a bitwise
 * reference over every alignment and length, incremental use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"

/* The definition, one bit at a time. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
    }
    return ~c;
}

static void check_value(void **state)
{
    (void)state;
    assert_int_equal(hamok__crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(hamok__crc32c("", 0), 0);
    assert_int_equal(hamok__crc32c(NULL, 0), 0);
    assert_int_equal(hamok__crc32c("a", 1), 0xC1D04330u);
}

/* RFC 3720 (iSCSI) appendix B.4. */
static void rfc3720_vectors(void **state)
{
    (void)state;
    uint8_t b[48];
    memset(b, 0, 32);
    assert_int_equal(hamok__crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xFF, 32);
    assert_int_equal(hamok__crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        b[i] = (uint8_t)i;
    }
    assert_int_equal(hamok__crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        b[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(hamok__crc32c(b, 32), 0x113FDB5Cu);
    /* An iSCSI SCSI Read (10) command PDU. */
    static const uint8_t pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    assert_int_equal(hamok__crc32c(pdu, sizeof pdu), 0xD9963A56u);
}

static void matches_bitwise_every_alignment(void **state)
{
    (void)state;
    uint8_t buf[600];
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t start = 0; start < 16; start++) {
        for (size_t len = 0; len + start <= 300; len++) {
            assert_int_equal(hamok__crc32c(buf + start, len), crc32c_bitwise(buf + start, len));
            assert_int_equal(hamok__crc32c_update_sw(0, buf + start, len),
                             crc32c_bitwise(buf + start, len));
        }
    }
    assert_int_equal(hamok__crc32c(buf, sizeof buf), crc32c_bitwise(buf, sizeof buf));
}

/* The instruction and the tables agree, also when continuing a CRC. */
static void hardware_matches_tables(void **state)
{
    (void)state;
    printf("    CRC32 instruction: %s\n", hamok__crc32c_hw_available() ? "used" : "not here");
    uint8_t buf[4099];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 131u + 7u);
    }
    for (size_t len = 0; len < sizeof buf; len += 97) {
        uint32_t seed = (uint32_t)len * 2654435761u;
        assert_int_equal(hamok__crc32c_update(seed, buf + 3, len - (len > 3 ? 3 : 0)),
                         hamok__crc32c_update_sw(seed, buf + 3, len - (len > 3 ? 3 : 0)));
    }
}

static void incremental_equals_one_shot(void **state)
{
    (void)state;
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    uint32_t whole = hamok__crc32c(buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 13) {
        uint32_t c = hamok__crc32c_update(0, buf, cut);
        c = hamok__crc32c_update(c, buf + cut, sizeof buf - cut);
        assert_int_equal(c, whole);
    }
    /* Many small pieces, including empty ones. */
    uint32_t c = 0;
    size_t off = 0, step = 0;
    while (off < sizeof buf) {
        size_t k = step % 11;
        if (k > sizeof buf - off) {
            k = sizeof buf - off;
        }
        c = hamok__crc32c_update(c, buf + off, k);
        off += k;
        step++;
    }
    assert_int_equal(c, whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_value),
        cmocka_unit_test(rfc3720_vectors),
        cmocka_unit_test(matches_bitwise_every_alignment),
        cmocka_unit_test(incremental_equals_one_shot),
        cmocka_unit_test(hardware_matches_tables),
    };
    return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
