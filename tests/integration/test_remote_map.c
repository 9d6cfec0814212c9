/* The remote map on the in-process transport, over an in-memory store
 * written here (a real store: a table behind a mutex, with a token and an
 * outcome kept atomically with each commit, and fault injection): every op
 * and its result, events in one order on every peer, reads from any peer,
 * a map opened on an already-elected leader (original bug A3), store errors
 * answered with HAMOK_ERR_STORE (one refused request does not fail its
 * batch), a lost commit reply, a store without exactly-once support, the
 * leader lost between executing and publishing (exactly once: the new leader
 * republishes from the store), leader changes under a stream of writes, a
 * peer that joins by snapshot and then leads,
 * retries on a lossy network executed once, API misuse. Real threads and
 * clock; every wait is a condition with a deadline. */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hamok/map.h"
#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/remote_map.h"
#include "remote_test.h"

#define MAXN    4
#define WAIT_MS 15000
#define MAXE    4096

/* ------------------------------------------------------------------------ */
/* The in-memory store */

typedef struct entry {
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
} entry;

typedef struct mem_store {
    pthread_mutex_t mu;
    entry e[MAXE];
    size_t n;
    uint8_t token[64];
    size_t token_len;
    uint8_t *outcome;
    size_t outcome_len;
    /* fault injection */
    int fail_reads;     /* the next N get() calls fail */
    int fail_commits;   /* the next N commits fail before writing */
    int lose_replies;   /* the next N commits write, then report an error */
    const char *poison; /* a commit that writes this key fails */
    bool no_tokens;     /* a store without exactly-once support */
    void (*after_commit)(void *ud, const hamok_remote_commit *c);
    void *after_ud;
    /* what happened */
    uint64_t commits;
    uint64_t executed[MAXE]; /* request indices, in commit order */
    size_t n_executed;
    int dup_executions; /* a request index committed twice */
    uint32_t writes_of[MAXE];
} mem_store;

static void store_init(mem_store *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void store_fini(mem_store *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].key);
        free(s->e[i].val);
    }
    free(s->outcome);
    pthread_mutex_destroy(&s->mu);
}

static long find(mem_store *s, const void *k, size_t kl)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->e[i].klen == kl && memcmp(s->e[i].key, k, kl) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    assert_non_null(d);
    if (n > 0) {
        memcpy(d, p, n);
    }
    d[n] = '\0';
    return d;
}

static hamok_status ms_get(void *ud, const hamok_kv *keys, size_t n, hamok_remote_out *out)
{
    mem_store *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->fail_reads > 0) {
        s->fail_reads--;
        pthread_mutex_unlock(&s->mu);
        return HAMOK_ERR_IO;
    }
    hamok_status st = HAMOK_OK;
    for (size_t i = 0; i < n && st == HAMOK_OK; i++) {
        long j = find(s, keys[i].key, keys[i].key_len);
        if (j >= 0) {
            st = hamok_remote_out_put(out, s->e[j].key, s->e[j].klen, s->e[j].val, s->e[j].vlen);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static hamok_status ms_scan(void *ud, hamok_remote_out *out)
{
    mem_store *s = ud;
    pthread_mutex_lock(&s->mu);
    hamok_status st = HAMOK_OK;
    for (size_t i = 0; i < s->n && st == HAMOK_OK; i++) {
        st = hamok_remote_out_put(out, s->e[i].key, s->e[i].klen, s->e[i].val, s->e[i].vlen);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static hamok_status ms_size(void *ud, uint64_t *out)
{
    mem_store *s = ud;
    pthread_mutex_lock(&s->mu);
    *out = s->n;
    pthread_mutex_unlock(&s->mu);
    return HAMOK_OK;
}

static void del_at(mem_store *s, size_t i)
{
    free(s->e[i].key);
    free(s->e[i].val);
    s->e[i] = s->e[--s->n];
}

static hamok_status ms_commit(void *ud, const hamok_remote_commit *c)
{
    mem_store *s = ud;
    pthread_mutex_lock(&s->mu);
    if (!s->no_tokens &&
        (c->expect_token_len != s->token_len ||
         (s->token_len > 0 && memcmp(c->expect_token, s->token, s->token_len) != 0))) {
        pthread_mutex_unlock(&s->mu);
        return HAMOK_ERR_CONFLICT;
    }
    bool poisoned = false;
    for (size_t i = 0; i < c->n_changes && s->poison != NULL; i++) {
        poisoned |= c->changes[i].key_len == strlen(s->poison) &&
                    memcmp(c->changes[i].key, s->poison, c->changes[i].key_len) == 0;
    }
    if (s->fail_commits > 0 || poisoned) {
        s->fail_commits -= s->fail_commits > 0 ? 1 : 0;
        pthread_mutex_unlock(&s->mu);
        return HAMOK_ERR_IO;
    }
    if (c->clear) {
        while (s->n > 0) {
            del_at(s, s->n - 1);
        }
    }
    for (size_t i = 0; i < c->n_changes; i++) {
        const hamok_remote_change *ch = &c->changes[i];
        long j = find(s, ch->key, ch->key_len);
        if (ch->has_value) {
            if (j < 0) {
                assert_true(s->n < MAXE);
                j = (long)s->n++;
                s->e[j].key = dup_bytes(ch->key, ch->key_len);
                s->e[j].klen = ch->key_len;
                s->e[j].val = NULL;
            }
            free(s->e[j].val);
            s->e[j].val = dup_bytes(ch->value, ch->value_len);
            s->e[j].vlen = ch->value_len;
            /* test keys "w<number>": count writes per key */
            char kb[32];
            if (ch->key_len > 1 && ch->key_len < sizeof kb && ((const char *)ch->key)[0] == 'w') {
                memcpy(kb, ch->key, ch->key_len);
                kb[ch->key_len] = '\0';
                unsigned long k = strtoul(kb + 1, NULL, 10);
                if (k < MAXE) {
                    s->writes_of[k]++;
                }
            }
        } else if (j >= 0) {
            del_at(s, (size_t)j);
        }
    }
    assert_true(c->token_len <= sizeof s->token);
    memcpy(s->token, c->token, c->token_len);
    s->token_len = c->token_len;
    free(s->outcome);
    s->outcome = (uint8_t *)dup_bytes(c->outcome, c->outcome_len);
    s->outcome_len = c->outcome_len;
    s->commits++;
    for (size_t i = 0; i < c->n_indices; i++) {
        for (size_t j = 0; j < s->n_executed; j++) {
            s->dup_executions += s->executed[j] == c->indices[i] ? 1 : 0;
        }
        if (s->n_executed < MAXE) {
            s->executed[s->n_executed++] = c->indices[i];
        }
    }
    bool lose = s->lose_replies > 0;
    s->lose_replies -= lose ? 1 : 0;
    void (*hook)(void *, const hamok_remote_commit *) = s->after_commit;
    void *hook_ud = s->after_ud;
    pthread_mutex_unlock(&s->mu);
    if (hook != NULL) {
        hook(hook_ud, c);
    }
    return lose ? HAMOK_ERR_IO : HAMOK_OK;
}

static hamok_status ms_load(void *ud, hamok_remote_out *out)
{
    mem_store *s = ud;
    pthread_mutex_lock(&s->mu);
    hamok_status st = HAMOK_OK;
    if (s->token_len > 0) {
        st = hamok_remote_out_put(out, s->token, s->token_len, s->outcome, s->outcome_len);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static const hamok_remote_store_ops STORE_OPS = {
    HAMOK_REMOTE_STORE_ABI, ms_get, ms_scan, ms_size, ms_commit, ms_load};
/* At-least-once: no load, no size (counted by a scan). */
static const hamok_remote_store_ops PLAIN_OPS = {
    HAMOK_REMOTE_STORE_ABI, ms_get, ms_scan, NULL, ms_commit, NULL};

/* The value the store holds for a C-string key, or NULL (caller frees). */
static char *store_value(mem_store *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    long j = find(s, key, strlen(key));
    char *v = j >= 0 ? dup_bytes(s->e[j].val, s->e[j].vlen) : NULL;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Cluster */

typedef struct cluster {
    hamok_mem_hub *hub;
    hamok_node *nodes[MAXN];
    size_t n;
} cluster;

static hamok_node *start_node(cluster *c, size_t i)
{
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_cluster(cfg, "rm-test"), HAMOK_OK);
    assert_int_equal(hamok_config_set_timing(cfg, 150, 30), HAMOK_OK);
    assert_int_equal(hamok_config_set_peer_timeout(cfg, 0), HAMOK_OK);
    assert_int_equal(hamok_config_set_request_timeout(cfg, 1500), HAMOK_OK);
    assert_int_equal(hamok_config_set_snapshot_entries(cfg, 32), HAMOK_OK);
    hamok_transport *t;
    assert_int_equal(hamok_mem_transport_new(c->hub, &t), HAMOK_OK);
    assert_int_equal(hamok_node_new(&c->nodes[i], cfg, &t), HAMOK_OK);
    hamok_config_destroy(&cfg);
    return c->nodes[i];
}

static void cluster_start(cluster *c, size_t n)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(hamok_mem_hub_new(&c->hub), HAMOK_OK);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        start_node(c, i);
    }
    for (size_t i = 0; i < n; i++) {
        hamok_node_join_async(c->nodes[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hamok_node_join(c->nodes[i], WAIT_MS), HAMOK_OK);
    }
}

static void cluster_stop(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        hamok_node_destroy(&c->nodes[i]);
    }
    assert_int_equal(hamok_mem_hub_destroy(&c->hub), HAMOK_OK);
}

typedef struct one_leader {
    cluster *c;
    size_t not ; /* a node that must not be the leader (SIZE_MAX: any) */
} one_leader;

static size_t leader_of(cluster *c, size_t not )
{
    for (size_t i = 0; i < c->n; i++) {
        if (i != not &&c->nodes[i] != NULL && hamok_node_is_leader(c->nodes[i])) {
            return i;
        }
    }
    return SIZE_MAX;
}

static bool has_leader(void *ud)
{
    one_leader *o = ud;
    size_t l = leader_of(o->c, o->not );
    if (l == SIZE_MAX) {
        return false;
    }
    /* ... that every other live node agrees on */
    hamok_id id = hamok_node_id(o->c->nodes[l]);
    for (size_t i = 0; i < o->c->n; i++) {
        hamok_id got;
        if (i == o->not || o->c->nodes[i] == NULL) {
            continue;
        }
        if (!hamok_node_leader_id(o->c->nodes[i], &got) || memcmp(&got, &id, sizeof id) != 0) {
            return false;
        }
    }
    return true;
}

/* Three peers with a leader everyone agrees on. */
static void start3(cluster *c)
{
    cluster_start(c, 3);
    one_leader ol = {c, SIZE_MAX};
    assert_true(wait_for(has_leader, &ol, WAIT_MS));
}

/* Open `name` over `s` on every peer; listen into evs[i] when evs is set. */
static void open_all(cluster *c, const char *name, mem_store *s, hamok_remote_map **m, ev_log *evs)
{
    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(hamok_remote_map_open(c->nodes[i], name, &STORE_OPS, s, &m[i]), HAMOK_OK);
        if (evs != NULL) {
            ev_init(&evs[i]);
            assert_int_equal(hamok_remote_map_on(m[i], on_event, &evs[i]), HAMOK_OK);
        }
    }
}

/* Close every map, stop the peers, free the store. */
static void stop_all(cluster *c, mem_store *s, hamok_remote_map **m)
{
    for (size_t i = 0; i < c->n; i++) {
        hamok_remote_map_close(&m[i]);
    }
    cluster_stop(c);
    store_fini(s);
}

/* ------------------------------------------------------------------------ */
/* Events, per peer */

typedef struct ev_wait {
    ev_log *logs;
    size_t n;
    int want;
} ev_wait;

static bool all_have(void *ud)
{
    ev_wait *w = ud;
    for (size_t i = 0; i < w->n; i++) {
        if (ev_count(&w->logs[i]) < w->want) {
            return false;
        }
    }
    return true;
}

static void expect_lines(ev_log *l, const char *const *want, int n)
{
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < n && i < l->n; i++) {
        if (strcmp(l->lines[i], want[i]) != 0) {
            pthread_mutex_unlock(&l->mu);
            fail_msg("event %d: got '%s', want '%s'", i, l->lines[i], want[i]);
        }
    }
    int got = l->n;
    pthread_mutex_unlock(&l->mu);
    if (got != n) {
        fail_msg("got %d events, want %d", got, n);
    }
}

/* ------------------------------------------------------------------------ */

/* One peer, the map opened after the peer became leader (bug A3 of the
 * original: it never executed anything), every op and its result. */
static void test_every_op_on_elected_leader(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 1);
    assert_true(hamok_node_is_leader(c.nodes[0]));
    mem_store s;
    store_init(&s);
    hamok_remote_map *m;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, &m), HAMOK_OK);
    ev_log evs;
    ev_init(&evs);
    assert_int_equal(hamok_remote_map_on(m, on_event, &evs), HAMOK_OK);

    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(m, "a", "1", &old, WAIT_MS), HAMOK_OK);
    assert_false(old.present);
    assert_int_equal(hamok_remote_map_set_str(m, "a", "2", &old, WAIT_MS), HAMOK_OK);
    assert_true(old.present);
    assert_string_equal(old.data, "1");
    hamok_value_free(&old);
    /* Reads go to the store and see every write that returned. */
    hamok_value v;
    assert_int_equal(hamok_remote_map_get_str(m, "a", &v), HAMOK_OK);
    assert_string_equal(v.data, "2");
    hamok_value_free(&v);
    assert_int_equal(hamok_remote_map_get_str(m, "nope", &v), HAMOK_ERR_NOT_FOUND);
    assert_false(v.present);
    /* Insert never overwrites (original bug A8) and answers what stays. */
    hamok_value existing;
    assert_int_equal(hamok_remote_map_insert(m, "a", 1, "x", 1, &existing, WAIT_MS), HAMOK_OK);
    assert_true(existing.present);
    assert_string_equal(existing.data, "2");
    hamok_value_free(&existing);
    char *sv = store_value(&s, "a");
    assert_string_equal(sv, "2");
    free(sv);
    assert_int_equal(hamok_remote_map_insert(m, "b", 1, "", 0, &existing, WAIT_MS), HAMOK_OK);
    assert_false(existing.present);
    /* Compare and set: an empty value is a value. */
    bool done = true;
    assert_int_equal(hamok_remote_map_update_if(m, "b", 1, "B", 1, "z", 1, &done, WAIT_MS),
                     HAMOK_OK);
    assert_false(done);
    assert_int_equal(hamok_remote_map_update_if(m, "b", 1, "B", 1, "", 0, &done, WAIT_MS),
                     HAMOK_OK);
    assert_true(done);
    assert_int_equal(hamok_remote_map_update_if(m, "zz", 2, "B", 1, "", 0, &done, WAIT_MS),
                     HAMOK_OK);
    assert_false(done);
    /* Multi-key writes. */
    hamok_kv kvs[3] = {{"c", 1, true, "3", 1}, {"d", 1, true, "4", 1}, {"a", 1, true, "A", 1}};
    hamok_kvs out;
    assert_int_equal(hamok_remote_map_set_all(m, kvs, 3, &out, WAIT_MS), HAMOK_OK);
    assert_int_equal(out.n, 1);
    assert_memory_equal(out.items[0].key, "a", 1);
    assert_memory_equal(out.items[0].value, "2", 1);
    hamok_kvs_free(&out);
    hamok_kv ins[2] = {{"c", 1, true, "no", 2}, {"e", 1, true, "5", 1}};
    assert_int_equal(hamok_remote_map_insert_all(m, ins, 2, &out, WAIT_MS), HAMOK_OK);
    assert_int_equal(out.n, 1);
    assert_memory_equal(out.items[0].value, "3", 1);
    hamok_kvs_free(&out);
    uint64_t size = 0;
    assert_int_equal(hamok_remote_map_size(m, &size), HAMOK_OK);
    assert_int_equal(size, 5);
    hamok_kv gk[3] = {{"a", 1, false, NULL, 0}, {"q", 1, false, NULL, 0}, {"e", 1, false, NULL, 0}};
    assert_int_equal(hamok_remote_map_get_all(m, gk, 3, &out), HAMOK_OK);
    assert_int_equal(out.n, 2);
    hamok_kvs_free(&out);
    assert_int_equal(hamok_remote_map_keys(m, &out), HAMOK_OK);
    assert_int_equal(out.n, 5);
    assert_false(out.items[0].has_value);
    hamok_kvs_free(&out);
    /* Deletes and removes. */
    bool deleted = false;
    assert_int_equal(hamok_remote_map_delete(m, "d", 1, &deleted, WAIT_MS), HAMOK_OK);
    assert_true(deleted);
    assert_int_equal(hamok_remote_map_delete(m, "d", 1, &deleted, WAIT_MS), HAMOK_OK);
    assert_false(deleted);
    hamok_value removed;
    assert_int_equal(hamok_remote_map_remove(m, "e", 1, &removed, WAIT_MS), HAMOK_OK);
    assert_true(removed.present);
    assert_string_equal(removed.data, "5");
    hamok_value_free(&removed);
    hamok_kv dk[2] = {{"b", 1, false, NULL, 0}, {"zz", 2, false, NULL, 0}};
    assert_int_equal(hamok_remote_map_remove_all(m, dk, 2, &out, WAIT_MS), HAMOK_OK);
    assert_int_equal(out.n, 1);
    assert_memory_equal(out.items[0].value, "B", 1);
    hamok_kvs_free(&out);
    hamok_kv dk2[1] = {{"c", 1, false, NULL, 0}};
    assert_int_equal(hamok_remote_map_delete_all(m, dk2, 1, &out, WAIT_MS), HAMOK_OK);
    assert_int_equal(out.n, 1);
    hamok_kvs_free(&out);
    assert_int_equal(hamok_remote_map_clear(m, WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_remote_map_size(m, &size), HAMOK_OK);
    assert_int_equal(size, 0);

    const char *const want[] = {
        "insert a v=1",   "update a old=1 v=2", "insert b v=",        "update b old= v=B",
        "insert c v=3",   "insert d v=4",       "update a old=2 v=A", "insert e v=5",
        "remove d old=4", "remove e old=5",     "remove b old=B",     "remove c old=3",
        "clear",
    };
    expect_lines(&evs, want, (int)(sizeof want / sizeof want[0]));
    /* Exactly once: every request executed one time. */
    assert_int_equal(s.dup_executions, 0);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(m, &st);
    assert_int_equal(st.executed, 15);
    assert_int_equal(st.store_errors, 0);
    hamok_remote_map_close(&m);
    assert_null(m);
    cluster_stop(&c);
    store_fini(&s);
}

typedef struct writer {
    hamok_remote_map *m;
    int first, count;
    atomic_int ok;
    atomic_int unknown;
    atomic_bool stop;
} writer;

static void *write_loop(void *arg)
{
    writer *w = arg;
    for (int i = w->first; i < w->first + w->count && !atomic_load(&w->stop); i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "w%d", i);
        snprintf(val, sizeof val, "v%d", i);
        hamok_status st = hamok_remote_map_set_str(w->m, key, val, NULL, WAIT_MS);
        if (st == HAMOK_OK) {
            atomic_fetch_add(&w->ok, 1);
        } else {
            atomic_fetch_add(&w->unknown, 1);
        }
    }
    return NULL;
}

/* Three peers share one store: writes from every peer, the same events in
 * the same order everywhere, reads from any peer see returned writes. */
static void test_three_peers_events(void **state)
{
    (void)state;
    cluster c;
    start3(&c);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m[3];
    static ev_log evs[3];
    open_all(&c, "shared", &s, m, evs);
    /* Concurrent writers on every peer (batches form). */
    static writer ws[3];
    pthread_t th[3];
    for (size_t i = 0; i < 3; i++) {
        ws[i] = (writer){.m = m[i], .first = (int)i * 40, .count = 40};
        assert_int_equal(pthread_create(&th[i], NULL, write_loop, &ws[i]), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&ws[i].ok), 40);
    }
    /* Each peer reads every key, whoever wrote it. */
    for (int k = 0; k < 120; k++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "w%d", k);
        snprintf(val, sizeof val, "v%d", k);
        hamok_value v;
        assert_int_equal(hamok_remote_map_get_str(m[k % 3], key, &v), HAMOK_OK);
        assert_string_equal(v.data, val);
        hamok_value_free(&v);
    }
    size_t f = (leader_of(&c, SIZE_MAX) + 1) % 3;
    assert_int_equal(hamok_remote_map_delete(m[f], "w0", 2, NULL, WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_remote_map_clear(m[f], WAIT_MS), HAMOK_OK);
    ev_wait ew = {evs, 3, 122};
    assert_true(wait_for(all_have, &ew, WAIT_MS));
    /* The same events, in the same order, on every peer. */
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(ev_count(&evs[i]), ev_count(&evs[0]));
        for (int k = 0; k < evs[0].n; k++) {
            assert_string_equal(evs[i].lines[k], evs[0].lines[k]);
        }
    }
    assert_string_equal(evs[0].lines[121], "clear");
    assert_int_equal(s.dup_executions, 0);
    for (int k = 0; k < 120; k++) {
        assert_int_equal(s.writes_of[k], 1);
    }
    /* Several requests went into one store commit. */
    assert_true(s.commits < 122);
    printf("  122 requests in %llu store commits\n", (unsigned long long)s.commits);
    stop_all(&c, &s, m);
}

typedef struct async_res {
    atomic_int done;
    hamok_status st[8];
} async_res;

static void on_async(void *ud, hamok_status st, const hamok_result *r)
{
    (void)r;
    async_res *a = ud;
    int i = atomic_load(&a->done);
    a->st[i] = st;
    atomic_fetch_add(&a->done, 1);
}

typedef struct int_at_least {
    atomic_int *v;
    int want;
} int_at_least;

static bool at_least(void *ud)
{
    int_at_least *w = ud;
    return atomic_load(w->v) >= w->want;
}

/* Store errors fail the request they belong to with HAMOK_ERR_STORE (never
 * a timeout); other requests of the same batch still succeed. */
static void test_store_errors(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 1);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, &m), HAMOK_OK);
    /* A failed read. */
    pthread_mutex_lock(&s.mu);
    s.fail_reads = 1;
    pthread_mutex_unlock(&s.mu);
    uint64_t t0 = now_ms();
    assert_int_equal(hamok_remote_map_set_str(m, "k", "v", NULL, WAIT_MS), HAMOK_ERR_STORE);
    assert_true(now_ms() - t0 < 1000); /* an answer, not a timeout */
    /* A failed commit. */
    pthread_mutex_lock(&s.mu);
    s.fail_commits = 1;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(hamok_remote_map_set_str(m, "k", "v", NULL, WAIT_MS), HAMOK_ERR_STORE);
    char *sv = store_value(&s, "k");
    assert_null(sv);
    /* A read failure on the API side. */
    pthread_mutex_lock(&s.mu);
    s.fail_reads = 1;
    pthread_mutex_unlock(&s.mu);
    hamok_value v;
    assert_int_equal(hamok_remote_map_get_str(m, "k", &v), HAMOK_ERR_STORE);
    /* One refused key among concurrent requests: only its request fails. */
    pthread_mutex_lock(&s.mu);
    s.poison = "bad";
    pthread_mutex_unlock(&s.mu);
    async_res a;
    memset(&a, 0, sizeof a);
    const char *keys[5] = {"g1", "g2", "bad", "g3", "g4"};
    for (int i = 0; i < 5; i++) {
        hamok_remote_map_set_async(m, keys[i], strlen(keys[i]), "x", 1, WAIT_MS, on_async, &a);
    }
    int_at_least w5 = {&a.done, 5};
    assert_true(wait_for(at_least, &w5, WAIT_MS));
    int stores = 0, oks = 0;
    for (int i = 0; i < 5; i++) {
        stores += a.st[i] == HAMOK_ERR_STORE;
        oks += a.st[i] == HAMOK_OK;
    }
    assert_int_equal(stores, 1);
    assert_int_equal(oks, 4);
    for (int i = 0; i < 5; i++) {
        sv = store_value(&s, keys[i]);
        if (i == 2) {
            assert_null(sv);
        } else {
            assert_string_equal(sv, "x");
        }
        free(sv);
    }
    pthread_mutex_lock(&s.mu);
    s.poison = NULL;
    /* A commit whose reply is lost: the token says it was written. */
    s.lose_replies = 1;
    pthread_mutex_unlock(&s.mu);
    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(m, "g1", "y", &old, WAIT_MS), HAMOK_OK);
    assert_true(old.present);
    assert_string_equal(old.data, "x");
    hamok_value_free(&old);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(m, &st);
    assert_true(st.store_errors >= 4);
    assert_int_equal(s.dup_executions, 0);
    hamok_remote_map_close(&m);

    /* A store without load: a failed commit is an error too. */
    mem_store p;
    store_init(&p);
    p.no_tokens = true;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "plain", &PLAIN_OPS, &p, &m), HAMOK_OK);
    assert_int_equal(hamok_remote_map_set_str(m, "k", "v", NULL, WAIT_MS), HAMOK_OK);
    pthread_mutex_lock(&p.mu);
    p.fail_commits = 1;
    pthread_mutex_unlock(&p.mu);
    assert_int_equal(hamok_remote_map_set_str(m, "k", "w", NULL, WAIT_MS), HAMOK_ERR_STORE);
    uint64_t size = 0;
    assert_int_equal(hamok_remote_map_size(m, &size), HAMOK_OK); /* counted by a scan */
    assert_int_equal(size, 1);
    assert_int_equal(hamok_remote_map_get_str(m, "k", &v), HAMOK_OK);
    assert_string_equal(v.data, "v");
    hamok_value_free(&v);
    hamok_remote_map_close(&m);
    cluster_stop(&c);
    store_fini(&s);
    store_fini(&p);
}

/* The leader is cut off right after its store commit, before its outcomes
 * can commit: the new leader must not skip the write, nor execute it again. */
typedef struct crash_ctx {
    cluster *c;
    atomic_int armed; /* isolate the committing leader on the next commit */
    atomic_int fired;
    size_t victim;
} crash_ctx;

static void isolate_leader(void *ud, const hamok_remote_commit *cm)
{
    (void)cm;
    crash_ctx *x = ud;
    if (atomic_exchange(&x->armed, 0) == 1) {
        size_t l = leader_of(x->c, SIZE_MAX);
        x->victim = l;
        hamok_id id = hamok_node_id(x->c->nodes[l]);
        assert_int_equal(hamok_mem_hub_isolate(x->c->hub, &id, true), HAMOK_OK);
        atomic_store(&x->fired, 1);
    }
}

static void test_leader_lost_after_execute(void **state)
{
    (void)state;
    cluster c;
    start3(&c);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m[3];
    static ev_log evs[3];
    open_all(&c, "crash", &s, m, evs);
    size_t l = leader_of(&c, SIZE_MAX);
    size_t f = (l + 1) % 3;
    assert_int_equal(hamok_remote_map_set_str(m[f], "k", "before", NULL, WAIT_MS), HAMOK_OK);
    crash_ctx x = {.c = &c};
    atomic_store(&x.armed, 1);
    pthread_mutex_lock(&s.mu);
    s.after_commit = isolate_leader;
    s.after_ud = &x;
    pthread_mutex_unlock(&s.mu);
    /* From a follower: executed by the leader, which is then cut off. */
    hamok_value old;
    uint64_t t0 = now_ms();
    assert_int_equal(hamok_remote_map_set_str(m[f], "k", "after", &old, WAIT_MS), HAMOK_OK);
    printf("  answered %llu ms after the leader was cut off\n",
           (unsigned long long)(now_ms() - t0));
    assert_int_equal(atomic_load(&x.fired), 1);
    assert_int_equal(x.victim, l);
    /* The real result (the old value), from the outcome the store kept. */
    assert_true(old.present);
    assert_string_equal(old.data, "before");
    hamok_value_free(&old);
    pthread_mutex_lock(&s.mu);
    s.after_commit = NULL;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(s.dup_executions, 0);
    size_t nl = leader_of(&c, l);
    assert_true(nl != SIZE_MAX);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(m[nl], &st);
    assert_true(st.recovered >= 1);
    /* The survivors saw each event once. */
    ev_wait ew = {&evs[f], 1, 2};
    assert_true(wait_for(all_have, &ew, WAIT_MS));
    const char *const want[] = {"insert k v=before", "update k old=before v=after"};
    expect_lines(&evs[f], want, 2);
    /* The old leader comes back, learns the outcome, and the map goes on. */
    hamok_id id = hamok_node_id(c.nodes[l]);
    assert_int_equal(hamok_mem_hub_isolate(c.hub, &id, false), HAMOK_OK);
    assert_int_equal(hamok_remote_map_set_str(m[l], "k", "again", &old, WAIT_MS), HAMOK_OK);
    assert_string_equal(old.data, "after");
    hamok_value_free(&old);
    ev_wait all3 = {evs, 3, 3};
    assert_true(wait_for(all_have, &all3, WAIT_MS));
    const char *const want3[] = {"insert k v=before", "update k old=before v=after",
                                 "update k old=after v=again"};
    for (size_t i = 0; i < 3; i++) {
        expect_lines(&evs[i], want3, 3);
    }
    assert_int_equal(s.dup_executions, 0);
    stop_all(&c, &s, m);
}

/* Leader changes under a stream of writes: no acknowledged write is lost,
 * none is executed twice. */
static void test_leader_changes_mid_stream(void **state)
{
    (void)state;
    cluster c;
    start3(&c);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m[3];
    open_all(&c, "stream", &s, m, NULL);
    /* Two writers, each on a peer that is not the leader at the start. */
    size_t l = leader_of(&c, SIZE_MAX);
    static writer ws[2];
    pthread_t th[2];
    for (size_t i = 0; i < 2; i++) {
        ws[i] = (writer){.m = m[(l + 1 + i) % 3], .first = (int)i * 1000, .count = 1000};
        assert_int_equal(pthread_create(&th[i], NULL, write_loop, &ws[i]), 0);
    }
    /* Move leadership twice while they write. */
    for (int round = 0; round < 2; round++) {
        int_at_least some = {&ws[0].ok, 40 * (round + 1)};
        assert_true(wait_for(at_least, &some, WAIT_MS));
        size_t cur = leader_of(&c, SIZE_MAX);
        if (cur != SIZE_MAX) {
            (void)hamok_node_transfer_leadership(c.nodes[cur], NULL, WAIT_MS);
        }
        one_leader other = {&c, cur};
        assert_true(wait_for(has_leader, &other, WAIT_MS));
    }
    int_at_least more = {&ws[0].ok, 150};
    assert_true(wait_for(at_least, &more, WAIT_MS));
    for (size_t i = 0; i < 2; i++) {
        atomic_store(&ws[i].stop, true);
        pthread_join(th[i], NULL);
    }
    /* Every acknowledged write is in the store, each executed once. */
    int acked = 0;
    for (size_t i = 0; i < 2; i++) {
        acked += atomic_load(&ws[i].ok);
        for (int k = ws[i].first; k < ws[i].first + atomic_load(&ws[i].ok); k++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "w%d", k);
            snprintf(val, sizeof val, "v%d", k);
            char *sv = store_value(&s, key);
            assert_non_null(sv);
            assert_string_equal(sv, val);
            free(sv);
        }
    }
    assert_int_equal(s.dup_executions, 0);
    for (int k = 0; k < 2000; k++) {
        assert_true(s.writes_of[k] <= 1);
    }
    printf("  %d writes acknowledged across 2 leader changes, %d unknown\n", acked,
           atomic_load(&ws[0].unknown) + atomic_load(&ws[1].unknown));
    stop_all(&c, &s, m);
}

/* A lossy network makes followers retry their submits: the log may hold a
 * request twice, the store sees it once. */
static void test_retries_execute_once(void **state)
{
    (void)state;
    cluster c;
    start3(&c);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m[3];
    open_all(&c, "lossy", &s, m, NULL);
    size_t f = (leader_of(&c, SIZE_MAX) + 1) % 3;
    assert_int_equal(hamok_mem_hub_set_drop(c.hub, 150), HAMOK_OK);
    int ok = 0;
    for (int k = 0; k < 60; k++) {
        char key[32];
        snprintf(key, sizeof key, "w%d", k);
        hamok_value old;
        hamok_status st = hamok_remote_map_set(m[f], key, strlen(key), "1", 1, &old, WAIT_MS);
        if (st == HAMOK_OK) {
            ok++;
            assert_false(old.present); /* its first execution answered */
        }
        hamok_value_free(&old);
    }
    hamok_mem_hub_heal(c.hub);
    /* Once every queued duplicate could have run: a write of the key again. */
    assert_int_equal(hamok_remote_map_set_str(m[f], "barrier", "x", NULL, WAIT_MS), HAMOK_OK);
    printf("  %d of 60 sets acknowledged at 15%% loss\n", ok);
    assert_true(ok >= 50);
    assert_int_equal(s.dup_executions, 0);
    for (int k = 0; k < 60; k++) {
        assert_true(s.writes_of[k] <= 1); /* a duplicate request would write again */
    }
    stop_all(&c, &s, m);
}

static bool is_leader_cond(void *ud)
{
    return hamok_node_is_leader(ud);
}

/* A peer that joins by snapshot (the remote map's queue and epoch restored
 * from it, never its data) becomes leader and executes. */
static void test_snapshot_joiner_leads(void **state)
{
    (void)state;
    cluster c;
    start3(&c);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m[MAXN] = {NULL};
    open_all(&c, "snap", &s, m, NULL);
    for (int k = 0; k < 700; k++) { /* ~1,400 entries: past the 1,024 kept after a snapshot */
        char key[16];
        snprintf(key, sizeof key, "w%d", k);
        assert_int_equal(hamok_remote_map_set_str(m[k % 3], key, "1", NULL, WAIT_MS), HAMOK_OK);
    }
    hamok_node *late = start_node(&c, 3);
    c.n = 4;
    assert_int_equal(hamok_node_join(late, WAIT_MS), HAMOK_OK);
    hamok_node_stats ns;
    hamok_node_stats_get(late, &ns);
    assert_true(ns.snapshots_installed >= 1);
    assert_int_equal(hamok_remote_map_open(late, "snap", &STORE_OPS, &s, &m[3]), HAMOK_OK);
    hamok_id target = hamok_node_id(late);
    size_t l = leader_of(&c, SIZE_MAX);
    assert_int_equal(hamok_node_transfer_leadership(c.nodes[l], &target, WAIT_MS), HAMOK_OK);
    /* The old leader saw the late peer lead; the late peer's own view is
     * published at the end of its loop turn, which may come a moment later. */
    assert_true(wait_for(is_leader_cond, late, WAIT_MS));
    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(m[0], "w5", "2", &old, WAIT_MS), HAMOK_OK);
    assert_true(old.present);
    assert_string_equal(old.data, "1");
    hamok_value_free(&old);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(m[3], &st);
    assert_true(st.executed >= 1); /* the late peer executed it */
    assert_int_equal(s.dup_executions, 0);
    stop_all(&c, &s, m);
}

typedef struct loop_read {
    hamok_remote_map *m;
    atomic_int status; /* -1 until the event fired */
} loop_read;

static void read_in_event(void *ud, const hamok_map_event *ev)
{
    (void)ev;
    loop_read *r = ud;
    hamok_value v;
    atomic_store(&r->status, (int)hamok_remote_map_get_str(r->m, "k", &v));
}

static bool status_set(void *ud)
{
    return atomic_load(&((loop_read *)ud)->status) >= 0;
}

static void test_misuse(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 1);
    mem_store s;
    store_init(&s);
    hamok_remote_map *m = (hamok_remote_map *)&s;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", NULL, &s, &m), HAMOK_ERR_INVALID);
    assert_null(m);
    hamok_remote_store_ops bad = STORE_OPS;
    bad.abi = 99;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &bad, &s, &m), HAMOK_ERR_INVALID);
    bad = STORE_OPS;
    bad.commit = NULL;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &bad, &s, &m), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "", &STORE_OPS, &s, &m), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_open(NULL, "rm", &STORE_OPS, &s, &m), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, NULL),
                     HAMOK_ERR_INVALID);
    /* A name is one kind. */
    hamok_map *plain;
    assert_int_equal(hamok_map_open(c.nodes[0], "taken", &plain), HAMOK_OK);
    assert_int_equal(hamok_map_set_str(plain, "k", "v", NULL, WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "taken", &STORE_OPS, &s, &m),
                     HAMOK_ERR_WRONG_KIND);
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, &m), HAMOK_OK);
    assert_int_equal(hamok_remote_map_set_str(m, "k", "v", NULL, WAIT_MS), HAMOK_OK);
    hamok_map *wrong;
    assert_int_equal(hamok_map_open(c.nodes[0], "rm", &wrong), HAMOK_ERR_WRONG_KIND);
    /* One executor per node. */
    hamok_remote_map *again;
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, &again),
                     HAMOK_ERR_BUSY);
    /* Reads are refused on the loop thread (they may block). */
    loop_read lr = {.m = m};
    atomic_store(&lr.status, -1);
    assert_int_equal(hamok_remote_map_on(m, read_in_event, &lr), HAMOK_OK);
    assert_int_equal(hamok_remote_map_set_str(m, "k", "w", NULL, WAIT_MS), HAMOK_OK);
    assert_true(wait_for(status_set, &lr, WAIT_MS));
    assert_int_equal(atomic_load(&lr.status), HAMOK_ERR_STATE);
    assert_int_equal(hamok_remote_map_off(m, read_in_event, &lr), HAMOK_OK);
    assert_int_equal(hamok_remote_map_off(m, read_in_event, &lr), HAMOK_ERR_NOT_FOUND);
    /* NULL handles and arguments. */
    hamok_value v;
    assert_int_equal(hamok_remote_map_get(NULL, "k", 1, &v), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_get(m, NULL, 1, &v), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_get(m, "k", 1, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_set(NULL, "k", 1, "v", 1, NULL, 10), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_set(m, "k", 1, NULL, 1, NULL, 10), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_set_all(m, NULL, 1, NULL, 10), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_clear(NULL, 10), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_foreach(m, NULL, NULL), HAMOK_ERR_INVALID);
    uint64_t size;
    assert_int_equal(hamok_remote_map_size(NULL, &size), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_map_on(NULL, on_event, NULL), HAMOK_ERR_INVALID);
    async_res a;
    memset(&a, 0, sizeof a);
    hamok_remote_map_set_async(NULL, "k", 1, "v", 1, 10, on_async, &a);
    assert_int_equal(a.st[0], HAMOK_ERR_INVALID);
    assert_int_equal(hamok_remote_out_put(NULL, "k", 1, "v", 1), HAMOK_ERR_INVALID);
    hamok_remote_map_close(NULL);
    hamok_remote_map *null_map = NULL;
    hamok_remote_map_close(&null_map);
    hamok_remote_map_close(&m);
    /* Closed: the name can be opened again on this node. */
    assert_int_equal(hamok_remote_map_open(c.nodes[0], "rm", &STORE_OPS, &s, &m), HAMOK_OK);
    assert_int_equal(hamok_remote_map_get_str(m, "k", &v), HAMOK_OK);
    assert_string_equal(v.data, "w");
    hamok_value_free(&v);
    hamok_remote_map_close(&m);
    hamok_map_close(&plain);
    cluster_stop(&c);
    store_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_on_elected_leader),
        cmocka_unit_test(test_three_peers_events),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_leader_lost_after_execute),
        cmocka_unit_test(test_leader_changes_mid_stream),
        cmocka_unit_test(test_retries_execute_once),
        cmocka_unit_test(test_snapshot_joiner_leads),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
