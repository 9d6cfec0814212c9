#include "collections/session.h"

#include <string.h>

#include "util/alloc.h"
#include "util/crc32c.h"

typedef struct slot {
    uint64_t seq; /* 0 = empty */
    uint8_t *result;
    uint32_t len;
} slot;

typedef struct session {
    hamok_id client;
    uint64_t max_seq;
    uint64_t
        floor;  /* numbers at or below: EXPIRED (an earlier session of this client was dropped) */
    slot *ring; /* window slots, indexed by seq % window */
} session;

/* What a dropped session leaves behind: its client's highest number. */
typedef struct departed {
    hamok_id client;
    uint64_t floor;
} departed;

struct hamok_sessions {
    uint32_t window;
    session *v;
    size_t n;
    size_t cap;
    departed *d; /* sorted by client id; never a client that has a session */
    size_t nd;
    size_t capd;
    uint8_t *spare; /* set aside by reserve() for the next record() */
    size_t spare_cap;
};

static const uint8_t MAGIC[4] = {'H', 'S', 'E', '2'};
static const uint8_t MAGIC_V1[4] = {'H', 'S', 'E', '1'}; /* no floors, no departed clients */

hamok_status hamok__sessions_new(hamok_sessions **out, uint32_t window)
{
    *out = NULL;
    if (window == 0) {
        window = HAMOK_SESSION_DEFAULT_WINDOW;
    }
    if (window > HAMOK_SESSION_MAX_WINDOW) {
        return HAMOK_ERR_INVALID;
    }
    hamok_sessions *s = hamok__calloc(1, sizeof *s);
    if (s == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    s->window = window;
    *out = s;
    return HAMOK_OK;
}

static void session_free(session *se, uint32_t window)
{
    if (se->ring != NULL) {
        for (uint32_t i = 0; i < window; i++) {
            hamok__free(se->ring[i].result);
        }
        hamok__free(se->ring);
    }
}

static void clear_all(hamok_sessions *s)
{
    for (size_t i = 0; i < s->n; i++) {
        session_free(&s->v[i], s->window);
    }
    hamok__free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
    hamok__free(s->d);
    s->d = NULL;
    s->nd = s->capd = 0;
}

void hamok__sessions_destroy(hamok_sessions **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    clear_all(*sp);
    hamok__free((*sp)->spare);
    hamok__free(*sp);
    *sp = NULL;
}

static session *find(const hamok_sessions *s, const hamok_id *client)
{
    for (size_t i = 0; i < s->n; i++) {
        if (hamok__id_eq(&s->v[i].client, client)) {
            return &s->v[i];
        }
    }
    return NULL;
}

static bool no_session(const hamok_id *client, uint64_t seq)
{
    return seq == 0 || client == NULL || hamok__id_is_nil(client);
}

/* Position of `client` in the departed list, or where it would go. */
static size_t departed_at(const hamok_sessions *s, const hamok_id *client, bool *found)
{
    size_t lo = 0, hi = s->nd;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(s->d[mid].client.b, client->b, HAMOK_ID_LEN);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

/* The floor a client without a session has (0: none). */
static uint64_t departed_floor(const hamok_sessions *s, const hamok_id *client)
{
    bool found;
    size_t at = departed_at(s, client, &found);
    return found ? s->d[at].floor : 0;
}

hamok_session_check hamok__sessions_check(const hamok_sessions *s, const hamok_id *client,
                                          uint64_t seq, const uint8_t **result, size_t *len)
{
    if (no_session(client, seq)) {
        return HAMOK_SESSION_NEW;
    }
    const session *se = find(s, client);
    uint64_t floor = se != NULL ? se->floor : departed_floor(s, client);
    if (seq <= floor) {
        return HAMOK_SESSION_EXPIRED; /* maybe applied before the session was dropped */
    }
    if (se == NULL || seq > se->max_seq) {
        return HAMOK_SESSION_NEW;
    }
    if (se->max_seq - seq >= s->window) {
        return HAMOK_SESSION_EXPIRED;
    }
    const slot *sl = &se->ring[seq % s->window];
    if (sl->seq != seq) {
        return HAMOK_SESSION_NEW; /* inside the window but never applied */
    }
    if (result != NULL) {
        *result = sl->result;
    }
    if (len != NULL) {
        *len = sl->len;
    }
    return HAMOK_SESSION_DUPLICATE;
}

static session *add_session(hamok_sessions *s, const hamok_id *client)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        session *p = hamok__realloc(s->v, cap * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        s->v = p;
        s->cap = cap;
    }
    slot *ring = hamok__calloc(s->window, sizeof *ring);
    if (ring == NULL) {
        return NULL;
    }
    session *se = &s->v[s->n++];
    se->client = *client;
    se->max_seq = 0;
    se->floor = 0;
    se->ring = ring;
    /* A client that comes back keeps its floor (the session takes it). */
    bool found;
    size_t at = departed_at(s, client, &found);
    if (found) {
        se->floor = s->d[at].floor;
        memmove(&s->d[at], &s->d[at + 1], (s->nd - at - 1) * sizeof *s->d);
        s->nd--;
    }
    return se;
}

hamok_status hamok__sessions_record(hamok_sessions *s, const hamok_id *client, uint64_t seq,
                                    const void *result, size_t len)
{
    if (no_session(client, seq)) {
        return HAMOK_OK;
    }
    if (len > UINT32_MAX) {
        return HAMOK_ERR_TOO_BIG;
    }
    session *known = find(s, client);
    if (seq <= (known != NULL ? known->floor : departed_floor(s, client))) {
        return HAMOK_OK; /* expired: check() told the caller not to apply it */
    }
    uint8_t *copy;
    if (s->spare != NULL && s->spare_cap >= len) {
        copy = s->spare; /* reserved: cannot fail */
        s->spare = NULL;
        s->spare_cap = 0;
        if (len > 0) {
            memcpy(copy, result, len);
        }
    } else {
        copy = hamok__memdup(result, len);
        if (copy == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    session *se = known;
    if (se == NULL) {
        se = add_session(s, client);
        if (se == NULL) {
            hamok__free(copy);
            return HAMOK_ERR_NOMEM;
        }
    }
    if (seq <= se->max_seq && se->max_seq - seq >= s->window) {
        hamok__free(copy); /* expired: check() told the caller not to apply it */
        return HAMOK_OK;
    }
    slot *sl = &se->ring[seq % s->window];
    hamok__free(sl->result);
    sl->seq = seq;
    sl->result = copy;
    sl->len = (uint32_t)len;
    if (seq > se->max_seq) {
        se->max_seq = seq;
    }
    return HAMOK_OK;
}

hamok_status hamok__sessions_reserve(hamok_sessions *s, const hamok_id *client, uint64_t seq,
                                     size_t max_len)
{
    if (no_session(client, seq)) {
        return HAMOK_OK;
    }
    if (max_len > UINT32_MAX) {
        return HAMOK_ERR_TOO_BIG;
    }
    if (find(s, client) == NULL) {
        if (seq <= departed_floor(s, client)) {
            return HAMOK_OK; /* expired: nothing will be recorded */
        }
        if (add_session(s, client) == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    /* Exactly sized when it has to change: the copy is kept for `window`
     * commands, so slack would add up. */
    if (s->spare == NULL || s->spare_cap < max_len || s->spare_cap > 2 * max_len + 64) {
        uint8_t *p = hamok__realloc(s->spare, max_len);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        s->spare = p;
        s->spare_cap = max_len;
    }
    return HAMOK_OK;
}

static bool is_member(const hamok_member *members, size_t n, const hamok_id *client)
{
    for (size_t k = 0; k < n; k++) {
        if (hamok__id_eq(&members[k].id, client)) {
            return true;
        }
    }
    return false;
}

static uint64_t session_floor(const session *se)
{
    return se->max_seq > se->floor ? se->max_seq : se->floor;
}

hamok_status hamok__sessions_expire(hamok_sessions *s, const hamok_member *members, size_t n)
{
    /* Room for every floor first: then nothing can fail. */
    size_t need = 0;
    for (size_t i = 0; i < s->n; i++) {
        need += !is_member(members, n, &s->v[i].client) && session_floor(&s->v[i]) > 0 ? 1u : 0u;
    }
    if (s->nd + need > s->capd) {
        size_t cap = s->capd ? s->capd : 8;
        while (cap < s->nd + need) {
            cap *= 2;
        }
        departed *p = hamok__realloc(s->d, cap * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        s->d = p;
        s->capd = cap;
    }
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        session *se = &s->v[i];
        if (is_member(members, n, &se->client)) {
            s->v[w++] = *se;
            continue;
        }
        uint64_t floor = session_floor(se);
        if (floor > 0) {
            bool found;
            size_t at = departed_at(s, &se->client, &found); /* never found: see add_session */
            memmove(&s->d[at + 1], &s->d[at], (s->nd - at) * sizeof *s->d);
            s->d[at] = (departed){se->client, floor};
            s->nd++;
        }
        session_free(se, s->window);
    }
    s->n = w;
    return HAMOK_OK;
}

size_t hamok__sessions_count(const hamok_sessions *s)
{
    return s->n;
}

size_t hamok__sessions_departed(const hamok_sessions *s)
{
    return s->nd;
}

/* ------------------------------------------------------------------------- */
/* Serialization: little-endian, CRC32C over everything before the trailer.
 *   "HSE2" window:u32 count:u32
 *   count x { client:16 max_seq:u64 floor:u64 used:u32
 *             used x { seq:u64 len:u32 bytes } }
 *   departed:u32  departed x { client:16 floor:u64 }  (sorted by client)
 *   crc:u32
 * "HSE1" (before departed clients were kept) is read too: no floor field,
 * no departed list. */

static hamok_status put_u32(hamok_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return hamok__buf_append(b, x, 4);
}

static hamok_status put_u64(hamok_buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    return hamok__buf_append(b, x, 8);
}

#define TRY(expr)                  \
    do {                           \
        hamok_status st_ = (expr); \
        if (st_ != HAMOK_OK) {     \
            out->len = start;      \
            return st_;            \
        }                          \
    } while (0)

static bool live_slot(const session *se, const slot *sl, uint32_t window)
{
    return sl->seq != 0 && se->max_seq - sl->seq < window;
}

hamok_status hamok__sessions_snapshot(const hamok_sessions *s, hamok_buf *out)
{
    size_t start = out->len;
    TRY(hamok__buf_append(out, MAGIC, sizeof MAGIC));
    TRY(put_u32(out, s->window));
    TRY(put_u32(out, (uint32_t)s->n));
    for (size_t i = 0; i < s->n; i++) {
        const session *se = &s->v[i];
        /* Slots older than the window are stale (check() answers EXPIRED
         * before looking at them; a later number overwrites them): not
         * written, and restore refuses them. */
        uint32_t used = 0;
        for (uint32_t k = 0; k < s->window; k++) {
            used += live_slot(se, &se->ring[k], s->window) ? 1u : 0u;
        }
        TRY(hamok__buf_append(out, se->client.b, HAMOK_ID_LEN));
        TRY(put_u64(out, se->max_seq));
        TRY(put_u64(out, se->floor));
        TRY(put_u32(out, used));
        for (uint32_t k = 0; k < s->window; k++) {
            const slot *sl = &se->ring[k];
            if (live_slot(se, sl, s->window)) {
                TRY(put_u64(out, sl->seq));
                TRY(put_u32(out, sl->len));
                TRY(hamok__buf_append(out, sl->result, sl->len));
            }
        }
    }
    TRY(put_u32(out, (uint32_t)s->nd));
    for (size_t i = 0; i < s->nd; i++) {
        TRY(hamok__buf_append(out, s->d[i].client.b, HAMOK_ID_LEN));
        TRY(put_u64(out, s->d[i].floor));
    }
    TRY(put_u32(out, hamok__crc32c(out->data + start, out->len - start)));
    return HAMOK_OK;
}

typedef struct rd {
    const uint8_t *p;
    size_t left;
} rd;

static bool get(rd *r, void *dst, size_t n)
{
    if (r->left < n) {
        return false;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

static bool get_u32(rd *r, uint32_t *v)
{
    uint8_t x[4];
    if (!get(r, x, 4)) {
        return false;
    }
    *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
    return true;
}

static bool get_u64(rd *r, uint64_t *v)
{
    uint8_t x[8];
    if (!get(r, x, 8)) {
        return false;
    }
    *v = 0;
    for (int i = 7; i >= 0; i--) {
        *v = (*v << 8) | x[i];
    }
    return true;
}

/* Parse into `t` (a fresh table); HAMOK_ERR_CORRUPT or HAMOK_ERR_NOMEM. */
static hamok_status parse(hamok_sessions *t, const uint8_t *data, size_t len)
{
    if (len < sizeof MAGIC + 12) {
        return HAMOK_ERR_CORRUPT;
    }
    bool v1 = memcmp(data, MAGIC_V1, sizeof MAGIC_V1) == 0;
    if (!v1 && memcmp(data, MAGIC, sizeof MAGIC) != 0) {
        return HAMOK_ERR_CORRUPT;
    }
    uint32_t crc = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
                   (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
    if (hamok__crc32c(data, len - 4) != crc) {
        return HAMOK_ERR_CORRUPT;
    }
    rd r = {data + sizeof MAGIC, len - sizeof MAGIC - 4};
    uint32_t window;
    uint32_t count;
    size_t per_session = HAMOK_ID_LEN + (v1 ? 12u : 20u);
    if (!get_u32(&r, &window) || !get_u32(&r, &count) || window == 0 ||
        window > HAMOK_SESSION_MAX_WINDOW || count > r.left / per_session) {
        return HAMOK_ERR_CORRUPT;
    }
    t->window = window;
    for (uint32_t i = 0; i < count; i++) {
        hamok_id client;
        uint64_t max_seq;
        uint64_t floor = 0;
        uint32_t used;
        if (!get(&r, client.b, HAMOK_ID_LEN) || !get_u64(&r, &max_seq) ||
            (!v1 && !get_u64(&r, &floor)) || !get_u32(&r, &used) || hamok__id_is_nil(&client) ||
            find(t, &client) != NULL || used > window || used > r.left / 12) {
            return HAMOK_ERR_CORRUPT;
        }
        session *se = add_session(t, &client);
        if (se == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        se->max_seq = max_seq;
        se->floor = floor;
        for (uint32_t k = 0; k < used; k++) {
            uint64_t seq;
            uint32_t n;
            if (!get_u64(&r, &seq) || !get_u32(&r, &n) || n > r.left || seq == 0 || seq > max_seq ||
                seq <= floor || max_seq - seq >= window || se->ring[seq % window].seq != 0) {
                return HAMOK_ERR_CORRUPT;
            }
            slot *sl = &se->ring[seq % window];
            sl->result = hamok__memdup(r.p, n);
            if (sl->result == NULL) {
                return HAMOK_ERR_NOMEM;
            }
            sl->seq = seq;
            sl->len = n;
            r.p += n;
            r.left -= n;
        }
    }
    uint32_t nd = 0;
    if (!v1 && (!get_u32(&r, &nd) || nd > r.left / (HAMOK_ID_LEN + 8))) {
        return HAMOK_ERR_CORRUPT;
    }
    if (nd > 0) {
        t->d = hamok__malloc(nd * sizeof *t->d);
        if (t->d == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        t->capd = nd;
    }
    for (uint32_t i = 0; i < nd; i++) {
        departed *d = &t->d[i];
        if (!get(&r, d->client.b, HAMOK_ID_LEN) || !get_u64(&r, &d->floor) || d->floor == 0 ||
            hamok__id_is_nil(&d->client) || find(t, &d->client) != NULL ||
            (i > 0 && memcmp(t->d[i - 1].client.b, d->client.b, HAMOK_ID_LEN) >= 0)) {
            return HAMOK_ERR_CORRUPT; /* strictly sorted: no duplicates */
        }
        t->nd++;
    }
    return r.left == 0 ? HAMOK_OK : HAMOK_ERR_CORRUPT;
}

hamok_status hamok__sessions_restore(hamok_sessions *s, const uint8_t *data, size_t len)
{
    if (data == NULL) {
        return HAMOK_ERR_CORRUPT;
    }
    hamok_sessions t;
    memset(&t, 0, sizeof t);
    hamok_status st = parse(&t, data, len);
    if (st != HAMOK_OK) {
        clear_all(&t);
        return st;
    }
    clear_all(s);
    t.spare = s->spare;
    t.spare_cap = s->spare_cap;
    *s = t;
    return HAMOK_OK;
}
