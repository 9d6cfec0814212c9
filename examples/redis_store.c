/* A remote-map store over a Redis hash: see redis_store.h. */
#include "redis_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

struct hamok_redis_store {
    pthread_mutex_t mu;
    redisContext *c; /* NULL after a failure: reconnect on the next call */
    char *host;
    int port;
    struct timeval tv;
    char *hash; /* the data */
    char *meta; /* "<hash>:hamok": token and outcome */
};

/* KEYS[1] data, KEYS[2] meta; ARGV: expected token, token, outcome, clear
 * ("1"/"0"), then per change "s" key value | "d" key. Returns 1, or 0 when
 * the stored token is not the expected one (nothing written). */
static const char COMMIT_LUA[] =
    "local cur = redis.call('HGET', KEYS[2], 'token')\n"
    "if not cur then cur = '' end\n"
    "if cur ~= ARGV[1] then return 0 end\n"
    "if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end\n"
    "local i = 5\n"
    "while i <= #ARGV do\n"
    "  if ARGV[i] == 's' then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])\n"
    "    i = i + 3\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], ARGV[i + 1])\n"
    "    i = i + 2\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'token', ARGV[2], 'outcome', ARGV[3])\n"
    "return 1\n";

static char *str_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n + 1);
    }
    return d;
}

/* The connection (opened if needed), under s->mu. */
static redisContext *conn(hamok_redis_store *s)
{
    if (s->c != NULL && s->c->err == 0) {
        return s->c;
    }
    if (s->c != NULL) {
        redisFree(s->c);
    }
    s->c = redisConnectWithTimeout(s->host, s->port, s->tv);
    if (s->c == NULL || s->c->err != 0) {
        fprintf(stderr, "redis_store: cannot connect to %s:%d: %s\n", s->host, s->port,
                s->c != NULL ? s->c->errstr : "out of memory");
        if (s->c != NULL) {
            redisFree(s->c);
        }
        s->c = NULL;
        return NULL;
    }
    redisSetTimeout(s->c, s->tv);
    return s->c;
}

/* Run a command; NULL on a transport failure (the connection is dropped). */
static redisReply *run(hamok_redis_store *s, int argc, const char **argv, const size_t *lens)
{
    redisContext *c = conn(s);
    if (c == NULL) {
        return NULL;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r == NULL) {
        redisFree(s->c);
        s->c = NULL;
    }
    return r;
}

static hamok_status reply_error(redisReply *r)
{
    if (r == NULL) {
        return HAMOK_ERR_TRANSPORT;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis_store: %.*s\n", (int)r->len, r->str);
        return HAMOK_ERR_IO;
    }
    return HAMOK_OK;
}

hamok_status hamok_redis_store_new(const char *host, int port, const char *hash, int timeout_ms,
                                   hamok_redis_store **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    if (host == NULL || hash == NULL || hash[0] == '\0' || port <= 0 || timeout_ms <= 0) {
        return HAMOK_ERR_INVALID;
    }
    hamok_redis_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->host = str_dup(host);
    s->hash = str_dup(hash);
    s->meta = malloc(strlen(hash) + sizeof ":hamok");
    s->port = port;
    s->tv.tv_sec = timeout_ms / 1000;
    s->tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (s->host == NULL || s->hash == NULL || s->meta == NULL) {
        hamok_redis_store_destroy(&s);
        return HAMOK_ERR_NOMEM;
    }
    snprintf(s->meta, strlen(hash) + sizeof ":hamok", "%s:hamok", hash);
    pthread_mutex_lock(&s->mu);
    redisContext *c = conn(s);
    pthread_mutex_unlock(&s->mu);
    if (c == NULL) {
        hamok_redis_store_destroy(&s);
        return HAMOK_ERR_TRANSPORT;
    }
    *out = s;
    return HAMOK_OK;
}

void hamok_redis_store_destroy(hamok_redis_store **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    hamok_redis_store *s = *sp;
    *sp = NULL;
    if (s->c != NULL) {
        redisFree(s->c);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->host);
    free(s->hash);
    free(s->meta);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* The vtable */

static hamok_status rs_get(void *store, const hamok_kv *keys, size_t n, hamok_remote_out *out)
{
    hamok_redis_store *s = store;
    if (n == 0) {
        return HAMOK_OK;
    }
    const char **argv = malloc((n + 2) * sizeof *argv);
    size_t *lens = malloc((n + 2) * sizeof *lens);
    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return HAMOK_ERR_NOMEM;
    }
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = s->hash;
    lens[1] = strlen(s->hash);
    for (size_t i = 0; i < n; i++) {
        argv[i + 2] = keys[i].key_len > 0 ? keys[i].key : "";
        lens[i + 2] = keys[i].key_len;
    }
    pthread_mutex_lock(&s->mu);
    redisReply *r = run(s, (int)(n + 2), argv, lens);
    pthread_mutex_unlock(&s->mu);
    free(argv);
    free(lens);
    hamok_status st = reply_error(r);
    if (st == HAMOK_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != n)) {
        st = HAMOK_ERR_IO;
    }
    for (size_t i = 0; st == HAMOK_OK && i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            st = hamok_remote_out_put(out, keys[i].key, keys[i].key_len, e->str, e->len);
        }
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return st;
}

static hamok_status rs_scan(void *store, hamok_remote_out *out)
{
    hamok_redis_store *s = store;
    char cursor[32] = "0";
    hamok_status st = HAMOK_OK;
    do {
        const char *argv[5] = {"HSCAN", s->hash, cursor, "COUNT", "512"};
        size_t lens[5] = {5, strlen(s->hash), strlen(cursor), 5, 3};
        pthread_mutex_lock(&s->mu);
        redisReply *r = run(s, 5, argv, lens);
        pthread_mutex_unlock(&s->mu);
        st = reply_error(r);
        if (st == HAMOK_OK &&
            (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
             r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof cursor ||
             r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements % 2 != 0)) {
            st = HAMOK_ERR_IO;
        }
        if (st == HAMOK_OK) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len);
            cursor[r->element[0]->len] = '\0';
            const redisReply *kv = r->element[1];
            for (size_t i = 0; st == HAMOK_OK && i < kv->elements; i += 2) {
                st = hamok_remote_out_put(out, kv->element[i]->str, kv->element[i]->len,
                                          kv->element[i + 1]->str, kv->element[i + 1]->len);
            }
        }
        if (r != NULL) {
            freeReplyObject(r);
        }
    } while (st == HAMOK_OK && strcmp(cursor, "0") != 0);
    return st;
}

static hamok_status rs_size(void *store, uint64_t *n)
{
    hamok_redis_store *s = store;
    const char *argv[2] = {"HLEN", s->hash};
    size_t lens[2] = {4, strlen(s->hash)};
    pthread_mutex_lock(&s->mu);
    redisReply *r = run(s, 2, argv, lens);
    pthread_mutex_unlock(&s->mu);
    hamok_status st = reply_error(r);
    if (st == HAMOK_OK && (r->type != REDIS_REPLY_INTEGER || r->integer < 0)) {
        st = HAMOK_ERR_IO;
    }
    if (st == HAMOK_OK) {
        *n = (uint64_t)r->integer;
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return st;
}

static hamok_status rs_load(void *store, hamok_remote_out *out)
{
    hamok_redis_store *s = store;
    const char *argv[4] = {"HMGET", s->meta, "token", "outcome"};
    size_t lens[4] = {5, strlen(s->meta), 5, 7};
    pthread_mutex_lock(&s->mu);
    redisReply *r = run(s, 4, argv, lens);
    pthread_mutex_unlock(&s->mu);
    hamok_status st = reply_error(r);
    if (st == HAMOK_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 2)) {
        st = HAMOK_ERR_IO;
    }
    if (st == HAMOK_OK && r->element[0]->type == REDIS_REPLY_STRING) {
        const redisReply *o = r->element[1];
        st = hamok_remote_out_put(out, r->element[0]->str, r->element[0]->len,
                                  o->type == REDIS_REPLY_STRING ? o->str : "",
                                  o->type == REDIS_REPLY_STRING ? o->len : 0);
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return st;
}

static hamok_status rs_commit(void *store, const hamok_remote_commit *c)
{
    hamok_redis_store *s = store;
    size_t argc = 5 + 4 + 3 * c->n_changes;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return HAMOK_ERR_NOMEM;
    }
    size_t k = 0;
#define ARG(p, n)      \
    do {               \
        argv[k] = (p); \
        lens[k] = (n); \
        k++;           \
    } while (0)
    ARG("EVAL", 4);
    ARG(COMMIT_LUA, sizeof COMMIT_LUA - 1);
    ARG("2", 1);
    ARG(s->hash, strlen(s->hash));
    ARG(s->meta, strlen(s->meta));
    ARG(c->expect_token_len > 0 ? c->expect_token : "", c->expect_token_len);
    ARG(c->token_len > 0 ? c->token : "", c->token_len);
    ARG(c->outcome_len > 0 ? c->outcome : "", c->outcome_len);
    ARG(c->clear ? "1" : "0", 1);
    for (size_t i = 0; i < c->n_changes; i++) {
        const hamok_remote_change *ch = &c->changes[i];
        ARG(ch->has_value ? "s" : "d", 1);
        ARG(ch->key_len > 0 ? ch->key : "", ch->key_len);
        if (ch->has_value) {
            ARG(ch->value_len > 0 ? ch->value : "", ch->value_len);
        }
    }
#undef ARG
    pthread_mutex_lock(&s->mu);
    redisReply *r = run(s, (int)k, argv, lens);
    pthread_mutex_unlock(&s->mu);
    free(argv);
    free(lens);
    hamok_status st = reply_error(r);
    if (st == HAMOK_OK && r->type != REDIS_REPLY_INTEGER) {
        st = HAMOK_ERR_IO;
    }
    if (st == HAMOK_OK && r->integer == 0) {
        st = HAMOK_ERR_CONFLICT;
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return st;
}

const hamok_remote_store_ops hamok_redis_store_ops = {
    .abi = HAMOK_REMOTE_STORE_ABI,
    .get = rs_get,
    .scan = rs_scan,
    .size = rs_size,
    .commit = rs_commit,
    .load = rs_load,
};
