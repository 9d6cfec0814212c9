/* libFuzzer target: the command codec and the registry.
 *
 * For every input:
 *  - decoded as a command and as a result: on error the output is zeroed;
 *    on success it re-encodes, and that re-encoding decodes and encodes to
 *    the same bytes (canonical form);
 *  - applied as a COMMAND entry (twice from one client and sequence number,
 *    once without a session) to a fresh registry holding a map, a queue, an
 *    emitter and a remote map with one queued request: the apply succeeds,
 *    the result decodes (or is absent: a queued remote-map request), the
 *    duplicate gets the same result and emits nothing (an OUTCOME is not a
 *    session's: its duplicate is stale and resolves nothing, which emits
 *    nothing either); then snapshot -> restore into a
 *    second registry -> snapshot gives identical bytes;
 *  - handed to restore as a snapshot: OK or CORRUPT, never anything else.
 * Plus the sanitizers: no crash, leak, overread or undefined behaviour. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/command.h"
#include "collections/registry.h"

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

static int g_events;

static void sink(void *ud, const hamok_coll_event *ev)
{
    (void)ud;
    check(ev->type >= HAMOK_CEV_INSERT && ev->type <= HAMOK_CEV_ANSWER);
    g_events++;
}

static hamok_status to_buf(void *ud, const void *d, size_t n)
{
    return hamok__buf_append(ud, d, n);
}

static void codec_props(const uint8_t *data, size_t size)
{
    hamok_cmd c;
    hamok_status st = hamok__cmd_decode(data, size, &c);
    if (st != HAMOK_OK) {
        check(is_zero(&c, sizeof c));
        check(st == HAMOK_ERR_CODEC || st == HAMOK_ERR_TOO_BIG || st == HAMOK_ERR_NOMEM);
    } else {
        hamok_buf a = HAMOK_BUF_INIT, b = HAMOK_BUF_INIT;
        check(hamok__cmd_encode(&c, &a) == HAMOK_OK);
        hamok_cmd c2;
        check(hamok__cmd_decode(a.data, a.len, &c2) == HAMOK_OK);
        check(hamok__cmd_encode(&c2, &b) == HAMOK_OK);
        check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        hamok__cmd_clear(&c2);
        hamok__cmd_clear(&c);
        hamok__buf_free(&a);
        hamok__buf_free(&b);
    }
    hamok_cmd_result r;
    st = hamok__cmd_result_decode(data, size, &r);
    if (st != HAMOK_OK) {
        check(is_zero(&r, sizeof r));
    } else {
        hamok_buf a = HAMOK_BUF_INIT;
        check(hamok__cmd_result_encode(&r, &a) == HAMOK_OK);
        hamok_cmd_result r2;
        check(hamok__cmd_result_decode(a.data, a.len, &r2) == HAMOK_OK);
        check(r2.status == r.status && r2.flag == r.flag && r2.n_items == r.n_items);
        hamok__cmd_result_clear(&r2);
        hamok__cmd_result_clear(&r);
        hamok__buf_free(&a);
    }
}

static void apply(hamok_registry *reg, uint64_t client, uint64_t seq, const uint8_t *data,
                  size_t size, hamok_buf *res)
{
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = 1;
    e.type = HAMOK_ENTRY_COMMAND;
    if (client != 0) {
        e.client = hamok__id_from_u64(client);
    }
    e.seq = seq;
    e.data = (uint8_t *)(uintptr_t)data;
    e.len = size;
    hamok__buf_reset(res);
    check(hamok__registry_apply(reg, hamok__registry_applied(reg) + 1, &e, res, sink, NULL) ==
          HAMOK_OK);
    if (res->len == 0) {
        /* Only a queued remote-map request is answered later. */
        hamok_cmd c;
        check(hamok__cmd_decode(data, size, &c) == HAMOK_OK);
        check(c.kind == HAMOK_KIND_REMOTE_MAP && c.op != HAMOK_OP_OUTCOME);
        hamok__cmd_clear(&c);
        return;
    }
    hamok_cmd_result r;
    check(hamok__cmd_result_decode(res->data, res->len, &r) == HAMOK_OK);
    hamok__cmd_result_clear(&r);
}

static int is_outcome(const uint8_t *data, size_t size)
{
    hamok_cmd c;
    if (hamok__cmd_decode(data, size, &c) != HAMOK_OK) {
        return 0;
    }
    int r = c.kind == HAMOK_KIND_REMOTE_MAP && c.op == HAMOK_OP_OUTCOME;
    hamok__cmd_clear(&c);
    return r;
}

static void seed(hamok_registry *reg, hamok_buf *res)
{
    static const uint8_t k[] = "k", v[] = "v", ev[] = "ev";
    hamok_cmd_item it = {(uint8_t *)k, 1, true, (uint8_t *)v, 1, false, NULL, 0};
    hamok_cmd cmds[4] = {
        {HAMOK_KIND_MAP, HAMOK_OP_SET, (uint8_t *)"m", 1, 0, &it, 1},
        {HAMOK_KIND_QUEUE, HAMOK_OP_PUSH, (uint8_t *)"q", 1, 0, &it, 1},
        {HAMOK_KIND_EMITTER, HAMOK_OP_SUBSCRIBE, (uint8_t *)"e", 1, 0, NULL, 0},
        /* a queued remote-map request at index 4: an input that is its
         * OUTCOME (arg 4) resolves it */
        {HAMOK_KIND_REMOTE_MAP, HAMOK_OP_SET, (uint8_t *)"r", 1, 0, &it, 1},
    };
    hamok_cmd_item sub = {(uint8_t *)ev, 2, true, (uint8_t *)v, 1, false, NULL, 0};
    cmds[2].items = &sub;
    cmds[2].n_items = 1;
    for (int i = 0; i < 4; i++) {
        hamok_buf b = HAMOK_BUF_INIT;
        check(hamok__cmd_encode(&cmds[i], &b) == HAMOK_OK);
        apply(reg, 1, (uint64_t)i + 1, b.data, b.len, res);
        hamok__buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    codec_props(data, size);

    hamok_registry *a = NULL, *b = NULL;
    check(hamok__registry_new(&a, 8) == HAMOK_OK);
    check(hamok__registry_new(&b, 8) == HAMOK_OK);
    hamok_buf res = HAMOK_BUF_INIT, res2 = HAMOK_BUF_INIT;
    seed(a, &res);

    apply(a, 1, 10, data, size, &res);
    g_events = 0;
    apply(a, 1, 10, data, size, &res2); /* duplicate */
    check(g_events == 0);
    check((res.len == res2.len && (res.len == 0 || memcmp(res.data, res2.data, res.len) == 0)) ||
          is_outcome(data, size));
    apply(a, 2, 10, data, size, &res2); /* the same command from another client: new */
    apply(a, 0, 0, data, size, &res2);

    hamok_buf s1 = HAMOK_BUF_INIT, s2 = HAMOK_BUF_INIT;
    check(hamok__registry_snapshot(a, to_buf, &s1) == HAMOK_OK);
    check(hamok__registry_restore(b, s1.data, s1.len) == HAMOK_OK);
    check(hamok__registry_snapshot(b, to_buf, &s2) == HAMOK_OK);
    check(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);

    hamok_status st = hamok__registry_restore(b, data, size);
    check(st == HAMOK_OK || st == HAMOK_ERR_CORRUPT);

    hamok__buf_free(&s1);
    hamok__buf_free(&s2);
    hamok__buf_free(&res);
    hamok__buf_free(&res2);
    hamok__registry_destroy(&a);
    hamok__registry_destroy(&b);
    return 0;
}
