#include "sm.h"

#include <string.h>

#include "util/alloc.h"

#define SM_MAGIC   0x4d534d48u /* "HMSM" little-endian */
#define SM_VERSION 1u

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t reg_hash(uint64_t k, uint64_t v)
{
    return mix64(v ^ mix64(k + 0x5265670000ULL));
}

void hamok_sm_init(hamok_sm *sm)
{
    memset(sm, 0, sizeof *sm);
    for (uint64_t k = 0; k < HAMOK_SM_REGS; k++) {
        sm->regsum += reg_hash(k, 0);
    }
}

void hamok_sm_apply(hamok_sm *sm, uint64_t index, uint8_t type, uint64_t seq, uint64_t entry_hash)
{
    sm->applied = index;
    sm->chain = mix64(sm->chain ^ entry_hash ^ mix64(index));
    if (type == HAMOK_ENTRY_COMMAND) {
        sm->commands++;
        uint64_t k = seq % HAMOK_SM_REGS;
        uint64_t v = mix64(sm->regs[k] ^ entry_hash);
        sm->regsum -= reg_hash(k, sm->regs[k]);
        sm->regsum += reg_hash(k, v);
        sm->regs[k] = v;
    }
}

uint64_t hamok_sm_hash(const hamok_sm *sm)
{
    return mix64(mix64(mix64(sm->applied) ^ sm->commands) ^ sm->chain) ^ sm->regsum;
}

/* ---- blob ---------------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static uint64_t fnv(const uint8_t *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Layout (little-endian): u32 magic, u32 version, u64 index, u64 term,
 * u64 commands, u64 chain, u64 regs[256], u32 n_members, then per member
 * u8[16] id, u8 role, u16 endpoint length, endpoint bytes; u64 FNV-1a of
 * everything before it. */
hamok_status hamok_sm_encode(const hamok_sm *sm, uint64_t term, const hamok_member *ms, size_t n,
                             hamok_buf *out)
{
    size_t need = 8 + 4 * 8 + HAMOK_SM_REGS * 8 + 4 + 8;
    for (size_t i = 0; i < n; i++) {
        size_t el = ms[i].endpoint ? strlen(ms[i].endpoint) : 0;
        need += HAMOK_ID_LEN + 1 + 2 + (el > 0xffff ? 0xffff : el);
    }
    hamok_status st = hamok__buf_reserve(out, need);
    if (st != HAMOK_OK) {
        return st;
    }
    uint8_t *start = out->data + out->len;
    uint8_t *p = start;
    uint8_t w[8];
    put64(w, SM_MAGIC | ((uint64_t)SM_VERSION << 32));
    memcpy(p, w, 8);
    p += 8;
    put64(p, sm->applied);
    put64(p + 8, term);
    put64(p + 16, sm->commands);
    put64(p + 24, sm->chain);
    p += 32;
    for (size_t k = 0; k < HAMOK_SM_REGS; k++) {
        put64(p, sm->regs[k]);
        p += 8;
    }
    p[0] = (uint8_t)n;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 24);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, ms[i].id.b, HAMOK_ID_LEN);
        p += HAMOK_ID_LEN;
        *p++ = ms[i].role;
        size_t el = ms[i].endpoint ? strlen(ms[i].endpoint) : 0;
        if (el > 0xffff) {
            el = 0xffff;
        }
        *p++ = (uint8_t)el;
        *p++ = (uint8_t)(el >> 8);
        if (el > 0) {
            memcpy(p, ms[i].endpoint, el);
            p += el;
        }
    }
    put64(p, fnv(start, (size_t)(p - start)));
    p += 8;
    out->len += (size_t)(p - start);
    return HAMOK_OK;
}

bool hamok_sm_decode(const uint8_t *b, size_t len, hamok_sm *sm, uint64_t *term, hamok_member **ms,
                     size_t *n)
{
    if (ms != NULL) {
        *ms = NULL;
    }
    if (n != NULL) {
        *n = 0;
    }
    size_t fixed = 8 + 4 * 8 + HAMOK_SM_REGS * 8 + 4;
    if (len < fixed + 8 || fnv(b, len - 8) != get64(b + len - 8)) {
        return false;
    }
    if (get64(b) != (SM_MAGIC | ((uint64_t)SM_VERSION << 32))) {
        return false;
    }
    hamok_sm_init(sm);
    const uint8_t *p = b + 8;
    sm->applied = get64(p);
    if (term != NULL) {
        *term = get64(p + 8);
    }
    sm->commands = get64(p + 16);
    sm->chain = get64(p + 24);
    p += 32;
    sm->regsum = 0;
    for (size_t k = 0; k < HAMOK_SM_REGS; k++) {
        sm->regs[k] = get64(p);
        sm->regsum += reg_hash(k, sm->regs[k]);
        p += 8;
    }
    size_t cnt = (size_t)p[0] | ((size_t)p[1] << 8) | ((size_t)p[2] << 16) | ((size_t)p[3] << 24);
    p += 4;
    const uint8_t *end = b + len - 8;
    if (cnt > 4096) {
        return false;
    }
    hamok_member *out = NULL;
    if (ms != NULL) {
        out = hamok__calloc(cnt ? cnt : 1, sizeof *out);
        if (out == NULL) {
            return false;
        }
    }
    for (size_t i = 0; i < cnt; i++) {
        if ((size_t)(end - p) < HAMOK_ID_LEN + 3) {
            hamok__members_free(out, i);
            return false;
        }
        hamok_id id;
        memcpy(id.b, p, HAMOK_ID_LEN);
        p += HAMOK_ID_LEN;
        uint8_t role = *p++;
        size_t el = (size_t)p[0] | ((size_t)p[1] << 8);
        p += 2;
        if ((size_t)(end - p) < el) {
            hamok__members_free(out, i);
            return false;
        }
        if (out != NULL) {
            out[i].id = id;
            out[i].role = role;
            out[i].endpoint = hamok__malloc(el + 1);
            if (out[i].endpoint == NULL) {
                hamok__members_free(out, i);
                return false;
            }
            memcpy(out[i].endpoint, p, el);
            out[i].endpoint[el] = '\0';
        }
        p += el;
    }
    if (p != end) {
        hamok__members_free(out, cnt);
        return false;
    }
    if (ms != NULL) {
        *ms = out;
    }
    if (n != NULL) {
        *n = cnt;
    }
    return true;
}
