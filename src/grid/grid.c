#include "grid/grid.h"

#include <string.h>

#include "util/alloc.h"

#define MAX_SEEN    256
#define MAX_HEARD   256
#define MAX_JOINS   64
#define MAX_OUT     8
#define MAX_LEARNED 64

typedef struct seen_peer {
    hamok_id id;
    uint64_t at;
} seen_peer;

typedef struct join_req {
    hamok_id id;
    char *endpoint;
    bool add; /* false: a LEAVE */
} join_req;

struct hamok_grid {
    hamok_id self;
    char *endpoint;
    uint32_t hello_ms;
    uint32_t discovery_ms;
    uint32_t peer_timeout_ms;
    uint32_t bootstrap_expect;

    bool joining;
    bool leaving;
    bool left;
    uint64_t join_started;
    uint64_t next_hello;
    bool heard_member; /* some member answered during discovery */
    uint64_t join_commit;

    /* Leader hint learned from ENDPOINT_STATES while not a member. */
    bool has_hint;
    hamok_id hint;
    uint64_t hint_term;

    /* Would-be members heard through HELLO (bootstrap). */
    seen_peer seen[MAX_SEEN];
    size_t n_seen;

    /* Last frame from each peer (liveness, leader side). */
    seen_peer heard[MAX_HEARD];
    size_t n_heard;
    uint64_t leader_since;

    /* Leader: JOIN / LEAVE requests to turn into membership changes. */
    join_req joins[MAX_JOINS];
    size_t n_joins;

    /* Output. */
    hamok_msg out[MAX_OUT];
    size_t n_out;
    hamok_member learned[MAX_LEARNED];
    size_t n_learned;
    char *scratch_endpoint; /* borrowed by hamok__grid_next_change */
};

hamok_status hamok__grid_new(hamok_grid **out, const hamok_grid_options *o)
{
    *out = NULL;
    if (o->hello_ms == 0 || o->bootstrap_expect == 0) {
        return HAMOK_ERR_INVALID;
    }
    hamok_grid *g = hamok__calloc(1, sizeof *g);
    if (g == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    g->self = o->self;
    g->endpoint = hamok__strdup(o->endpoint != NULL ? o->endpoint : "");
    if (g->endpoint == NULL) {
        hamok__free(g);
        return HAMOK_ERR_NOMEM;
    }
    g->hello_ms = o->hello_ms;
    g->discovery_ms = o->discovery_ms;
    g->peer_timeout_ms = o->peer_timeout_ms;
    g->bootstrap_expect = o->bootstrap_expect;
    *out = g;
    return HAMOK_OK;
}

void hamok__grid_destroy(hamok_grid **gp)
{
    if (gp == NULL || *gp == NULL) {
        return;
    }
    hamok_grid *g = *gp;
    for (size_t i = 0; i < g->n_joins; i++) {
        hamok__free(g->joins[i].endpoint);
    }
    hamok__free(g->endpoint);
    hamok__free(g->scratch_endpoint);
    hamok__free(g);
    *gp = NULL;
}

void hamok__grid_join(hamok_grid *g, uint64_t now_ms)
{
    if (!g->joining) {
        g->joining = true;
        g->join_started = now_ms;
        g->next_hello = now_ms;
    }
    g->leaving = false;
    g->left = false;
}

void hamok__grid_leave(hamok_grid *g, uint64_t now_ms)
{
    g->leaving = true;
    g->left = false;
    g->next_hello = now_ms;
}

bool hamok__grid_joining(const hamok_grid *g)
{
    return g->joining;
}

bool hamok__grid_leaving(const hamok_grid *g)
{
    return g->leaving;
}

bool hamok__grid_left(const hamok_grid *g)
{
    return g->left;
}

uint64_t hamok__grid_join_commit(const hamok_grid *g)
{
    return g->join_commit;
}

static void touch(seen_peer *arr, size_t *n, size_t cap, const hamok_id *id, uint64_t now)
{
    for (size_t i = 0; i < *n; i++) {
        if (hamok__id_eq(&arr[i].id, id)) {
            arr[i].at = now;
            return;
        }
    }
    if (*n < cap) {
        arr[*n].id = *id;
        arr[*n].at = now;
        (*n)++;
        return;
    }
    /* Full: replace the stalest. */
    size_t old = 0;
    for (size_t i = 1; i < *n; i++) {
        if (arr[i].at < arr[old].at) {
            old = i;
        }
    }
    arr[old].id = *id;
    arr[old].at = now;
}

void hamok__grid_heard(hamok_grid *g, const hamok_id *from, uint64_t now_ms)
{
    touch(g->heard, &g->n_heard, MAX_HEARD, from, now_ms);
}

uint64_t hamok__grid_silence(const hamok_grid *g, const hamok_id *peer, uint64_t now_ms)
{
    for (size_t i = 0; i < g->n_heard; i++) {
        if (hamok__id_eq(&g->heard[i].id, peer)) {
            return now_ms >= g->heard[i].at ? now_ms - g->heard[i].at : 0;
        }
    }
    return UINT64_MAX;
}

void hamok__grid_became_leader(hamok_grid *g, uint64_t now_ms)
{
    g->leader_since = now_ms;
}

static void out_reset(hamok_grid *g, hamok_grid_out *out)
{
    g->n_out = 0;
    g->n_learned = 0;
    memset(out, 0, sizeof *out);
}

/* Does member `id` advertise a non-empty endpoint other than the recorded
 * one (it came back on another address)? */
static bool endpoint_moved(const hamok_member *ms, size_t n, const hamok_id *id,
                           const char *endpoint)
{
    if (endpoint == NULL || endpoint[0] == '\0') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (hamok__id_eq(&ms[i].id, id)) {
            return ms[i].endpoint == NULL || strcmp(ms[i].endpoint, endpoint) != 0;
        }
    }
    return false;
}

/* Is this member (not leading) on another address than the configuration
 * records for it? */
static bool self_moved(const hamok_grid *g, const hamok_grid_view *v)
{
    return !v->is_leader && endpoint_moved(v->members, v->n_members, &g->self, g->endpoint);
}

static void out_finish(hamok_grid *g, hamok_grid_out *out, uint64_t now, const hamok_grid_view *v)
{
    out->msgs = g->out;
    out->n_msgs = g->n_out;
    out->learned = g->learned;
    out->n_learned = g->n_learned;
    uint64_t next = UINT64_MAX;
    bool hello =
        (g->leaving && !g->left) ||
        (g->joining && !g->leaving && (!v->is_member || !v->has_leader || self_moved(g, v)));
    if (hello) {
        next = g->next_hello > now ? g->next_hello : now + 1;
    }
    if (g->peer_timeout_ms > 0) {
        uint64_t t = now + g->peer_timeout_ms / 4 + 1;
        if (t < next) {
            next = t;
        }
    }
    out->next_deadline_ms = next;
}

static hamok_msg *new_msg(hamok_grid *g, uint8_t type, const hamok_id *to)
{
    if (g->n_out >= MAX_OUT) {
        return NULL;
    }
    hamok_msg *m = &g->out[g->n_out++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->src = g->self;
    if (to == NULL) {
        m->broadcast = true;
    } else {
        m->dst = *to;
    }
    return m;
}

static void learn(hamok_grid *g, const hamok_id *id, const char *endpoint)
{
    if (endpoint == NULL || endpoint[0] == '\0' || hamok__id_eq(id, &g->self) ||
        g->n_learned >= MAX_LEARNED) {
        return;
    }
    hamok_member *m = &g->learned[g->n_learned++];
    m->id = *id;
    m->role = HAMOK_MEMBER_VOTER;
    m->endpoint = (char *)endpoint; /* borrowed from the message */
}

static bool in_members(const hamok_member *ms, size_t n, const hamok_id *id)
{
    for (size_t i = 0; i < n; i++) {
        if (hamok__id_eq(&ms[i].id, id)) {
            return true;
        }
    }
    return false;
}

static void queue_request(hamok_grid *g, const hamok_id *id, const char *endpoint, bool add)
{
    for (size_t i = 0; i < g->n_joins; i++) {
        if (hamok__id_eq(&g->joins[i].id, id)) {
            g->joins[i].add = add;
            if (add && endpoint != NULL) {
                char *e = hamok__strdup(endpoint);
                if (e != NULL) {
                    hamok__free(g->joins[i].endpoint);
                    g->joins[i].endpoint = e;
                }
            }
            return;
        }
    }
    if (g->n_joins >= MAX_JOINS) {
        return; /* the peer repeats its request */
    }
    char *e = hamok__strdup(endpoint != NULL ? endpoint : "");
    if (e == NULL) {
        return;
    }
    g->joins[g->n_joins++] = (join_req){.id = *id, .endpoint = e, .add = add};
}

static void send_states(hamok_grid *g, const hamok_id *to, const hamok_grid_view *v, bool committed)
{
    hamok_msg *m = new_msg(g, HAMOK_MSG_ENDPOINT_STATES, to);
    if (m == NULL) {
        return;
    }
    m->u.endpoint_states.term = v->term;
    m->u.endpoint_states.has_leader = v->has_leader;
    m->u.endpoint_states.leader = v->leader;
    m->u.endpoint_states.commit_index = v->commit_index;
    m->u.endpoint_states.members = (hamok_member *)(committed ? v->committed : v->members);
    m->u.endpoint_states.n_members = committed ? v->n_committed : v->n_members;
}

static void send_hello(hamok_grid *g, const hamok_grid_view *v)
{
    hamok_msg *m = new_msg(g, HAMOK_MSG_HELLO, NULL);
    if (m == NULL) {
        return;
    }
    m->u.hello.endpoint = g->endpoint;
    m->u.hello.has_leader = v->has_leader;
    m->u.hello.leader = v->leader;
}

/* Would-be members still heard within 3 hello periods, this peer included. */
static size_t live_seen(hamok_grid *g, uint64_t now, bool *smallest)
{
    size_t n = 1;
    *smallest = true;
    for (size_t i = 0; i < g->n_seen; i++) {
        if (now - g->seen[i].at > 3u * g->hello_ms && now >= g->seen[i].at) {
            continue;
        }
        n++;
        if (memcmp(g->seen[i].id.b, g->self.b, HAMOK_ID_LEN) < 0) {
            *smallest = false;
        }
    }
    return n;
}

static void joiner_tick(hamok_grid *g, uint64_t now, const hamok_grid_view *v, hamok_grid_out *out)
{
    if (!g->joining || g->leaving || now < g->next_hello) {
        return;
    }
    if (v->is_member) {
        /* A member without a leader may have been removed while it was away:
         * saying HELLO makes the members tell it (they answer non-members),
         * and tells them this peer's endpoint. */
        if (!v->has_leader) {
            g->next_hello = now + g->hello_ms;
            send_hello(g, v);
        } else if (self_moved(g, v)) {
            /* Back on another address than the configuration records (a
             * durable restart on a new port): the leader records the new
             * one through the log, so every member connects there. */
            g->next_hello = now + g->hello_ms;
            hamok_msg *m = new_msg(g, HAMOK_MSG_JOIN, &v->leader);
            if (m != NULL) {
                m->u.join.endpoint = g->endpoint;
            }
        }
        return;
    }
    g->next_hello = now + g->hello_ms;
    send_hello(g, v);
    if (g->has_hint) {
        hamok_msg *m = new_msg(g, HAMOK_MSG_JOIN, &g->hint);
        if (m != NULL) {
            m->u.join.endpoint = g->endpoint;
        }
    }
    /* Found a cluster? Only with no member ever heard, after the discovery
     * window, with enough would-be members, and the smallest id of them. */
    if (!g->heard_member && !v->founded && now - g->join_started >= g->discovery_ms) {
        bool smallest;
        size_t n = live_seen(g, now, &smallest);
        if (n >= g->bootstrap_expect && smallest) {
            out->found = true;
        }
    }
}

static void leaver_tick(hamok_grid *g, uint64_t now, const hamok_grid_view *v)
{
    if (!g->leaving || g->left || now < g->next_hello) {
        return;
    }
    g->next_hello = now + g->hello_ms;
    if (v->has_leader && !v->is_leader) {
        hamok_msg *m = new_msg(g, HAMOK_MSG_LEAVE, &v->leader);
        if (m != NULL) {
            m->u.join.endpoint = g->endpoint;
        }
    }
}

hamok_status hamok__grid_tick(hamok_grid *g, uint64_t now_ms, const hamok_grid_view *v,
                              hamok_grid_out *out)
{
    out_reset(g, out);
    if (v->is_member && g->joining) {
        g->has_hint = false;
    }
    joiner_tick(g, now_ms, v, out);
    leaver_tick(g, now_ms, v);
    out_finish(g, out, now_ms, v);
    return HAMOK_OK;
}

hamok_status hamok__grid_receive(hamok_grid *g, uint64_t now_ms, const hamok_msg *m,
                                 const hamok_grid_view *v, hamok_grid_out *out)
{
    out_reset(g, out);
    if (hamok__id_eq(&m->src, &g->self)) {
        out_finish(g, out, now_ms, v);
        return HAMOK_OK;
    }
    switch (m->type) {
    case HAMOK_MSG_HELLO: {
        learn(g, &m->src, m->u.hello.endpoint);
        bool member = in_members(v->members, v->n_members, &m->src);
        if (!member) {
            touch(g->seen, &g->n_seen, MAX_SEEN, &m->src, now_ms);
        }
        /* Members answer would-be members (and members that may have been
         * removed without knowing: they only say HELLO when not members). */
        if (v->is_member && v->n_members > 0) {
            send_states(g, &m->src, v, false);
        }
        break;
    }
    case HAMOK_MSG_ENDPOINT_STATES: {
        const hamok_msg_endpoint_states *s = &m->u.endpoint_states;
        for (size_t i = 0; i < s->n_members; i++) {
            learn(g, &s->members[i].id, s->members[i].endpoint);
        }
        if (s->n_members > 0) {
            g->heard_member = true;
        }
        bool listed = in_members(s->members, s->n_members, &g->self);
        if (g->leaving && s->has_leader && hamok__id_eq(&s->leader, &m->src) && !listed) {
            g->left = true;
            break;
        }
        if (!g->joining || g->leaving || !s->has_leader || listed) {
            break;
        }
        /* A member that is not listed by a leader at least as recent as its
         * own term was removed: it joins again (the log decides). */
        if (v->is_member && s->term < v->term) {
            break;
        }
        if (!g->has_hint || s->term >= g->hint_term) {
            g->has_hint = true;
            g->hint = s->leader;
            g->hint_term = s->term;
        }
        if (g->join_commit == 0) {
            g->join_commit = s->commit_index;
        }
        if (v->is_member) {
            /* Removed while away: ask again right now. */
            hamok_msg *j = new_msg(g, HAMOK_MSG_JOIN, &s->leader);
            if (j != NULL) {
                j->u.join.endpoint = g->endpoint;
            }
        } else {
            g->next_hello = now_ms; /* JOIN at the next tick */
        }
        break;
    }
    case HAMOK_MSG_JOIN:
        learn(g, &m->src, m->u.join.endpoint);
        if (v->is_leader) {
            queue_request(g, &m->src, m->u.join.endpoint, true);
        } else if (v->is_member) {
            send_states(g, &m->src, v, false); /* tells it the leader */
        }
        break;
    case HAMOK_MSG_LEAVE:
        if (!v->is_leader) {
            break;
        }
        if (!in_members(v->committed, v->n_committed, &m->src) &&
            !in_members(v->members, v->n_members, &m->src)) {
            send_states(g, &m->src, v, true);
        } else {
            queue_request(g, &m->src, NULL, false);
        }
        break;
    default: break;
    }
    out_finish(g, out, now_ms, v);
    return HAMOK_OK;
}

static void drop_request(hamok_grid *g, size_t i)
{
    hamok__free(g->joins[i].endpoint);
    g->joins[i] = g->joins[--g->n_joins];
}

bool hamok__grid_next_change(hamok_grid *g, uint64_t now_ms, const hamok_grid_view *v,
                             hamok_grid_change *out)
{
    if (!v->is_leader) {
        while (g->n_joins > 0) {
            drop_request(g, g->n_joins - 1);
        }
        return false;
    }
    /* Requests first, in arrival order of the queue. */
    for (size_t i = 0; i < g->n_joins; i++) {
        join_req *j = &g->joins[i];
        bool member = in_members(v->members, v->n_members, &j->id);
        bool moved =
            j->add && member && endpoint_moved(v->members, v->n_members, &j->id, j->endpoint);
        if (j->add == member && !moved) {
            drop_request(g, i); /* nothing to do */
            i--;
            continue;
        }
        if (!j->add && hamok__id_eq(&j->id, &g->self)) {
            drop_request(g, i); /* a leader leaves through a transfer first */
            i--;
            continue;
        }
        out->add = j->add;
        out->id = j->id;
        hamok__free(g->scratch_endpoint);
        g->scratch_endpoint = hamok__strdup(j->endpoint);
        out->endpoint = g->scratch_endpoint != NULL ? g->scratch_endpoint : "";
        return true;
    }
    /* Silent members. */
    if (g->peer_timeout_ms == 0 || now_ms - g->leader_since < g->peer_timeout_ms) {
        return false;
    }
    for (size_t i = 0; i < v->n_members; i++) {
        const hamok_id *id = &v->members[i].id;
        if (hamok__id_eq(id, &g->self)) {
            continue;
        }
        uint64_t silent = hamok__grid_silence(g, id, now_ms);
        if (silent == UINT64_MAX) {
            /* Never heard since this peer became leader: count from then. */
            hamok__grid_heard(g, id, g->leader_since);
            silent = now_ms - g->leader_since;
        }
        if (silent >= g->peer_timeout_ms) {
            out->add = false;
            out->id = *id;
            out->endpoint = NULL;
            return true;
        }
    }
    return false;
}

void hamok__grid_change_done(hamok_grid *g, const hamok_id *id, bool add)
{
    for (size_t i = 0; i < g->n_joins; i++) {
        if (hamok__id_eq(&g->joins[i].id, id) && g->joins[i].add == add) {
            drop_request(g, i);
            return;
        }
    }
}
