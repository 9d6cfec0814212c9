/* A cluster of `hamokctl peer` processes (pcluster.h). */
#define _GNU_SOURCE
#include "pcluster.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool pc_init(pc_cluster *c, pc_transport t, const char *hamokctl, const char *name,
             unsigned election_ms)
{
    memset(c, 0, sizeof *c);
    c->transport = t;
    const char *env = getenv("HAMOKCTL");
    snprintf(c->hamokctl, sizeof c->hamokctl, "%s", env != NULL && env[0] ? env : hamokctl);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->election_ms = election_ms;
    c->heartbeat_ms = election_ms / 10 > 0 ? election_ms / 10 : 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/hamok-pc-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(c->dir) == NULL) {
        fprintf(stderr, "pcluster: mkdtemp: %s\n", strerror(errno));
        return false;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
}

static bool read_info(pc_peer *p)
{
    json_t *j = json_load_file(p->info_path, 0, NULL);
    if (j == NULL) {
        return false;
    }
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *http = json_string_value(json_object_get(j, "http"));
    const char *ep = json_string_value(json_object_get(j, "endpoint"));
    bool ok = id != NULL && http != NULL && ep != NULL;
    if (ok) {
        snprintf(p->id, sizeof p->id, "%s", id);
        snprintf(p->http, sizeof p->http, "%s", http);
        snprintf(p->endpoint, sizeof p->endpoint, "%s", ep);
    }
    json_decref(j);
    return ok;
}

bool pc_start(pc_cluster *c, size_t i, bool durable, unsigned timeout_ms)
{
    if (i >= PC_MAX) {
        return false;
    }
    pc_peer *p = &c->peers[i];
    if (p->running) {
        return false;
    }
    if (i >= c->n) {
        c->n = i + 1;
    }
    p->generation++;
    p->durable = durable;
    snprintf(p->info_path, sizeof p->info_path, "%s/peer%zu.info", c->dir, i);
    snprintf(p->log_path, sizeof p->log_path, "%s/peer%zu.log", c->dir, i);
    snprintf(p->data_dir, sizeof p->data_dir, "%s/peer%zu.data", c->dir, i);
    unlink(p->info_path);
    FILE *lf = fopen(p->log_path, "a");
    if (lf != NULL) {
        fprintf(lf, "==== start %u (%s) ====\n", p->generation, durable ? "durable" : "memory");
        fclose(lf);
    }
    char el[32], hb[32], pt[32];
    snprintf(el, sizeof el, "%u", c->election_ms);
    snprintf(hb, sizeof hb, "%u", c->heartbeat_ms);
    snprintf(pt, sizeof pt, "%u", c->election_ms * 5);
    char *argv[64];
    size_t a = 0;
    argv[a++] = c->hamokctl;
    argv[a++] = "peer";
    argv[a++] = "--cluster";
    argv[a++] = c->name;
    argv[a++] = "--election-timeout";
    argv[a++] = el;
    argv[a++] = "--heartbeat";
    argv[a++] = hb;
    argv[a++] = "--peer-timeout";
    argv[a++] = pt;
    argv[a++] = "--http";
    argv[a++] = "127.0.0.1:0";
    argv[a++] = "--info-file";
    argv[a++] = p->info_path;
    if (durable) {
        argv[a++] = "--data-dir";
        argv[a++] = p->data_dir;
    }
    if (c->transport == PC_ZMQ) {
        argv[a++] = "--transport";
        argv[a++] = "zmq";
        argv[a++] = "--bind";
        argv[a++] = "tcp://127.0.0.1:0";
        /* One seed: the running peer started last before it (a chain, so
         * that every other member is learned through gossip). */
        size_t seed = SIZE_MAX;
        for (size_t j = 0; j < c->n; j++) {
            if (j != i && c->peers[j].running && (seed == SIZE_MAX || j < i)) {
                seed = j;
            }
        }
        if (seed != SIZE_MAX) {
            argv[a++] = "--seed";
            argv[a++] = c->peers[seed].endpoint;
        }
    } else {
        argv[a++] = "--transport";
        argv[a++] = "nats";
        argv[a++] = "--nats-url";
        argv[a++] = c->nats_url;
    }
    for (size_t j = 0; c->extra != NULL && c->extra[j] != NULL && a < 62; j++) {
        argv[a++] = (char *)c->extra[j];
    }
    argv[a] = NULL;
    char *env[] = {"HAMOK_LOG=info", NULL};
    if (!hamok_proc_spawn(&p->proc, argv, env, p->log_path)) {
        fprintf(stderr, "pcluster: cannot start %s: %s\n", c->hamokctl, strerror(errno));
        return false;
    }
    p->running = true;
    uint64_t end = hamok_proc_now_ms() + timeout_ms;
    while (!read_info(p)) {
        if (hamok_proc_exited(&p->proc) || hamok_proc_now_ms() >= end) {
            fprintf(stderr, "pcluster: peer %zu did not come up (see %s)\n", i, p->log_path);
            p->running = false;
            hamok_proc_kill(&p->proc);
            return false;
        }
        hamok_proc_poll_pause(10);
    }
    return true;
}

static void drop_curl(pc_peer *p)
{
    if (p->curl != NULL) {
        curl_easy_cleanup(p->curl);
        p->curl = NULL;
    }
}

void pc_kill(pc_cluster *c, size_t i)
{
    pc_peer *p = &c->peers[i];
    hamok_proc_kill(&p->proc);
    p->running = false;
    drop_curl(p);
}

void pc_pause(pc_cluster *c, size_t i)
{
    hamok_proc_signal(&c->peers[i].proc, SIGSTOP);
}

void pc_resume(pc_cluster *c, size_t i)
{
    hamok_proc_signal(&c->peers[i].proc, SIGCONT);
}

bool pc_terminate(pc_cluster *c, size_t i, unsigned timeout_ms)
{
    pc_peer *p = &c->peers[i];
    hamok_proc_signal(&p->proc, SIGTERM);
    bool ok = hamok_proc_wait(&p->proc, timeout_ms);
    if (!ok) {
        hamok_proc_kill(&p->proc);
    }
    p->running = false;
    drop_curl(p);
    return ok && WIFEXITED(p->proc.status) && WEXITSTATUS(p->proc.status) == 0;
}

static void tail(const char *path, size_t lines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    char **ring = calloc(lines, sizeof *ring);
    size_t n = 0;
    char buf[1024];
    while (ring != NULL && fgets(buf, sizeof buf, f) != NULL) {
        free(ring[n % lines]);
        ring[n % lines] = strdup(buf);
        n++;
    }
    fclose(f);
    fprintf(stderr, "---- %s (last %zu lines) ----\n", path, n < lines ? n : lines);
    for (size_t k = n > lines ? n - lines : 0; ring != NULL && k < n; k++) {
        fputs(ring[k % lines] != NULL ? ring[k % lines] : "", stderr);
    }
    for (size_t k = 0; ring != NULL && k < lines; k++) {
        free(ring[k]);
    }
    free(ring);
}

void pc_destroy(pc_cluster *c, bool failed)
{
    for (size_t i = 0; i < c->n; i++) {
        pc_kill(c, i);
    }
    if (failed) {
        for (size_t i = 0; i < c->n; i++) {
            tail(c->peers[i].log_path, 40);
        }
    }
    const char *keep = getenv("HAMOK_KEEP_LOGS");
    if (keep != NULL && keep[0] != '\0') {
        fprintf(stderr, "pcluster: logs kept in %s\n", c->dir);
    } else if (c->dir[0] != '\0') {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "pcluster: cannot remove %s\n", c->dir);
        }
    }
    curl_global_cleanup();
}

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t k = size * n;
    char *nd = realloc(b->data, b->len + k + 1);
    if (nd == NULL) {
        return 0;
    }
    memcpy(nd + b->len, ptr, k);
    b->data = nd;
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

long pc_http(pc_cluster *c, size_t i, const char *method, const char *path, const void *body,
             size_t len, long timeout_ms, char **resp)
{
    pc_peer *p = &c->peers[i];
    if (resp != NULL) {
        *resp = NULL;
    }
    if (!p->running) {
        return 0;
    }
    if (p->curl == NULL) {
        p->curl = curl_easy_init();
        if (p->curl == NULL) {
            return 0;
        }
    }
    CURL *h = p->curl;
    curl_easy_reset(h);
    char url[1024];
    snprintf(url, sizeof url, "%s%s", p->http, path);
    buf b = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    } else {
        drop_curl(p); /* a dead connection is not reused */
    }
    if (resp != NULL) {
        *resp = b.data;
    } else {
        free(b.data);
    }
    return code;
}

json_t *pc_status(pc_cluster *c, size_t i)
{
    char *body = NULL;
    long code = pc_http(c, i, "GET", "/v1/status", NULL, 0, 2000, &body);
    json_t *j = code == 200 && body != NULL ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

size_t pc_find(const pc_cluster *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->peers[i].id, id) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

size_t pc_leader(pc_cluster *c, size_t voters, unsigned skip, unsigned timeout_ms)
{
    uint64_t end = hamok_proc_now_ms() + timeout_ms;
    for (;;) {
        char leader[40] = "";
        bool agreed = true;
        size_t asked = 0;
        for (size_t i = 0; i < c->n && agreed; i++) {
            if (!c->peers[i].running || (skip & (1u << i)) != 0) {
                continue;
            }
            json_t *s = pc_status(c, i);
            const char *l = json_string_value(json_object_get(s, "leader"));
            long long members = (long long)json_integer_value(json_object_get(s, "members"));
            const char *role = json_string_value(json_object_get(s, "role"));
            if (l == NULL || role == NULL ||
                (strcmp(role, "leader") != 0 && strcmp(role, "follower") != 0) ||
                (voters != 0 && members != (long long)voters) ||
                (leader[0] != '\0' && strcmp(leader, l) != 0)) {
                agreed = false;
            } else {
                snprintf(leader, sizeof leader, "%s", l);
                asked++;
            }
            json_decref(s);
        }
        size_t li = agreed && asked > 0 ? pc_find(c, leader) : SIZE_MAX;
        if (li != SIZE_MAX && c->peers[li].running && (skip & (1u << li)) == 0) {
            return li;
        }
        if (hamok_proc_now_ms() >= end) {
            return SIZE_MAX;
        }
        hamok_proc_poll_pause(20);
    }
}

static void escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

bool pc_put(pc_cluster *c, size_t i, const char *map, const char *key, const char *value,
            long timeout_ms)
{
    char m[300], k[600], path[1000];
    escape(map, m, sizeof m);
    escape(key, k, sizeof k);
    snprintf(path, sizeof path, "/v1/maps/%s/%s", m, k);
    return pc_http(c, i, "PUT", path, value, strlen(value), timeout_ms, NULL) == 200;
}

json_t *pc_entries(pc_cluster *c, size_t i, const char *map, long timeout_ms)
{
    char m[300], path[400];
    escape(map, m, sizeof m);
    snprintf(path, sizeof path, "/v1/maps/%s?sync=1", m);
    char *body = NULL;
    long code = pc_http(c, i, "GET", path, NULL, 0, timeout_ms, &body);
    json_t *j = code == 200 && body != NULL ? json_loads(body, 0, NULL) : NULL;
    free(body);
    if (j == NULL) {
        return NULL;
    }
    json_t *out = json_object();
    size_t k;
    json_t *e;
    json_array_foreach(json_object_get(j, "entries"), k, e)
    {
        const char *key = json_string_value(json_object_get(e, "key"));
        json_t *v = json_object_get(e, "value");
        if (key != NULL && v != NULL) {
            json_object_set(out, key, v);
        }
    }
    json_decref(j);
    return out;
}
