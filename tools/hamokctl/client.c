/* hamokctl's client commands: status, peers, get, put, del, watch, against
 * the HTTP address of one or more running peers (libcurl). */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamokctl.h"

typedef struct client_opts {
    const char *endpoints[32];
    size_t n_endpoints;
    char *endpoints_buf;
    bool json;
    bool sync;
    unsigned long long timeout_ms;
} client_opts;

typedef struct body {
    char *data;
    size_t len;
    bool stream; /* watch: print lines as they come */
    bool json;
    int printed;
} body;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    char *nd = realloc(b->data, b->len + k + 1);
    if (nd == NULL) {
        return 0;
    }
    b->data = nd;
    memcpy(b->data + b->len, ptr, k);
    b->len += k;
    b->data[b->len] = '\0';
    if (b->stream) {
        /* Print every complete line; keep the rest. */
        char *start = b->data, *nl;
        while ((nl = memchr(start, '\n', b->len - (size_t)(start - b->data))) != NULL) {
            *nl = '\0';
            if (start[0] != '\0') {
                if (b->json) {
                    printf("%s\n", start);
                } else {
                    json_t *j = json_loads(start, 0, NULL);
                    const char *type = json_string_value(json_object_get(j, "type"));
                    json_t *key = json_object_get(j, "key"), *val = json_object_get(j, "value");
                    char *ks = key != NULL ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
                    char *vs = val != NULL ? json_dumps(val, JSON_ENCODE_ANY) : NULL;
                    printf("%-7s %s%s%s\n", type != NULL ? type : "?", ks != NULL ? ks : "",
                           vs != NULL ? " = " : "", vs != NULL ? vs : "");
                    free(ks);
                    free(vs);
                    json_decref(j);
                }
                fflush(stdout);
            }
            start = nl + 1;
        }
        size_t left = b->len - (size_t)(start - b->data);
        memmove(b->data, start, left);
        b->len = left;
    }
    return k;
}

/* One request. Returns the HTTP code (0 when the peer was unreachable). */
static long request(const char *base, const char *method, const char *path, const char *data,
                    size_t data_len, long timeout_ms, body *out)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return 0;
    }
    char url[4096];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (timeout_ms > 0) {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    }
    if (data != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)data_len);
    }
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    return code;
}

/* Percent-encode one path segment. */
static void escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static void print_error(const char *what, long code, const body *b)
{
    json_t *j = b->data != NULL ? json_loads(b->data, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));
    const char *err = json_string_value(json_object_get(j, "error"));
    if (err != NULL) {
        fprintf(stderr, "hamokctl: %s: %s (%s, HTTP %ld)\n", what, msg != NULL ? msg : "", err,
                code);
    } else {
        fprintf(stderr, "hamokctl: %s: HTTP %ld\n", what, code);
    }
    json_decref(j);
}

static void client_usage(FILE *f, const char *cmd)
{
    fprintf(f,
            "usage: hamokctl %s [options]%s\n"
            "  --endpoints URLS   peers' HTTP addresses, comma separated\n"
            "                     (default $HAMOK_ENDPOINTS or http://127.0.0.1:8080)\n"
            "  -o, --output FMT   table (default) or json\n"
            "  --sync             read after a read barrier (get)\n"
            "  --timeout MS       per request (default 10000; watch: none)\n",
            cmd,
            strcmp(cmd, "get") == 0 || strcmp(cmd, "del") == 0 ? " MAP KEY"
            : strcmp(cmd, "put") == 0                          ? " MAP KEY VALUE|-"
            : strcmp(cmd, "watch") == 0                        ? " MAP"
                                                               : "");
}

static int parse(client_opts *o, const char *cmd, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = 10000;
    const char *eps = env_or("HAMOK_ENDPOINTS", "http://127.0.0.1:8080");
    static const struct option longs[] = {{"endpoints", required_argument, NULL, 'e'},
                                          {"output", required_argument, NULL, 'o'},
                                          {"sync", no_argument, NULL, 's'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'},
                                          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'e': eps = optarg; break;
        case 'o':
            if (strcmp(optarg, "json") == 0) {
                o->json = true;
            } else if (strcmp(optarg, "table") != 0) {
                fprintf(stderr, "hamokctl: -o wants table or json\n");
                return EXIT_USAGE;
            }
            break;
        case 's': o->sync = true; break;
        case 't':
            if (!parse_u64(optarg, 1, 3600000, &o->timeout_ms)) {
                fprintf(stderr, "hamokctl: invalid --timeout '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': client_usage(stdout, cmd); exit(EXIT_OK);
        default: client_usage(stderr, cmd); return EXIT_USAGE;
        }
    }
    o->endpoints_buf = strdup(eps);
    if (o->endpoints_buf == NULL) {
        return EXIT_FAIL;
    }
    for (char *save = NULL, *tok = strtok_r(o->endpoints_buf, ",", &save);
         tok != NULL && o->n_endpoints < 32; tok = strtok_r(NULL, ",", &save)) {
        size_t n = strlen(tok);
        while (n > 0 && tok[n - 1] == '/') {
            tok[--n] = '\0';
        }
        if (n > 0) {
            o->endpoints[o->n_endpoints++] = tok;
        }
    }
    if (o->n_endpoints == 0) {
        fprintf(stderr, "hamokctl: no endpoint given\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : def;
}

static int cmd_status(const client_opts *o)
{
    json_t *all = json_array();
    int reached = 0;
    if (!o->json) {
        printf("%-28s %-36s %-9s %6s %-8s %10s %10s %6s %7s\n", "ENDPOINT", "ID", "ROLE", "TERM",
               "LEADER", "COMMIT", "APPLIED", "LAG", "HEALTHY");
    }
    for (size_t i = 0; i < o->n_endpoints; i++) {
        body b = {0};
        long code = request(o->endpoints[i], "GET", "/v1/status", NULL, 0, (long)o->timeout_ms, &b);
        json_t *j = code == 200 ? json_loads(b.data, 0, NULL) : NULL;
        free(b.data);
        if (j == NULL) {
            if (o->json) {
                json_array_append_new(all, json_pack("{s:s, s:s}", "endpoint", o->endpoints[i],
                                                     "error", "unreachable"));
            } else {
                printf("%-28s %-36s\n", o->endpoints[i], "(unreachable)");
            }
            continue;
        }
        reached++;
        if (o->json) {
            json_object_set_new(j, "endpoint", json_string(o->endpoints[i]));
            json_array_append(all, j);
        } else {
            const char *leader = jstr(j, "leader", "-");
            long long commit = jint(j, "commit_index"), applied = jint(j, "applied_index");
            printf("%-28s %-36s %-9s %6lld %-8.8s %10lld %10lld %6lld %7s\n", o->endpoints[i],
                   jstr(j, "id", "?"), jstr(j, "role", "?"), jint(j, "term"), leader, commit,
                   applied, commit > applied ? commit - applied : 0,
                   json_is_true(json_object_get(j, "healthy")) ? "yes" : "no");
        }
        json_decref(j);
    }
    if (o->json) {
        char *text = json_dumps(all, JSON_INDENT(2));
        printf("%s\n", text != NULL ? text : "[]");
        free(text);
    }
    json_decref(all);
    return reached == 0 ? EXIT_UNREACHABLE : EXIT_OK;
}

/* The first endpoint that answers `path` with 2xx/4xx/5xx. */
static long first(const client_opts *o, const char *method, const char *path, const char *data,
                  size_t len, long timeout_ms, body *b, const char **used)
{
    for (size_t i = 0; i < o->n_endpoints; i++) {
        free(b->data);
        b->data = NULL;
        b->len = 0;
        long code = request(o->endpoints[i], method, path, data, len, timeout_ms, b);
        if (code != 0) {
            *used = o->endpoints[i];
            return code;
        }
    }
    return 0;
}

static int cmd_peers(const client_opts *o)
{
    body b = {0};
    const char *ep = NULL;
    long code = first(o, "GET", "/v1/peers", NULL, 0, (long)o->timeout_ms, &b, &ep);
    if (code == 0) {
        fprintf(stderr, "hamokctl: no peer reachable\n");
        return EXIT_UNREACHABLE;
    }
    if (code != 200) {
        print_error("peers", code, &b);
        free(b.data);
        return EXIT_FAIL;
    }
    if (o->json) {
        fputs(b.data, stdout);
        free(b.data);
        return EXIT_OK;
    }
    json_t *j = json_loads(b.data, 0, NULL);
    free(b.data);
    json_t *ms = json_object_get(j, "members");
    printf("%-36s %-7s %-6s %-4s %-32s %10s %10s\n", "ID", "VOTER", "LEADER", "SELF", "ENDPOINT",
           "MATCH", "SEEN(ms)");
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m)
    {
        printf("%-36s %-7s %-6s %-4s %-32s %10lld %10lld\n", jstr(m, "id", "?"),
               json_is_true(json_object_get(m, "voter")) ? "yes" : "no",
               json_is_true(json_object_get(m, "leader")) ? "yes" : "",
               json_is_true(json_object_get(m, "self")) ? "yes" : "", jstr(m, "endpoint", ""),
               jint(m, "match_index"), jint(m, "last_seen_ms"));
    }
    json_decref(j);
    return EXIT_OK;
}

static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t k = fread(buf + n, 1, cap - n, stdin);
        n += k;
        if (k == 0) {
            break;
        }
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    *len = n;
    return buf;
}

static int cmd_map(const client_opts *o, const char *cmd, int argc, char **argv)
{
    int need = strcmp(cmd, "put") == 0 ? 3 : strcmp(cmd, "watch") == 0 ? 1 : 2;
    if (argc - optind != need) {
        client_usage(stderr, cmd);
        return EXIT_USAGE;
    }
    char name[1024], key[4096] = "", path[6000];
    escape(argv[optind], name, sizeof name);
    if (need >= 2) {
        escape(argv[optind + 1], key, sizeof key);
    }
    body b = {0};
    const char *ep = NULL;
    long code;
    if (strcmp(cmd, "watch") == 0) {
        snprintf(path, sizeof path, "/v1/maps/%s?watch=1", name);
        b.stream = true;
        b.json = o->json;
        code = first(o, "GET", path, NULL, 0, 0, &b, &ep);
        free(b.data);
        if (code == 0) {
            fprintf(stderr, "hamokctl: no peer reachable (or the stream ended)\n");
            return EXIT_UNREACHABLE;
        }
        return code == 200 ? EXIT_OK : EXIT_FAIL;
    }
    snprintf(path, sizeof path, "/v1/maps/%s/%s%s", name, key,
             o->sync && strcmp(cmd, "get") == 0 ? "?sync=1" : "");
    if (strcmp(cmd, "get") == 0) {
        code = first(o, "GET", path, NULL, 0, (long)o->timeout_ms, &b, &ep);
    } else if (strcmp(cmd, "del") == 0) {
        code = first(o, "DELETE", path, NULL, 0, (long)o->timeout_ms, &b, &ep);
    } else {
        const char *v = argv[optind + 2];
        size_t vl = strlen(v);
        char *in = NULL;
        if (strcmp(v, "-") == 0) {
            in = read_stdin(&vl);
            if (in == NULL) {
                fprintf(stderr, "hamokctl: cannot read stdin\n");
                return EXIT_FAIL;
            }
            v = in;
        }
        code = first(o, "PUT", path, v, vl, (long)o->timeout_ms, &b, &ep);
        free(in);
    }
    int rc = EXIT_OK;
    if (code == 0) {
        fprintf(stderr, "hamokctl: no peer reachable\n");
        rc = EXIT_UNREACHABLE;
    } else if (code != 200) {
        print_error(cmd, code, &b);
        rc = EXIT_FAIL;
    } else if (strcmp(cmd, "get") == 0) {
        fwrite(b.data, 1, b.len, stdout);
        if (!o->json && isatty(fileno(stdout)) && (b.len == 0 || b.data[b.len - 1] != '\n')) {
            putchar('\n');
        }
    } else if (o->json) {
        fputs(b.data, stdout);
    }
    free(b.data);
    return rc;
}

int hamokctl_client(const char *cmd, int argc, char **argv)
{
    client_opts o;
    int rc = parse(&o, cmd, argc, argv);
    if (rc != EXIT_OK) {
        free(o.endpoints_buf);
        return rc;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&o);
    } else if (strcmp(cmd, "peers") == 0) {
        rc = cmd_peers(&o);
    } else {
        rc = cmd_map(&o, cmd, argc, argv);
    }
    curl_global_cleanup();
    free(o.endpoints_buf);
    return rc;
}
