/* Sans-I/O Raft core. Section references: "§" = the Raft paper (Ongaro &
 * Ousterhout 2014, extended version), "thesis §" = Ongaro's dissertation. */
#include "raft/raft.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "raft/log.h"
#include "util/alloc.h"
#include "util/prng.h"

#ifdef HAMOK_RAFT_TESTING
hamok_raft_bug hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
#define BUG(b) (hamok__raft_bug == HAMOK_RAFT_BUG_##b)
#else
#define BUG(b) 0
#endif

#define NO_DEADLINE UINT64_MAX

typedef enum pr_state {
    PR_PROBE = 0,     /* one AppendEntries at a time until the match point is found */
    PR_REPLICATE = 1, /* pipelined: up to max_inflight batches outstanding */
    PR_SNAPSHOT = 2,  /* behind the log start: receiving a snapshot, chunk by chunk */
} pr_state;

typedef enum vote_state {
    VOTE_NONE = 0,
    VOTE_GRANTED = 1,
    VOTE_REJECTED = 2,
} vote_state;

/* Leader's view of one voter (and each voter's answer during an election). */
typedef struct progress {
    hamok_id id;
    bool is_self;
    bool voter; /* learners receive the log but never count */
    uint64_t next;
    uint64_t match;
    pr_state state;
    bool probe_sent;
    bool recent_active;   /* heard from since the last check-quorum round */
    uint64_t match_at_hb; /* match at the previous heartbeat (stall detection) */
    uint64_t *inflight;   /* ring of last indexes of the batches in flight */
    uint32_t in_head;
    uint32_t in_count;
    vote_state vote;
    uint64_t acked_ctx;         /* highest read-round ctx this voter answered */
    uint64_t snap_index;        /* PR_SNAPSHOT: the snapshot being sent */
    uint64_t snap_offset;       /* bytes the follower confirmed */
    uint64_t snap_offset_at_hb; /* stall detection */
} progress;

/* A read barrier waiting for the leader to confirm its leadership (thesis
 * §6.4). ctx is 0 until the leader has committed an entry of its term. */
typedef struct pending_read {
    uint64_t id;
    bool remote; /* asked by a follower: answer with READ_INDEX_RESPONSE */
    hamok_id from;
    uint64_t index;
    uint64_t ctx;
} pending_read;

/* Outgoing AppendEntries keep (first index, count) until the step ends, when
 * the entry pointers into the log are resolved: the log may grow (and move)
 * while the step runs. */
typedef struct out_msg {
    hamok_msg msg;
    uint64_t first_index;
} out_msg;

/* One configuration: the base (bootstrap, or the snapshot's) at index 0 of
 * r->cfgs, then one per CONFIG entry still in the log. */
typedef struct cfg_version {
    uint64_t index;
    hamok_member *members;
    size_t n;
} cfg_version;

#define MAX_MEMBERS 1024

struct hamok_raft {
    hamok_raft_options opt;
    /* Thesis §4.1: a server uses the latest configuration in its log,
     * committed or not; truncating its entry reverts to the previous one. */
    cfg_version *cfgs;
    size_t n_cfgs;
    size_t cap_cfgs;
    bool config_changed;

    /* Latest snapshot (thesis §5.1): the state machine as of this index. */
    uint64_t snapshot_index;
    uint64_t snapshot_term;
    uint64_t want_index;    /* last index a snapshot was asked for */
    uint64_t applied_bytes; /* entry bytes applied since the last snapshot */
    /* Follower: the snapshot being received. */
    bool in_active;
    uint64_t in_index;
    uint64_t in_term;
    uint64_t in_received;
    hamok_member *in_members;
    size_t in_n_members;
    progress *prs;
    size_t n_prs;
    size_t self_idx; /* SIZE_MAX when self is not a voter */
    size_t quorum;
    hamok_prng prng;

    /* Persistent state (Figure 2). */
    uint64_t term;
    bool has_vote;
    hamok_id vote;
    hamok_log log;

    /* Volatile state. */
    hamok_raft_role role;
    bool has_leader;
    hamok_id leader;
    uint64_t commit;
    uint64_t applied;
    uint64_t persisted; /* highest index known durable in this log */
    uint64_t verified;  /* follower: highest index known to match the current leader */

    uint64_t now;
    bool started;
    uint64_t election_deadline;
    uint64_t precampaign_at; /* when the current pre-vote round started */
    uint64_t heartbeat_deadline;
    uint64_t quorum_deadline;
    uint64_t last_leader_contact;

    /* Read barriers (leader) and the round counter their heartbeats carry. */
    pending_read *reads;
    size_t n_reads;
    size_t cap_reads;
    uint64_t read_ctx;

    /* Leadership transfer (thesis §3.10). */
    bool transferring;
    bool timeout_now_sent;
    hamok_id transfer_to;
    uint64_t transfer_deadline;

    /* Per-step output. */
    out_msg *out;
    size_t n_out;
    size_t cap_out;
    hamok_msg *msgs; /* resolved copy handed to the caller */
    size_t cap_msgs;
    bool hard_state_changed;
    uint64_t truncate_from;
    uint64_t persist_from;
    bool role_changed;
    bool leader_changed;
    uint64_t proposed_index;
    uint64_t proposed_term;
    hamok_raft_read *done_reads;
    size_t n_done_reads;
    size_t cap_done_reads;
    hamok_raft_snapshot_send *sends;
    size_t n_sends;
    size_t cap_sends;
    bool has_chunk;
    hamok_raft_snapshot_chunk chunk;
    uint8_t *chunk_data; /* taken from the received message */
    bool installed;
};

const char *hamok__raft_role_name(hamok_raft_role role)
{
    switch (role) {
    case HAMOK_RAFT_FOLLOWER: return "follower";
    case HAMOK_RAFT_PRECANDIDATE: return "pre-candidate";
    case HAMOK_RAFT_CANDIDATE: return "candidate";
    case HAMOK_RAFT_LEADER: return "leader";
    default: return "unknown";
    }
}

void hamok__raft_options_default(hamok_raft_options *o)
{
    memset(o, 0, sizeof *o);
    o->election_timeout_ms = 1000;
    o->heartbeat_ms = 100;
    o->max_inflight = 64;
    o->max_batch_bytes = 256 * 1024;
    o->max_batch_entries = 4096;
    o->pre_vote = true;
    o->check_quorum = true;
    o->auto_promote = true;
    o->snapshot_entries = 16384;
    o->snapshot_bytes = 64u * 1024u * 1024u;
    o->snapshot_trailing = 1024;
}

/* ------------------------------------------------------------------------- */
/* Construction */

static hamok_status rebuild_progress(hamok_raft *r);
static hamok_status cfg_append_raw(hamok_raft *r, uint64_t index, hamok_member *members, size_t n);
static hamok_status cfg_push(hamok_raft *r, uint64_t index, hamok_member *members, size_t n);
static hamok_status cfg_on_entry(hamok_raft *r, uint64_t index, const hamok_entry *e);
static hamok_status cfg_reset(hamok_raft *r, uint64_t index, hamok_member *members, size_t n);
static hamok_member *members_dup(const hamok_member *ms, size_t n, size_t extra);

/* How far compaction may be deferred while a snapshot is being sent. */
#define SNAPSHOT_DEFER_FACTOR 4u

/* Is this leader sending its snapshot to somebody? */
static bool sending_snapshot(const hamok_raft *r)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return false;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].state == PR_SNAPSHOT) {
            return true;
        }
    }
    return false;
}

hamok_status hamok__raft_new(hamok_raft **out, const hamok_raft_options *o)
{
    *out = NULL;
    if (o == NULL || (o->n_voters > 0 && o->voters == NULL) || o->n_voters > MAX_MEMBERS ||
        o->election_timeout_ms == 0 || o->heartbeat_ms == 0 ||
        o->heartbeat_ms >= o->election_timeout_ms || o->max_inflight == 0 ||
        o->max_inflight > 65536 || o->max_batch_bytes == 0 || o->max_batch_entries == 0) {
        return HAMOK_ERR_INVALID;
    }
    for (size_t i = 0; i < o->n_voters; i++) {
        for (size_t j = i + 1; j < o->n_voters; j++) {
            if (hamok__id_eq(&o->voters[i], &o->voters[j])) {
                return HAMOK_ERR_INVALID;
            }
        }
    }
    hamok_raft *r = hamok__calloc(1, sizeof *r);
    if (r == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    r->opt = *o;
    r->opt.voters = NULL;
    r->opt.n_voters = 0;
    r->opt.voter_endpoints = NULL;
    r->self_idx = SIZE_MAX;
    hamok__prng_seed(&r->prng, o->seed ^ 0x68616d6f6b726166ULL);
    hamok__log_init(&r->log);
    r->role = HAMOK_RAFT_FOLLOWER;
    hamok_member *ms = hamok__calloc(o->n_voters ? o->n_voters : 1, sizeof *ms);
    if (ms == NULL) {
        hamok__raft_destroy(&r);
        return HAMOK_ERR_NOMEM;
    }
    for (size_t i = 0; i < o->n_voters; i++) {
        ms[i].id = o->voters[i];
        ms[i].role = HAMOK_MEMBER_VOTER;
        const char *ep = o->voter_endpoints != NULL ? o->voter_endpoints[i] : NULL;
        ms[i].endpoint = hamok__strdup(ep != NULL ? ep : "");
        if (ms[i].endpoint == NULL) {
            hamok__members_free(ms, o->n_voters);
            hamok__raft_destroy(&r);
            return HAMOK_ERR_NOMEM;
        }
    }
    if (cfg_push(r, 0, ms, o->n_voters) != HAMOK_OK) {
        hamok__raft_destroy(&r);
        return HAMOK_ERR_NOMEM;
    }
    *out = r; /* the first update reports the configuration */
    return HAMOK_OK;
}

hamok_status hamok__raft_restore_snapshot(hamok_raft *r, uint64_t index, uint64_t term,
                                          const hamok_member *members, size_t n)
{
    if (r->started || r->log.n != 0 || r->snapshot_index != 0) {
        return HAMOK_ERR_STATE;
    }
    if (index == 0 || term == 0 || (n > 0 && members == NULL) || n > MAX_MEMBERS) {
        return HAMOK_ERR_INVALID;
    }
    hamok_member *ms = members_dup(members, n, 0);
    if (ms == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok__log_reset(&r->log, index, term);
    hamok_status st = cfg_reset(r, index, ms, n);
    if (st != HAMOK_OK) {
        hamok__log_reset(&r->log, 0, 0);
        return st;
    }
    r->snapshot_index = r->want_index = index;
    r->snapshot_term = term;
    r->commit = r->applied = r->persisted = index;
    if (r->term < term) {
        r->term = term;
    }
    return HAMOK_OK;
}

hamok_status hamok__raft_restore(hamok_raft *r, uint64_t term, const hamok_id *vote,
                                 const hamok_entry *entries, size_t n)
{
    if (r->started || r->log.n != 0) {
        return HAMOK_ERR_STATE;
    }
    uint64_t prev = r->log.snap_term;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].term < prev || entries[i].term > term ||
            entries[i].type < HAMOK_ENTRY_NOOP || entries[i].type > HAMOK_ENTRY_TYPE_MAX_) {
            return HAMOK_ERR_INVALID;
        }
        prev = entries[i].term;
    }
    hamok_status st = hamok__log_reserve(&r->log, n);
    if (st != HAMOK_OK) {
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        st = hamok__log_append_copy(&r->log, &entries[i], entries[i].term);
        if (st != HAMOK_OK) {
            hamok__log_truncate(&r->log, hamok__log_first(&r->log));
            return st;
        }
    }
    r->term = term;
    r->has_vote = vote != NULL;
    if (vote != NULL) {
        r->vote = *vote;
    }
    r->persisted = hamok__log_last(&r->log);
    for (size_t i = 0; i < n; i++) {
        uint64_t index = r->log.snap_index + 1 + i;
        st = cfg_on_entry(r, index, hamok__log_get(&r->log, index));
        if (st != HAMOK_OK) {
            return st;
        }
    }
    return HAMOK_OK;
}

void hamok__raft_destroy(hamok_raft **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    hamok_raft *r = *rp;
    for (size_t i = 0; i < r->n_prs; i++) {
        hamok__free(r->prs[i].inflight);
    }
    hamok__free(r->prs);
    for (size_t i = 0; i < r->n_cfgs; i++) {
        hamok__members_free(r->cfgs[i].members, r->cfgs[i].n);
    }
    hamok__free(r->cfgs);
    hamok__log_free(&r->log);
    hamok__free(r->out);
    hamok__free(r->msgs);
    hamok__free(r->reads);
    hamok__free(r->done_reads);
    hamok__free(r->sends);
    hamok__free(r->chunk_data);
    hamok__members_free(r->in_members, r->in_n_members);
    hamok__free(r);
    *rp = NULL;
}

/* ------------------------------------------------------------------------- */
/* Helpers */

static progress *find_pr(hamok_raft *r, const hamok_id *id)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        if (hamok__id_eq(&r->prs[i].id, id)) {
            return &r->prs[i];
        }
    }
    return NULL;
}

static bool is_voter(const hamok_raft *r)
{
    return r->self_idx != SIZE_MAX && r->prs[r->self_idx].voter;
}

/* ------------------------------------------------------------------------- */
/* Configurations */

static const cfg_version *cur_cfg(const hamok_raft *r)
{
    return &r->cfgs[r->n_cfgs - 1];
}

/* Rebuild the progress array for the configuration in force, keeping the
 * state of members that stay. Never call while holding a progress pointer. */
static hamok_status rebuild_progress(hamok_raft *r)
{
    const cfg_version *c = cur_cfg(r);
    progress *prs = hamok__calloc(c->n ? c->n : 1, sizeof *prs);
    if (prs == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    uint64_t last = hamok__log_last(&r->log);
    for (size_t i = 0; i < c->n; i++) {
        progress *old = find_pr(r, &c->members[i].id);
        if (old != NULL) {
            prs[i] = *old;
        } else {
            prs[i].id = c->members[i].id;
            prs[i].next = last + 1;
            prs[i].state = PR_PROBE;
            prs[i].inflight = hamok__calloc(r->opt.max_inflight, sizeof *prs[i].inflight);
            if (prs[i].inflight == NULL) {
                for (size_t k = 0; k < i; k++) {
                    if (find_pr(r, &prs[k].id) == NULL) {
                        hamok__free(prs[k].inflight);
                    }
                }
                hamok__free(prs);
                return HAMOK_ERR_NOMEM;
            }
        }
        prs[i].voter = c->members[i].role == HAMOK_MEMBER_VOTER;
        prs[i].is_self = hamok__id_eq(&prs[i].id, &r->opt.self);
    }
    /* Free what was not carried over. */
    for (size_t k = 0; k < r->n_prs; k++) {
        bool kept = false;
        for (size_t i = 0; i < c->n && !kept; i++) {
            kept = hamok__id_eq(&r->prs[k].id, &prs[i].id);
        }
        if (!kept) {
            hamok__free(r->prs[k].inflight);
        }
    }
    hamok__free(r->prs);
    r->prs = prs;
    r->n_prs = c->n;
    r->self_idx = SIZE_MAX;
    size_t voters = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (prs[i].is_self) {
            r->self_idx = i;
        }
        voters += prs[i].voter ? 1u : 0u;
    }
    /* §5.2, thesis §4: a majority of the voters of the configuration in
     * force, never of "peers heard from lately". */
    r->quorum = voters / 2 + 1;
    return HAMOK_OK;
}

/* Takes ownership of `members`. */
static hamok_status cfg_push(hamok_raft *r, uint64_t index, hamok_member *members, size_t n)
{
    hamok_status st = cfg_append_raw(r, index, members, n);
    if (st != HAMOK_OK) {
        return st;
    }
    st = rebuild_progress(r);
    if (st != HAMOK_OK) {
        r->n_cfgs--;
        hamok__members_free(members, n);
        return st;
    }
    r->config_changed = true;
    return HAMOK_OK;
}

/* A CONFIG entry was appended at `index` (or restored). */
/* HAMOK_ERR_NOMEM when the configuration could not be recorded: the caller
 * must then not keep the entry (log and configuration go together). */
static hamok_status cfg_on_entry(hamok_raft *r, uint64_t index, const hamok_entry *e)
{
    if (e == NULL || e->type != HAMOK_ENTRY_CONFIG) {
        return HAMOK_OK;
    }
    hamok_member *ms;
    size_t n;
    hamok_status st = hamok__codec_decode_config(e->data, e->len, &ms, &n);
    if (st != HAMOK_OK) {
        /* Leaders validate configurations: a malformed one changes nothing. */
        return st == HAMOK_ERR_NOMEM ? st : HAMOK_OK;
    }
    return cfg_push(r, index, ms, n);
}

/* Entries from `from` on were truncated: forget their configurations. */
static void cfg_truncate(hamok_raft *r, uint64_t from)
{
    bool changed = false;
    while (r->n_cfgs > 1 && r->cfgs[r->n_cfgs - 1].index >= from) {
        cfg_version *c = &r->cfgs[--r->n_cfgs];
        hamok__members_free(c->members, c->n);
        changed = true;
    }
    if (changed) {
        (void)rebuild_progress(r);
        r->config_changed = true;
    }
}

/* Keep only the configuration in force at `upto` as the base, dropping older
 * versions (their entries were compacted away). */
static void cfg_prune(hamok_raft *r, uint64_t upto)
{
    size_t keep = 0;
    for (size_t i = 0; i < r->n_cfgs; i++) {
        if (r->cfgs[i].index <= upto) {
            keep = i;
        }
    }
    for (size_t i = 0; i < keep; i++) {
        hamok__members_free(r->cfgs[i].members, r->cfgs[i].n);
    }
    memmove(r->cfgs, r->cfgs + keep, (r->n_cfgs - keep) * sizeof *r->cfgs);
    r->n_cfgs -= keep;
}

/* Append a version without rebuilding progress; takes `members`. */
static hamok_status cfg_append_raw(hamok_raft *r, uint64_t index, hamok_member *members, size_t n)
{
    if (r->n_cfgs == r->cap_cfgs) {
        size_t cap = r->cap_cfgs ? r->cap_cfgs * 2 : 4;
        cfg_version *p = hamok__realloc(r->cfgs, cap * sizeof *p);
        if (p == NULL) {
            hamok__members_free(members, n);
            return HAMOK_ERR_NOMEM;
        }
        r->cfgs = p;
        r->cap_cfgs = cap;
    }
    r->cfgs[r->n_cfgs++] = (cfg_version){index, members, n};
    return HAMOK_OK;
}

/* Replace every configuration by `members` (owned) as of `index`, then
 * re-read the CONFIG entries the log still holds after it. */
static hamok_status cfg_reset(hamok_raft *r, uint64_t index, hamok_member *members, size_t n)
{
    for (size_t i = 0; i < r->n_cfgs; i++) {
        hamok__members_free(r->cfgs[i].members, r->cfgs[i].n);
    }
    r->n_cfgs = 0;
    hamok_status st = cfg_append_raw(r, index, members, n);
    for (uint64_t i = hamok__log_first(&r->log); st == HAMOK_OK && i <= hamok__log_last(&r->log);
         i++) {
        const hamok_entry *e = hamok__log_get(&r->log, i);
        hamok_member *ms;
        size_t k;
        if (e->type == HAMOK_ENTRY_CONFIG &&
            hamok__codec_decode_config(e->data, e->len, &ms, &k) == HAMOK_OK) {
            st = cfg_append_raw(r, i, ms, k);
        }
    }
    if (st != HAMOK_OK) {
        return st;
    }
    r->config_changed = true;
    return rebuild_progress(r);
}

static const cfg_version *cfg_at(const hamok_raft *r, uint64_t index)
{
    const cfg_version *found = NULL;
    for (size_t i = 0; i < r->n_cfgs; i++) {
        if (r->cfgs[i].index <= index) {
            found = &r->cfgs[i];
        }
    }
    return found;
}

static uint64_t term_at(const hamok_raft *r, uint64_t index)
{
    uint64_t t = 0;
    (void)hamok__log_term(&r->log, index, &t);
    return t;
}

static void reset_election_timer(hamok_raft *r)
{
    /* §5.2: randomized election timeouts in [T, 2T) keep split votes rare. */
    uint64_t t = r->opt.election_timeout_ms;
    r->election_deadline = r->now + t + hamok__prng_below(&r->prng, t);
}

/* Thesis §6.2 / §9.6: a follower that heard from a leader within the minimum
 * election timeout (or a leader that confirmed its quorum) ignores disruptive
 * vote requests. Only sound together with check-quorum. */
static bool in_lease(const hamok_raft *r)
{
    if (!r->opt.check_quorum) {
        return false;
    }
    if (r->role == HAMOK_RAFT_LEADER) {
        return true;
    }
    return r->has_leader && r->now < r->last_leader_contact + r->opt.election_timeout_ms;
}

static hamok_msg *emit(hamok_raft *r, uint8_t type, const hamok_id *to)
{
    if (r->n_out == r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out * 2 : 16;
        out_msg *p = hamok__realloc(r->out, cap * sizeof *p);
        if (p == NULL) {
            return NULL; /* a lost message: Raft retransmits */
        }
        r->out = p;
        r->cap_out = cap;
    }
    out_msg *o = &r->out[r->n_out++];
    memset(o, 0, sizeof *o);
    o->msg.type = type;
    o->msg.src = r->opt.self;
    o->msg.dst = *to;
    return &o->msg;
}

static void set_leader(hamok_raft *r, const hamok_id *leader)
{
    bool had = r->has_leader;
    if (leader == NULL) {
        if (had) {
            r->leader_changed = true;
        }
        r->has_leader = false;
        memset(&r->leader, 0, sizeof r->leader);
        return;
    }
    if (!had || !hamok__id_eq(&r->leader, leader)) {
        r->leader_changed = true;
        r->verified = 0;
    }
    r->has_leader = true;
    r->leader = *leader;
}

static void set_term(hamok_raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        r->has_vote = false;
        memset(&r->vote, 0, sizeof r->vote);
        r->hard_state_changed = true;
        r->role_changed = true;
        r->verified = 0;
    }
}

static void pr_inflight_reset(progress *pr)
{
    pr->in_head = 0;
    pr->in_count = 0;
}

static void pr_become_probe(progress *pr, uint64_t next)
{
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->next = next;
    pr_inflight_reset(pr);
}

static void pr_become_replicate(progress *pr, uint64_t next)
{
    pr->state = PR_REPLICATE;
    pr->probe_sent = false;
    pr->next = next;
    pr_inflight_reset(pr);
}

/* Free the in-flight batches the follower has acknowledged. */
static void pr_inflight_free_to(hamok_raft *r, progress *pr, uint64_t match)
{
    while (pr->in_count > 0 && pr->inflight[pr->in_head] <= match) {
        pr->in_head = (pr->in_head + 1) % r->opt.max_inflight;
        pr->in_count--;
    }
}

static void pr_inflight_add(hamok_raft *r, progress *pr, uint64_t last)
{
    uint32_t slot = (pr->in_head + pr->in_count) % r->opt.max_inflight;
    pr->inflight[slot] = last;
    pr->in_count++;
}

/* ------------------------------------------------------------------------- */
/* Read barriers */

static void read_done(hamok_raft *r, uint64_t id, hamok_status st, uint64_t index)
{
    if (r->n_done_reads == r->cap_done_reads) {
        size_t cap = r->cap_done_reads ? r->cap_done_reads * 2 : 8;
        hamok_raft_read *p = hamok__realloc(r->done_reads, cap * sizeof *p);
        if (p == NULL) {
            return; /* the caller's deadline answers instead */
        }
        r->done_reads = p;
        r->cap_done_reads = cap;
    }
    r->done_reads[r->n_done_reads++] = (hamok_raft_read){id, st, index};
}

static void read_answer(hamok_raft *r, const pending_read *rd, hamok_status st, uint64_t index)
{
    if (!rd->remote) {
        read_done(r, rd->id, st, index);
        return;
    }
    hamok_msg *m = emit(r, HAMOK_MSG_READ_INDEX_RESPONSE, &rd->from);
    if (m != NULL) {
        m->u.read_index_response.request_id = rd->id;
        m->u.read_index_response.status = (uint32_t)st;
        m->u.read_index_response.read_index = index;
        m->u.read_index_response.has_leader = r->has_leader;
        m->u.read_index_response.leader = r->leader;
    }
}

static void fail_reads(hamok_raft *r)
{
    for (size_t i = 0; i < r->n_reads; i++) {
        read_answer(r, &r->reads[i], HAMOK_ERR_NOT_LEADER, 0);
    }
    r->n_reads = 0;
}

/* Reads whose round a quorum of voters has answered are confirmed: no other
 * leader could have committed anything when the round went out. */
static void confirm_reads(hamok_raft *r)
{
    size_t w = 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        pending_read *rd = &r->reads[i];
        size_t acks = 0;
        if (rd->ctx != 0) {
            for (size_t k = 0; k < r->n_prs; k++) {
                const progress *pr = &r->prs[k];
                if (pr->voter && (pr->is_self || pr->acked_ctx >= rd->ctx)) {
                    acks++;
                }
            }
        }
        if (rd->ctx != 0 && acks >= r->quorum) {
            read_answer(r, rd, HAMOK_OK, rd->index);
        } else {
            r->reads[w++] = *rd;
        }
    }
    r->n_reads = w;
}

static void send_heartbeat(hamok_raft *r, progress *pr);

/* Thesis §6.4: the read index is the commit index once the leader has
 * committed an entry of its own term; then one heartbeat round confirms that
 * it is still the leader. */
static void assign_reads(hamok_raft *r)
{
    if (r->n_reads == 0 || term_at(r, r->commit) != r->term) {
        return;
    }
    bool fresh = false;
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].ctx == 0) {
            if (!fresh) {
                r->read_ctx++;
                fresh = true;
            }
            r->reads[i].ctx = r->read_ctx;
            r->reads[i].index = r->commit;
        }
    }
    if (!fresh) {
        return;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        if (!r->prs[i].is_self) {
            send_heartbeat(r, &r->prs[i]);
        }
    }
    confirm_reads(r); /* a one-voter cluster needs no round */
}

static void register_read(hamok_raft *r, uint64_t id, bool remote, const hamok_id *from)
{
    pending_read rd = {id, remote, remote ? *from : r->opt.self, 0, 0};
    if (r->role != HAMOK_RAFT_LEADER) {
        if (remote) {
            read_answer(r, &rd, HAMOK_ERR_NOT_LEADER, 0);
        } else if (r->has_leader) {
            hamok_msg *m = emit(r, HAMOK_MSG_READ_INDEX_REQUEST, &r->leader);
            if (m != NULL) {
                m->u.read_index.request_id = id;
            }
        } else {
            read_done(r, id, HAMOK_ERR_NO_LEADER, 0);
        }
        return;
    }
    if (r->n_reads == r->cap_reads) {
        size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
        pending_read *p = hamok__realloc(r->reads, cap * sizeof *p);
        if (p == NULL) {
            read_answer(r, &rd, HAMOK_ERR_NOMEM, 0);
            return;
        }
        r->reads = p;
        r->cap_reads = cap;
    }
    r->reads[r->n_reads++] = rd;
    assign_reads(r);
}

/* ------------------------------------------------------------------------- */
/* Role changes */

static void become_follower(hamok_raft *r, uint64_t term, const hamok_id *leader)
{
    if (r->role == HAMOK_RAFT_LEADER) {
        fail_reads(r);
        r->transferring = false;
    }
    set_term(r, term);
    if (r->role != HAMOK_RAFT_FOLLOWER) {
        r->role = HAMOK_RAFT_FOLLOWER;
        r->role_changed = true;
    }
    set_leader(r, leader);
    if (leader != NULL) {
        r->last_leader_contact = r->now;
    }
    reset_election_timer(r);
}

static void send_append(hamok_raft *r, progress *pr, bool allow_empty);
static void maybe_commit(hamok_raft *r);

static hamok_status append_local(hamok_raft *r, const hamok_entry *entries, size_t n)
{
    hamok_status st = hamok__log_reserve(&r->log, n);
    if (st != HAMOK_OK) {
        return st;
    }
    uint64_t first = hamok__log_last(&r->log) + 1;
    for (size_t i = 0; i < n; i++) {
        st = hamok__log_append_copy(&r->log, &entries[i], r->term);
        if (st != HAMOK_OK) {
            hamok__log_truncate(&r->log, first);
            return st;
        }
    }
    if (r->persist_from == 0 || r->persist_from > first) {
        r->persist_from = first;
    }
    return HAMOK_OK;
}

/* Append a CONFIG entry of the current term carrying `ms` (owned) and make
 * it the configuration in force. On error nothing is appended. */
static hamok_status append_config(hamok_raft *r, hamok_member *ms, size_t n)
{
    hamok_buf buf = HAMOK_BUF_INIT;
    hamok_status st = hamok__codec_encode_config(ms, n, &buf);
    if (st != HAMOK_OK) {
        hamok__members_free(ms, n);
        hamok__buf_free(&buf);
        return st;
    }
    hamok_entry e = {0};
    e.type = HAMOK_ENTRY_CONFIG;
    e.data = buf.data;
    e.len = buf.len;
    uint64_t index = hamok__log_last(&r->log) + 1;
    st = append_local(r, &e, 1);
    hamok__buf_free(&buf);
    if (st != HAMOK_OK) {
        hamok__members_free(ms, n);
        return st;
    }
    st = cfg_push(r, index, ms, n);
    if (st != HAMOK_OK) {
        hamok__log_truncate(&r->log, index); /* keep log and configuration in step */
        return st;
    }
    return HAMOK_OK;
}

static void become_leader(hamok_raft *r)
{
    r->role = HAMOK_RAFT_LEADER;
    r->role_changed = true;
    set_leader(r, &r->opt.self);
    uint64_t last = hamok__log_last(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        pr->match = pr->is_self ? r->persisted : 0;
        pr->match_at_hb = 0;
        pr->recent_active = pr->is_self;
        pr->acked_ctx = 0;
        pr_become_probe(pr, last + 1);
    }
    r->last_leader_contact = r->now;
    r->heartbeat_deadline = r->now + r->opt.heartbeat_ms;
    r->quorum_deadline = r->now + r->opt.election_timeout_ms;
    r->read_ctx = 0;
    r->transferring = false;
    /* §8 / thesis §6.4: a no-op of the new term lets the leader learn which
     * entries are committed (it may commit only entries of its own term).
     * While the configuration in force is still the bootstrap one (no CONFIG
     * entry in the log, no snapshot), the entry of the new term is instead a
     * CONFIG entry carrying it: from then on every log and every snapshot
     * holds its configuration, also on peers that join and learn the log
     * from index 1 (etcd and LogCabin write the bootstrap configuration into
     * the log the same way). It serves as the no-op. */
    bool appended = false;
    if (cur_cfg(r)->index == 0) {
        hamok_member *ms = members_dup(cur_cfg(r)->members, cur_cfg(r)->n, 0);
        appended = ms != NULL && append_config(r, ms, cur_cfg(r)->n) == HAMOK_OK;
    }
    if (!appended) {
        hamok_entry noop = {0};
        noop.type = HAMOK_ENTRY_NOOP;
        (void)append_local(r, &noop, 1); /* on NOMEM the next proposal does the job */
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        if (!r->prs[i].is_self) {
            send_append(r, &r->prs[i], true);
        }
    }
    maybe_commit(r);
}

static size_t voter_count(const hamok_raft *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        n += r->prs[i].voter ? 1u : 0u;
    }
    return n;
}

static size_t count_votes(const hamok_raft *r, vote_state v)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].voter && r->prs[i].vote == v) {
            n++;
        }
    }
    return n;
}

/* §5.2 election; thesis §9.6 pre-vote: a pre-candidate asks whether it could
 * win in term+1 without touching its own term, so a node that was cut off
 * cannot inflate terms and depose a healthy leader when it returns. */
/* This server is a voter of configuration c. */
static bool self_voter_in(const hamok_raft *r, const cfg_version *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (hamok__id_eq(&c->members[i].id, &r->opt.self)) {
            return c->members[i].role == HAMOK_MEMBER_VOTER;
        }
    }
    return false;
}

static void campaign(hamok_raft *r, bool pre, bool transfer)
{
    /* Thesis §4.2.2: a server that is no voter of its latest configuration
     * still campaigns while that configuration is not known committed and it
     * was a voter of the one before: it may still be needed (it can hold the
     * only copy of the entry that removed it, and the others may need its
     * vote). Its own vote does not count (it is not a voter in prs); it asks
     * the voters of its latest configuration, and once elected it commits
     * the entry and steps down (after_step). Once the removal is committed a
     * majority of the new voters holds it, and they ignore a non-member's
     * requests (recv_vote_request), so a removed server cannot be elected
     * again, even after a restart made it forget the commit index. */
    bool removed_pending = r->n_cfgs >= 2 && cur_cfg(r)->index > r->commit &&
                           self_voter_in(r, &r->cfgs[r->n_cfgs - 2]);
    if (!is_voter(r) && !removed_pending) {
        reset_election_timer(r);
        return;
    }
    uint64_t vote_term;
    if (pre) {
        r->role = HAMOK_RAFT_PRECANDIDATE;
        r->role_changed = true;
        set_leader(r, NULL);
        vote_term = r->term + 1;
        r->precampaign_at = r->now;
    } else {
        r->role = HAMOK_RAFT_CANDIDATE;
        set_term(r, r->term + 1);
        r->role_changed = true;
        set_leader(r, NULL);
        r->has_vote = true;
        r->vote = r->opt.self; /* a candidate votes for itself */
        r->hard_state_changed = true;
        vote_term = r->term;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        r->prs[i].vote = r->prs[i].is_self ? VOTE_GRANTED : VOTE_NONE;
    }
    reset_election_timer(r);
    if (count_votes(r, VOTE_GRANTED) >= r->quorum) {
        if (pre) {
            campaign(r, false, transfer);
        } else {
            become_leader(r);
        }
        return;
    }
    uint64_t last = hamok__log_last(&r->log);
    uint64_t last_term = hamok__log_last_term(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].is_self || !r->prs[i].voter) {
            continue;
        }
        hamok_msg *m =
            emit(r, pre ? HAMOK_MSG_PREVOTE_REQUEST : HAMOK_MSG_VOTE_REQUEST, &r->prs[i].id);
        if (m != NULL) {
            m->u.vote.term = vote_term;
            m->u.vote.last_log_index = last;
            m->u.vote.last_log_term = last_term;
            m->u.vote.transfer = transfer;
        }
    }
}

static void start_election(hamok_raft *r)
{
    campaign(r, r->opt.pre_vote, false);
}

/* ------------------------------------------------------------------------- */
/* Replication (leader side) */

/* Thesis §5.1: a follower whose next entry was compacted away gets the
 * latest snapshot, chunk by chunk; the caller reads the bytes. */
static void request_chunk(hamok_raft *r, progress *pr)
{
    if (pr->snap_index != r->snapshot_index) {
        pr->snap_index = r->snapshot_index; /* a newer one replaced it: restart */
        pr->snap_offset = 0;
    }
    if (r->n_sends == r->cap_sends) {
        size_t cap = r->cap_sends ? r->cap_sends * 2 : 4;
        hamok_raft_snapshot_send *p = hamok__realloc(r->sends, cap * sizeof *p);
        if (p == NULL) {
            return; /* retried at the next heartbeat */
        }
        r->sends = p;
        r->cap_sends = cap;
    }
    const cfg_version *c = cfg_at(r, pr->snap_index);
    r->sends[r->n_sends++] =
        (hamok_raft_snapshot_send){pr->id,           r->term,         pr->snap_index,
                                   r->snapshot_term, pr->snap_offset, c ? c->members : NULL,
                                   c ? c->n : 0};
}

static void start_snapshot(hamok_raft *r, progress *pr)
{
    pr->state = PR_SNAPSHOT;
    pr->probe_sent = false;
    pr_inflight_reset(pr);
    pr->snap_index = r->snapshot_index;
    pr->snap_offset = 0;
    pr->snap_offset_at_hb = UINT64_MAX;
    request_chunk(r, pr);
}

/* §5.3: AppendEntries carrying up to max_batch_entries / max_batch_bytes from
 * pr->next on. In PROBE one batch is outstanding at a time; in REPLICATE up to
 * max_inflight batches are pipelined. */
static void send_append(hamok_raft *r, progress *pr, bool allow_empty)
{
    uint64_t last = hamok__log_last(&r->log);
    uint64_t prev = pr->next - 1;
    uint64_t prev_term;
    if (!hamok__log_term(&r->log, prev, &prev_term)) {
        if (r->snapshot_index > 0 && pr->state != PR_SNAPSHOT) {
            start_snapshot(r, pr); /* below the log start */
        }
        return;
    }
    size_t n = 0;
    size_t bytes = 0;
    for (uint64_t i = pr->next; i <= last && n < r->opt.max_batch_entries; i++) {
        const hamok_entry *e = hamok__log_get(&r->log, i);
        if (n > 0 && bytes + e->len > r->opt.max_batch_bytes) {
            break;
        }
        bytes += e->len;
        n++;
    }
    if (n == 0 && !allow_empty) {
        return;
    }
    hamok_msg *m = emit(r, HAMOK_MSG_APPEND_ENTRIES, &pr->id);
    if (m == NULL) {
        return;
    }
    m->u.append.term = r->term;
    m->u.append.prev_log_index = prev;
    m->u.append.prev_log_term = prev_term;
    m->u.append.leader_commit = r->commit;
    m->u.append.ctx = r->read_ctx;
    m->u.append.n_entries = n;
    r->out[r->n_out - 1].first_index = pr->next;
    if (pr->state == PR_PROBE) {
        pr->probe_sent = true;
    } else if (n > 0) {
        pr->next += n;
        pr_inflight_add(r, pr, pr->next - 1);
    }
}

/* Send whatever the follower can take now. */
static void send_new(hamok_raft *r, progress *pr)
{
    uint64_t last = hamok__log_last(&r->log);
    if (pr->state == PR_SNAPSHOT) {
        return; /* the snapshot's chunks flow on their own */
    }
    if (pr->state == PR_PROBE) {
        if (!pr->probe_sent && pr->next <= last) {
            send_append(r, pr, false);
        }
        return;
    }
    while (pr->in_count < r->opt.max_inflight && pr->next <= last) {
        size_t before = r->n_out;
        send_append(r, pr, false);
        if (r->n_out == before) {
            break;
        }
    }
}

/* An empty AppendEntries anchored at the follower's known match point: always
 * accepted, carries the commit index and resets the follower's timer. */
static void send_heartbeat(hamok_raft *r, progress *pr)
{
    hamok_msg *m = emit(r, HAMOK_MSG_APPEND_ENTRIES, &pr->id);
    if (m == NULL) {
        return;
    }
    /* Anchor at the match point, or the log start if that was compacted (a
     * follower lacking it answers with a hint that leads to a snapshot). */
    uint64_t prev = pr->match > r->log.snap_index ? pr->match : r->log.snap_index;
    m->u.append.term = r->term;
    m->u.append.prev_log_index = prev;
    m->u.append.prev_log_term = term_at(r, prev);
    m->u.append.leader_commit = r->commit;
    m->u.append.ctx = r->read_ctx;
    r->out[r->n_out - 1].first_index = prev + 1;
}

/* Thesis §3.10: once the target has every entry, tell it to campaign at once. */
static void send_timeout_now(hamok_raft *r, progress *pr)
{
    if (!r->transferring || r->timeout_now_sent || pr->match < hamok__log_last(&r->log)) {
        send_new(r, pr);
        return;
    }
    hamok_msg *m = emit(r, HAMOK_MSG_TIMEOUT_NOW, &pr->id);
    if (m != NULL) {
        m->u.timeout_now.term = r->term;
        r->timeout_now_sent = true;
    }
}

static hamok_status transfer(hamok_raft *r, const hamok_raft_event *ev)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return HAMOK_ERR_NOT_LEADER;
    }
    progress *target = NULL;
    if (ev->u.transfer.has_target) {
        target = find_pr(r, &ev->u.transfer.target);
        if (target == NULL || target->is_self || !target->voter) {
            return HAMOK_ERR_INVALID;
        }
    } else {
        /* The most up-to-date voter: it can be handed over soonest. */
        for (size_t i = 0; i < r->n_prs; i++) {
            progress *pr = &r->prs[i];
            if (!pr->is_self && pr->voter && (target == NULL || pr->match > target->match)) {
                target = pr;
            }
        }
        if (target == NULL) {
            return HAMOK_ERR_STATE;
        }
    }
    /* New proposals wait (BUSY) so the target can catch up; the attempt is
     * abandoned after an election timeout (thesis §3.10). */
    r->transferring = true;
    r->timeout_now_sent = false;
    r->transfer_to = target->id;
    r->transfer_deadline = r->now + r->opt.election_timeout_ms;
    send_timeout_now(r, target);
    return HAMOK_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? 1 : (x > y ? -1 : 0);
}

/* §5.3/§5.4.2: commitIndex = the highest N replicated on a majority of the
 * configuration, and only if log[N] has the current term (Figure 8: entries of
 * older terms are committed indirectly, never by counting). */
static void maybe_commit(hamok_raft *r)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return;
    }
    uint64_t matches[MAX_MEMBERS];
    size_t n = 0;
    size_t quorum = r->quorum;
    for (size_t i = 0; i < r->n_prs; i++) {
        const progress *pr = &r->prs[i];
        if (!pr->voter) {
            continue;
        }
        if (BUG(QUORUM_RECENT_PEERS) && !pr->is_self && !pr->recent_active) {
            continue; /* injected bug: only peers heard from lately count */
        }
        matches[n++] = pr->is_self ? r->persisted : pr->match;
    }
    if (n == 0) {
        return;
    }
    if (BUG(QUORUM_RECENT_PEERS)) {
        quorum = n / 2 + 1;
    }
    qsort(matches, n, sizeof matches[0], cmp_desc);
    uint64_t N = matches[quorum - 1];
    if (N <= r->commit) {
        return;
    }
    if (term_at(r, N) != r->term && !BUG(COMMIT_OLD_TERM)) {
        return;
    }
    r->commit = N;
    assign_reads(r);
    /* Tell followers promptly: batches carry the commit index; followers with
     * nothing to receive get an empty AppendEntries. */
    for (size_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        if (pr->is_self || pr->state != PR_REPLICATE) {
            continue;
        }
        size_t before = r->n_out;
        send_new(r, pr);
        if (r->n_out == before) {
            send_heartbeat(r, pr);
        }
    }
}

/* Thesis §6.2: a leader that has not heard from a majority within an election
 * timeout steps down, so a partitioned leader stops serving. */
static void check_quorum(hamok_raft *r)
{
    r->quorum_deadline = r->now + r->opt.election_timeout_ms;
    if (!r->opt.check_quorum) {
        return;
    }
    size_t active = 0;
    size_t considered = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        if (!pr->voter) {
            pr->recent_active = false;
            continue;
        }
        if (BUG(QUORUM_RECENT_PEERS) && !pr->is_self && !pr->recent_active) {
            continue;
        }
        considered++;
        if (pr->is_self || pr->recent_active) {
            active++;
        }
        if (!pr->is_self) {
            pr->recent_active = false;
        }
    }
    if (BUG(QUORUM_RECENT_PEERS)) {
        /* injected bug: the quorum shrinks to whoever answered */
        for (size_t i = 0; i < r->n_prs; i++) {
            r->prs[i].recent_active = r->prs[i].is_self;
        }
        if (active >= considered / 2 + 1) {
            r->last_leader_contact = r->now;
            return;
        }
    } else if (active >= r->quorum) {
        r->last_leader_contact = r->now;
        return;
    }
    become_follower(r, r->term, NULL);
}

static void heartbeat(hamok_raft *r)
{
    r->heartbeat_deadline = r->now + r->opt.heartbeat_ms;
    uint64_t last = hamok__log_last(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        if (pr->is_self) {
            continue;
        }
        if (pr->state == PR_SNAPSHOT) {
            if (pr->snap_offset == pr->snap_offset_at_hb) {
                request_chunk(r, pr); /* no progress for a period: resend */
            }
            pr->snap_offset_at_hb = pr->snap_offset;
        } else if (pr->state == PR_PROBE) {
            /* Retransmit the probe (it or its answer may have been lost). */
            pr->probe_sent = false;
            send_append(r, pr, true);
        } else if (pr->match < last && pr->match == pr->match_at_hb) {
            /* No progress for a whole heartbeat period: batches were lost.
             * Fall back to probing from the known match point. */
            pr_become_probe(pr, pr->match + 1);
            send_append(r, pr, true);
        } else {
            pr->match_at_hb = pr->match;
            send_heartbeat(r, pr);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Message handlers */

/* How long a pre-vote round takes to turn into a campaign, generously: two
 * heartbeat periods, at most half an election timeout. */
static uint64_t pre_vote_grace(const hamok_raft *r)
{
    uint64_t grace = 2u * (uint64_t)r->opt.heartbeat_ms;
    return grace < r->opt.election_timeout_ms / 2u ? grace : r->opt.election_timeout_ms / 2u;
}

static void recv_vote_request(hamok_raft *r, const hamok_msg *m)
{
    bool pre = m->type == HAMOK_MSG_PREVOTE_REQUEST;
    const hamok_msg_vote *v = &m->u.vote;
    /* Answer every member of our configuration, learners included: after a
     * promotion we have not received, the promoted server may hold the most
     * up-to-date log and need our vote (a learner only campaigns once its
     * own log makes it a voter). Ignore non-members: a server whose removal
     * we hold must not win (together with the self-removal rule in
     * campaign(), a removed server that lost track of the commit would
     * otherwise be re-elected; thesis §4.2.3). */
    const progress *cand = find_pr(r, &m->src);
    if (cand == NULL) {
        return;
    }
    uint64_t my_last = hamok__log_last(&r->log);
    uint64_t my_last_term = hamok__log_last_term(&r->log);
    /* §5.4.1 election restriction: grant only to a log at least as up to date,
     * comparing the last entries' terms first, then the lengths. */
    bool up_to_date = v->last_log_term > my_last_term ||
                      (v->last_log_term == my_last_term && v->last_log_index >= my_last);
    if (BUG(VOTE_IGNORES_LAST_TERM)) {
        up_to_date = v->last_log_index >= my_last;
    }
    bool can;
    if (pre) {
        can = v->term > r->term && (v->transfer || !in_lease(r));
        /* Two servers whose timers fired together would both win their
         * pre-votes from each other, both campaign and split the vote (with
         * one of three members down, each then needs the other's vote).
         * Just after starting a pre-vote round, grant only a log strictly
         * more up to date, or an equal one of a smaller id: of simultaneous
         * pre-candidates one goes ahead. Only for a grace period: a server
         * stuck pre-campaigning in a minority must not keep the others from
         * winning. Pre-votes bind nothing: safety is unaffected. */
        bool better = v->last_log_term > my_last_term ||
                      (v->last_log_term == my_last_term && v->last_log_index > my_last);
        if (can && !v->transfer && r->role == HAMOK_RAFT_PRECANDIDATE && !better &&
            r->now < r->precampaign_at + pre_vote_grace(r) &&
            memcmp(m->src.b, r->opt.self.b, HAMOK_ID_LEN) > 0) {
            can = false;
        }
    } else {
        /* §5.2: one vote per term, first come first served. */
        can = (r->has_vote && hamok__id_eq(&r->vote, &m->src)) || (!r->has_vote && !r->has_leader);
    }
    bool grant = can && up_to_date;
    if (grant && pre && r->role == HAMOK_RAFT_FOLLOWER) {
        /* The one we pre-voted for asks for real votes one round trip
         * later: do not start a campaign of our own just before it does
         * (that would split the vote). A short grace, not a timer reset, so
         * a server that keeps pre-campaigning without winning cannot hold
         * our election off. */
        uint64_t grace = pre_vote_grace(r);
        if (r->election_deadline < r->now + grace) {
            r->election_deadline = r->now + grace;
        }
    }
    if (grant && !pre) {
        if (!r->has_vote) {
            r->has_vote = true;
            r->vote = m->src;
            r->hard_state_changed = true;
        }
        reset_election_timer(r);
    }
    hamok_msg *out = emit(r, pre ? HAMOK_MSG_PREVOTE_RESPONSE : HAMOK_MSG_VOTE_RESPONSE, &m->src);
    if (out != NULL) {
        out->u.vote_response.term = (grant && pre) ? v->term : r->term;
        out->u.vote_response.granted = grant;
    }
}

static void recv_vote_response(hamok_raft *r, const hamok_msg *m)
{
    bool pre = m->type == HAMOK_MSG_PREVOTE_RESPONSE;
    if ((pre && r->role != HAMOK_RAFT_PRECANDIDATE) || (!pre && r->role != HAMOK_RAFT_CANDIDATE)) {
        return;
    }
    uint64_t expect = pre ? r->term + 1 : r->term;
    const hamok_msg_vote_response *v = &m->u.vote_response;
    if (v->granted && v->term != expect) {
        return; /* an answer to an earlier round */
    }
    progress *pr = find_pr(r, &m->src);
    if (pr == NULL || pr->is_self || !pr->voter) {
        return;
    }
    pr->vote = v->granted ? VOTE_GRANTED : VOTE_REJECTED;
    if (count_votes(r, VOTE_GRANTED) >= r->quorum) {
        if (pre) {
            campaign(r, false, false);
        } else {
            become_leader(r);
        }
    } else if (r->quorum + count_votes(r, VOTE_REJECTED) > voter_count(r)) {
        become_follower(r, r->term, NULL); /* lost: wait for a leader or time out */
    }
}

static void respond_append(hamok_raft *r, const hamok_id *to, uint64_t ctx)
{
    hamok_msg *out = emit(r, HAMOK_MSG_APPEND_RESPONSE, to);
    if (out == NULL) {
        return;
    }
    hamok_msg_append_response *a = &out->u.append_response;
    a->term = r->term;
    a->success = true;
    a->match_index = r->verified < r->persisted ? r->verified : r->persisted;
    a->last_log_index = r->verified;
    a->ctx = ctx;
}

static void reject_append(hamok_raft *r, const hamok_id *to, uint64_t prev, uint64_t prev_term,
                          uint64_t ctx)
{
    hamok_msg *out = emit(r, HAMOK_MSG_APPEND_RESPONSE, to);
    if (out == NULL) {
        return;
    }
    hamok_msg_append_response *a = &out->u.append_response;
    uint64_t last = hamok__log_last(&r->log);
    a->term = r->term;
    a->success = false;
    a->reject_index = prev;
    a->last_log_index = last;
    a->ctx = ctx;
    /* Back-off hint (§5.3 last paragraph; etcd's findConflictByTerm): the
     * largest index at or before prev whose term is <= the leader's
     * prevLogTerm. Everything after it up to prev has a newer term than the
     * leader holds there, so none of it can match: the leader skips it all in
     * one round trip, whatever the number of short-lived terms it spans. */
    uint64_t lo = hamok__log_first(&r->log) - 1;
    uint64_t hi = prev < last ? prev : last;
    uint64_t hint = hamok__log_last_with_term_at_most(&r->log, lo, hi, prev_term);
    if (hint + 1 == lo || hint < lo) {
        hint = lo;
    }
    a->conflict_index = hint;
    a->conflict_term = term_at(r, hint);
}

static void recv_append(hamok_raft *r, hamok_msg *m)
{
    hamok_msg_append *a = &m->u.append;
    if (r->role == HAMOK_RAFT_LEADER) {
        return; /* impossible for a correct peer: one leader per term (§5.2) */
    }
    if (r->role != HAMOK_RAFT_FOLLOWER || !r->has_leader || !hamok__id_eq(&r->leader, &m->src)) {
        become_follower(r, r->term, &m->src);
    }
    r->last_leader_contact = r->now;
    reset_election_timer(r);
    /* Everything up to our commit index is in every later leader's log
     * (Leader Completeness, §5.4), so it matches the current leader: never
     * answer "match 0" after a leader change (the leader would resend from
     * below our log start forever). */
    if (r->verified < r->commit) {
        r->verified = r->commit;
    }

    uint64_t prev = a->prev_log_index;
    uint64_t last = hamok__log_last(&r->log);
    uint64_t t;
    size_t skip = 0;
    if (prev < r->log.snap_index) {
        /* Entries up to our snapshot are committed and match any leader's
         * (§5.4): skip them and check the rest from the snapshot point. */
        uint64_t behind = r->log.snap_index - prev;
        if (behind >= a->n_entries) {
            respond_append(r, &m->src, a->ctx);
            return;
        }
        skip = (size_t)behind;
        prev = r->log.snap_index;
        a->prev_log_term = r->log.snap_term;
    }
    /* §5.3 consistency check on (prevLogIndex, prevLogTerm). */
    if (prev > last || !hamok__log_term(&r->log, prev, &t) || t != a->prev_log_term) {
        if (prev < r->commit) {
            return; /* entries up to commit match any leader's (§5.4); stale message */
        }
        reject_append(r, &m->src, prev, a->prev_log_term, a->ctx);
        return;
    }
    hamok_status st = hamok__log_reserve(&r->log, a->n_entries);
    if (st != HAMOK_OK) {
        return; /* the leader retries */
    }
    uint64_t index = prev;
    for (size_t i = skip; i < a->n_entries; i++) {
        index = prev + 1 + (i - skip);
        hamok_entry *e = &a->entries[i];
        if (index <= hamok__log_last(&r->log)) {
            if (term_at(r, index) == e->term) {
                continue; /* already have it (a duplicate or reordered batch) */
            }
            /* §5.3: delete the conflicting entry and all that follow it.
             * Committed entries never conflict (Leader Completeness). */
            if (index <= r->commit) {
                return;
            }
            hamok__log_truncate(&r->log, index);
            cfg_truncate(r, index);
            if (r->truncate_from == 0 || r->truncate_from > index) {
                r->truncate_from = index;
            }
            if (r->persist_from > index) {
                r->persist_from = 0;
            }
            if (r->persisted >= index) {
                r->persisted = index - 1;
            }
        }
        if (e->term > r->term || e->type < HAMOK_ENTRY_NOOP || e->type > HAMOK_ENTRY_TYPE_MAX_ ||
            (hamok__log_last(&r->log) > 0 && e->term < hamok__log_last_term(&r->log))) {
            index--; /* malformed batch: keep what was valid */
            break;
        }
        if (hamok__log_append_take(&r->log, e) != HAMOK_OK) {
            index--; /* out of memory: acknowledge what is stored; the leader resends */
            break;
        }
        if (cfg_on_entry(r, index, hamok__log_get(&r->log, index)) != HAMOK_OK) {
            hamok__log_truncate(&r->log, index);
            index--;
            break;
        }
        if (r->persist_from == 0 || r->persist_from > index) {
            r->persist_from = index;
        }
    }
    if (index > r->verified) {
        r->verified = index;
    }
    /* §5.3: commitIndex = min(leaderCommit, index of last new entry). */
    uint64_t c = a->leader_commit < r->verified ? a->leader_commit : r->verified;
    if (c > r->commit) {
        r->commit = c;
    }
    respond_append(r, &m->src, a->ctx);
}

static void recv_append_response(hamok_raft *r, const hamok_msg *m)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return;
    }
    progress *pr = find_pr(r, &m->src);
    if (pr == NULL || pr->is_self) {
        return;
    }
    const hamok_msg_append_response *a = &m->u.append_response;
    pr->recent_active = true;
    if (a->ctx > pr->acked_ctx) {
        pr->acked_ctx = a->ctx;
        confirm_reads(r);
    }
    uint64_t last = hamok__log_last(&r->log);
    if (pr->state == PR_SNAPSHOT) {
        return; /* an answer to an earlier batch; the snapshot decides */
    }
    if (a->success) {
        uint64_t verified = a->last_log_index < last ? a->last_log_index : last;
        uint64_t match = a->match_index < verified ? a->match_index : verified;
        bool advanced = match > pr->match;
        if (advanced) {
            pr->match = match;
        }
        if (pr->state == PR_PROBE) {
            pr_become_replicate(pr, (verified > pr->match ? verified : pr->match) + 1);
        } else {
            pr_inflight_free_to(r, pr, pr->match);
            if (verified + 1 > pr->next) {
                pr->next = verified + 1;
            }
        }
        if (advanced) {
            maybe_commit(r);
        }
        if (r->transferring && hamok__id_eq(&pr->id, &r->transfer_to)) {
            send_timeout_now(r, pr);
        } else {
            send_new(r, pr);
        }
        return;
    }
    /* Rejection. Stale answers (to batches sent before the last change of
     * course) are ignored. */
    if (a->reject_index <= pr->match) {
        return;
    }
    if (pr->state == PR_PROBE && a->reject_index != pr->next - 1) {
        return;
    }
    /* The follower's entries after conflict_index cannot match; ours after
     * the last index <= conflict_index whose term is <= conflict_term cannot
     * either. Probe right after that point (etcd's leader-side jump). */
    uint64_t lo = hamok__log_first(&r->log) - 1;
    uint64_t hi = a->conflict_index < last ? a->conflict_index : last;
    uint64_t next;
    if (hi < lo) {
        next = hi + 1; /* compacted here: the probe turns into a snapshot */
    } else {
        uint64_t k = hamok__log_last_with_term_at_most(&r->log, lo, hi, a->conflict_term);
        next = (k + 1 == lo || k < lo) ? lo : k + 1;
    }
    if (next == 0) {
        next = 1;
    }
    if (next > a->reject_index) {
        next = a->reject_index;
    }
    if (next < pr->match + 1) {
        next = pr->match + 1;
    }
    pr_become_probe(pr, next);
    send_append(r, pr, true);
}

static void respond_snapshot(hamok_raft *r, const hamok_id *to, uint64_t index, uint64_t next,
                             bool done)
{
    hamok_msg *out = emit(r, HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE, to);
    if (out != NULL) {
        out->u.snapshot_response.term = r->term;
        out->u.snapshot_response.last_index = index;
        out->u.snapshot_response.next_offset = next;
        out->u.snapshot_response.done = done;
    }
}

/* Thesis §5.1 / Figure 5.3: the last chunk installs the snapshot. A log
 * that holds the snapshot's last entry keeps what follows it; otherwise the
 * whole log goes. The caller restores its state machine from the snapshot. */
static void install_snapshot(hamok_raft *r)
{
    uint64_t index = r->in_index;
    uint64_t term = r->in_term;
    uint64_t t;
    if (hamok__log_term(&r->log, index, &t) && t == term) {
        hamok__log_compact(&r->log, index);
    } else {
        /* The whole log goes. That is part of what snapshot_installed tells
         * the caller (raft.h), not a truncation: truncate_from stays 0 (a
         * storage refuses to truncate at or below its snapshot). */
        hamok__log_reset(&r->log, index, term);
        r->persist_from = 0;
        r->persisted = index;
    }
    if (r->persisted < index) {
        r->persisted = index;
    }
    if (r->commit < index) {
        r->commit = index;
    }
    r->applied = index;
    if (r->verified < index) {
        r->verified = index;
    }
    r->snapshot_index = index;
    r->snapshot_term = term;
    r->want_index = index;
    r->applied_bytes = 0;
    hamok_member *ms = r->in_members;
    size_t n = r->in_n_members;
    r->in_members = NULL;
    r->in_n_members = 0;
    r->in_active = false;
    (void)cfg_reset(r, index, ms, n);
    r->installed = true;
}

static void recv_snapshot(hamok_raft *r, hamok_msg *m)
{
    hamok_msg_snapshot *sn = &m->u.snapshot;
    if (r->role == HAMOK_RAFT_LEADER) {
        return;
    }
    if (r->role != HAMOK_RAFT_FOLLOWER || !r->has_leader || !hamok__id_eq(&r->leader, &m->src)) {
        become_follower(r, r->term, &m->src);
    }
    r->last_leader_contact = r->now;
    reset_election_timer(r);
    if (sn->last_index <= r->applied) {
        /* Already applied: those entries are committed, nothing to install. */
        respond_snapshot(r, &m->src, sn->last_index, 0, true);
        return;
    }
    if (sn->offset == 0) {
        hamok__members_free(r->in_members, r->in_n_members);
        r->in_members = sn->members; /* taken from the message */
        r->in_n_members = sn->n_members;
        sn->members = NULL;
        sn->n_members = 0;
        r->in_active = true;
        r->in_index = sn->last_index;
        r->in_term = sn->last_term;
        r->in_received = 0;
    } else if (!r->in_active || r->in_index != sn->last_index || r->in_term != sn->last_term ||
               sn->offset != r->in_received) {
        bool same = r->in_active && r->in_index == sn->last_index && r->in_term == sn->last_term;
        respond_snapshot(r, &m->src, sn->last_index, same ? r->in_received : 0, false);
        return;
    }
    hamok__free(r->chunk_data);
    r->chunk_data = sn->data; /* taken from the message */
    sn->data = NULL;
    r->has_chunk = true;
    r->chunk = (hamok_raft_snapshot_chunk){sn->last_index,
                                           sn->last_term,
                                           sn->offset,
                                           r->chunk_data,
                                           sn->len,
                                           sn->done,
                                           sn->offset == 0 ? r->in_members : NULL,
                                           sn->offset == 0 ? r->in_n_members : 0};
    r->in_received += sn->len;
    if (sn->done) {
        install_snapshot(r);
    }
    respond_snapshot(r, &m->src, sn->last_index, r->in_received, sn->done);
}

static void recv_snapshot_response(hamok_raft *r, const hamok_msg *m)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return;
    }
    progress *pr = find_pr(r, &m->src);
    if (pr == NULL || pr->is_self) {
        return;
    }
    pr->recent_active = true;
    const hamok_msg_snapshot_response *a = &m->u.snapshot_response;
    if (a->done) {
        uint64_t last = hamok__log_last(&r->log);
        uint64_t match = a->last_index < last ? a->last_index : last;
        bool advanced = match > pr->match;
        if (advanced) {
            pr->match = match;
        }
        if (pr->state == PR_SNAPSHOT && a->last_index >= pr->snap_index) {
            pr_become_probe(pr, pr->match + 1);
            send_append(r, pr, true);
        }
        if (advanced) {
            maybe_commit(r);
        }
        return;
    }
    if (pr->state == PR_SNAPSHOT && a->last_index == pr->snap_index &&
        a->next_offset != pr->snap_offset) {
        pr->snap_offset = a->next_offset;
        request_chunk(r, pr);
    }
}

/* The caller stored a snapshot as of `index`: compact the log before it,
 * keeping snapshot_trailing entries for followers slightly behind. */
static hamok_status snapshot_taken(hamok_raft *r, uint64_t index)
{
    uint64_t t;
    if (index == 0 || index > r->applied || !hamok__log_term(&r->log, index, &t)) {
        return HAMOK_ERR_INVALID;
    }
    if (index <= r->snapshot_index) {
        return HAMOK_OK;
    }
    r->snapshot_index = index;
    r->snapshot_term = t;
    uint64_t upto = index > r->opt.snapshot_trailing ? index - r->opt.snapshot_trailing : 0;
    if (upto > r->log.snap_index) {
        hamok__log_compact(&r->log, upto);
        cfg_prune(r, upto);
    }
    return HAMOK_OK;
}

static void recv_timeout_now(hamok_raft *r)
{
    /* Thesis §3.10: the leader asks us to start an election at once
     * (leadership transfer), skipping pre-vote and leader stickiness. */
    if (r->role != HAMOK_RAFT_LEADER) {
        campaign(r, false, true);
    }
}

static bool is_raft_msg(uint8_t type)
{
    switch (type) {
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_REQUEST:
    case HAMOK_MSG_VOTE_RESPONSE:
    case HAMOK_MSG_TIMEOUT_NOW:
    case HAMOK_MSG_APPEND_ENTRIES:
    case HAMOK_MSG_APPEND_RESPONSE:
    case HAMOK_MSG_INSTALL_SNAPSHOT:
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE:
    case HAMOK_MSG_READ_INDEX_REQUEST:
    case HAMOK_MSG_READ_INDEX_RESPONSE: return true;
    default: return false;
    }
}

static uint64_t msg_term(const hamok_msg *m)
{
    switch (m->type) {
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST: return m->u.vote.term;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE: return m->u.vote_response.term;
    case HAMOK_MSG_TIMEOUT_NOW: return m->u.timeout_now.term;
    case HAMOK_MSG_APPEND_ENTRIES: return m->u.append.term;
    case HAMOK_MSG_APPEND_RESPONSE: return m->u.append_response.term;
    case HAMOK_MSG_INSTALL_SNAPSHOT: return m->u.snapshot.term;
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: return m->u.snapshot_response.term;
    default: return 0;
    }
}

/* Indexes, terms and offsets stay far from overflow: anything at or above
 * 2^62 cannot come from a correct peer (it would take centuries at any
 * rate), and accepting it would let index arithmetic wrap. */
#define SANE_MAX (UINT64_C(1) << 62)

static bool sane(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return a < SANE_MAX && b < SANE_MAX && c < SANE_MAX && d < SANE_MAX;
}

static bool msg_sane(const hamok_msg *m)
{
    switch (m->type) {
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST:
        return sane(m->u.vote.term, m->u.vote.last_log_index, m->u.vote.last_log_term, 0);
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE: return sane(m->u.vote_response.term, 0, 0, 0);
    case HAMOK_MSG_TIMEOUT_NOW: return sane(m->u.timeout_now.term, 0, 0, 0);
    case HAMOK_MSG_APPEND_ENTRIES: {
        const hamok_msg_append *a = &m->u.append;
        if (!sane(a->term, a->prev_log_index, a->prev_log_term, a->leader_commit) ||
            a->prev_log_index + a->n_entries >= SANE_MAX) {
            return false;
        }
        for (size_t i = 0; i < a->n_entries; i++) {
            if (a->entries[i].term >= SANE_MAX) {
                return false;
            }
        }
        return true;
    }
    case HAMOK_MSG_APPEND_RESPONSE: {
        const hamok_msg_append_response *a = &m->u.append_response;
        return sane(a->term, a->match_index, a->last_log_index, a->reject_index) &&
               sane(a->conflict_index, a->conflict_term, 0, 0);
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        const hamok_msg_snapshot *a = &m->u.snapshot;
        return sane(a->term, a->last_index, a->last_term, a->offset) && a->last_index > 0 &&
               a->last_term > 0 && a->last_term <= a->term;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: {
        const hamok_msg_snapshot_response *a = &m->u.snapshot_response;
        return sane(a->term, a->last_index, a->next_offset, 0);
    }
    case HAMOK_MSG_READ_INDEX_RESPONSE: return sane(m->u.read_index_response.read_index, 0, 0, 0);
    default: return true;
    }
}

static void receive(hamok_raft *r, hamok_msg *m)
{
    if (!is_raft_msg(m->type) || !msg_sane(m) || hamok__id_eq(&m->src, &r->opt.self) ||
        (!m->broadcast && !hamok__id_eq(&m->dst, &r->opt.self))) {
        return;
    }
    if (m->type == HAMOK_MSG_READ_INDEX_REQUEST) {
        /* Carries no term: whoever is leader confirms with a fresh round. */
        if (find_pr(r, &m->src) != NULL) {
            register_read(r, m->u.read_index.request_id, true, &m->src);
        }
        return;
    }
    if (m->type == HAMOK_MSG_READ_INDEX_RESPONSE) {
        const hamok_msg_read_index_response *a = &m->u.read_index_response;
        hamok_status st =
            a->status < HAMOK_STATUS_COUNT ? (hamok_status)a->status : HAMOK_ERR_STATE;
        read_done(r, a->request_id, st, st == HAMOK_OK ? a->read_index : 0);
        return;
    }
    uint64_t mt = msg_term(m);
    if (mt > r->term) {
        /* §5.1: a higher term makes us a follower of it, except for pre-vote
         * traffic (which never changes terms) and disruptive votes while a
         * leader is known to be alive (thesis §4.2.3 / §9.6). */
        if (m->type == HAMOK_MSG_PREVOTE_REQUEST ||
            (m->type == HAMOK_MSG_PREVOTE_RESPONSE && m->u.vote_response.granted)) {
            /* handled below without a term change */
        } else if (m->type == HAMOK_MSG_VOTE_REQUEST && !m->u.vote.transfer && in_lease(r)) {
            return;
        } else {
            bool from_leader =
                m->type == HAMOK_MSG_APPEND_ENTRIES || m->type == HAMOK_MSG_INSTALL_SNAPSHOT;
            become_follower(r, mt, from_leader ? &m->src : NULL);
        }
    } else if (mt < r->term) {
        /* Stale sender. Tell a stale leader or pre-candidate our term so it
         * steps down (with check-quorum it would otherwise never learn). */
        if (m->type == HAMOK_MSG_APPEND_ENTRIES || m->type == HAMOK_MSG_INSTALL_SNAPSHOT) {
            hamok_msg *out = emit(r, HAMOK_MSG_APPEND_RESPONSE, &m->src);
            if (out != NULL) {
                out->u.append_response.term = r->term;
            }
        } else if (m->type == HAMOK_MSG_PREVOTE_REQUEST) {
            hamok_msg *out = emit(r, HAMOK_MSG_PREVOTE_RESPONSE, &m->src);
            if (out != NULL) {
                out->u.vote_response.term = r->term;
            }
        }
        return;
    }
    switch (m->type) {
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST: recv_vote_request(r, m); break;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE: recv_vote_response(r, m); break;
    case HAMOK_MSG_APPEND_ENTRIES: recv_append(r, m); break;
    case HAMOK_MSG_APPEND_RESPONSE: recv_append_response(r, m); break;
    case HAMOK_MSG_TIMEOUT_NOW: recv_timeout_now(r); break;
    case HAMOK_MSG_INSTALL_SNAPSHOT: recv_snapshot(r, m); break;
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: recv_snapshot_response(r, m); break;
    default: break;
    }
}

static hamok_status propose(hamok_raft *r, const hamok_raft_event *ev)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return HAMOK_ERR_NOT_LEADER;
    }
    if (r->transferring) {
        return HAMOK_ERR_BUSY;
    }
    const hamok_entry *es = ev->u.propose.entries;
    size_t n = ev->u.propose.n;
    if (es == NULL || n == 0) {
        return HAMOK_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (es[i].type != HAMOK_ENTRY_COMMAND && es[i].type != HAMOK_ENTRY_NOOP) {
            return HAMOK_ERR_INVALID;
        }
        size_t max = r->opt.max_entry_bytes != 0 ? r->opt.max_entry_bytes : r->opt.max_batch_bytes;
        if (es[i].len > max || (es[i].len > 0 && es[i].data == NULL)) {
            return es[i].len > max ? HAMOK_ERR_TOO_BIG : HAMOK_ERR_INVALID;
        }
    }
    uint64_t first = hamok__log_last(&r->log) + 1;
    hamok_status st = append_local(r, es, n);
    if (st != HAMOK_OK) {
        return st;
    }
    r->proposed_index = first;
    r->proposed_term = r->term;
    for (size_t i = 0; i < r->n_prs; i++) {
        if (!r->prs[i].is_self) {
            send_new(r, &r->prs[i]);
        }
    }
    maybe_commit(r); /* a one-voter cluster whose storage is synchronous */
    return HAMOK_OK;
}

static hamok_member *members_dup(const hamok_member *ms, size_t n, size_t extra)
{
    hamok_member *out = hamok__calloc(n + extra ? n + extra : 1, sizeof *out);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = ms[i];
        out[i].endpoint = hamok__strdup(ms[i].endpoint ? ms[i].endpoint : "");
        if (out[i].endpoint == NULL) {
            hamok__members_free(out, i);
            return NULL;
        }
    }
    return out;
}

/* Thesis §4.1-4.3: single-server changes through the log. The leader takes a
 * new change only once the previous configuration is committed and it has
 * committed an entry of its own term (Ongaro, raft-dev 2015: otherwise two
 * overlapping changes across leaders can form disjoint majorities). */
static hamok_status change(hamok_raft *r, hamok_raft_change_op op, const hamok_id *id,
                           const char *endpoint)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return HAMOK_ERR_NOT_LEADER;
    }
    if (r->transferring) {
        return HAMOK_ERR_BUSY;
    }
    const cfg_version *c = cur_cfg(r);
    if (c->index > r->commit || term_at(r, r->commit) != r->term) {
        return HAMOK_ERR_BUSY;
    }
    size_t at = SIZE_MAX;
    size_t voters = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (hamok__id_eq(&c->members[i].id, id)) {
            at = i;
        }
        voters += c->members[i].role == HAMOK_MEMBER_VOTER ? 1u : 0u;
    }
    hamok_member *ms = NULL;
    size_t n = c->n;
    switch (op) {
    case HAMOK_RAFT_ADD_LEARNER:
        if (at != SIZE_MAX) {
            /* Already a member: a new endpoint (it came back on another
             * address) replaces the old one; the roles stay. */
            if (endpoint == NULL || endpoint[0] == '\0' ||
                strcmp(endpoint, c->members[at].endpoint) == 0) {
                return HAMOK_OK;
            }
            ms = members_dup(c->members, c->n, 0);
            if (ms == NULL) {
                return HAMOK_ERR_NOMEM;
            }
            char *ep = hamok__strdup(endpoint);
            if (ep == NULL) {
                hamok__members_free(ms, n);
                return HAMOK_ERR_NOMEM;
            }
            hamok__free(ms[at].endpoint);
            ms[at].endpoint = ep;
            break;
        }
        if (c->n >= MAX_MEMBERS) {
            return HAMOK_ERR_TOO_BIG;
        }
        ms = members_dup(c->members, c->n, 1);
        if (ms == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        ms[n].id = *id;
        ms[n].role = HAMOK_MEMBER_LEARNER;
        ms[n].endpoint = hamok__strdup(endpoint ? endpoint : "");
        n++;
        if (ms[n - 1].endpoint == NULL) {
            hamok__members_free(ms, n);
            return HAMOK_ERR_NOMEM;
        }
        break;
    case HAMOK_RAFT_PROMOTE:
        if (at == SIZE_MAX) {
            return HAMOK_ERR_NOT_FOUND;
        }
        if (c->members[at].role == HAMOK_MEMBER_VOTER) {
            return HAMOK_OK;
        }
        ms = members_dup(c->members, c->n, 0);
        if (ms == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        ms[at].role = HAMOK_MEMBER_VOTER;
        break;
    case HAMOK_RAFT_REMOVE:
        if (at == SIZE_MAX) {
            return HAMOK_ERR_NOT_FOUND;
        }
        if (c->members[at].role == HAMOK_MEMBER_VOTER && voters == 1) {
            return HAMOK_ERR_INVALID; /* the last voter */
        }
        ms = members_dup(c->members, c->n, 0);
        if (ms == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        hamok__free(ms[at].endpoint);
        ms[at] = ms[n - 1];
        n--;
        break;
    default: return HAMOK_ERR_INVALID;
    }
    uint64_t index = hamok__log_last(&r->log) + 1;
    hamok_status st = append_config(r, ms, n);
    if (st != HAMOK_OK) {
        return st;
    }
    r->proposed_index = index;
    r->proposed_term = r->term;
    for (size_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        if (pr->is_self) {
            continue;
        }
        if (pr->state == PR_PROBE && !pr->probe_sent) {
            send_append(r, pr, true); /* a new member: find its match point now */
        } else {
            send_new(r, pr);
        }
    }
    maybe_commit(r);
    return HAMOK_OK;
}

/* End-of-step housekeeping that may rebuild the progress array (so it must
 * not run while a handler holds a progress pointer). */
static void after_step(hamok_raft *r)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return;
    }
    const cfg_version *c = cur_cfg(r);
    if (c->index <= r->commit && !is_voter(r)) {
        /* Thesis §4.2.2: a leader removed from the configuration steps down
         * once the change is committed. */
        become_follower(r, r->term, NULL);
        return;
    }
    if (!r->opt.auto_promote || r->transferring || c->index > r->commit ||
        term_at(r, r->commit) != r->term) {
        return;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        const progress *pr = &r->prs[i];
        /* Thesis §4.2.1: promote a learner once it has caught up. */
        if (!pr->voter && !pr->is_self && pr->match >= r->commit) {
            hamok_id id = pr->id;
            uint64_t pi = r->proposed_index;
            uint64_t pt = r->proposed_term;
            (void)change(r, HAMOK_RAFT_PROMOTE, &id, NULL);
            r->proposed_index = pi; /* not the caller's proposal */
            r->proposed_term = pt;
            return;
        }
    }
}

static void persisted(hamok_raft *r, uint64_t index, uint64_t term)
{
    uint64_t t;
    if (index <= r->persisted) {
        return; /* old news */
    }
    if (index > r->log.snap_index && (!hamok__log_term(&r->log, index, &t) || t != term)) {
        return; /* entries truncated since; compacted ones are committed for good */
    }
    r->persisted = index;
    if (r->role == HAMOK_RAFT_LEADER) {
        maybe_commit(r);
    } else if (r->has_leader && r->verified > 0) {
        /* The follower's acknowledgement waited for the disk. */
        respond_append(r, &r->leader, 0);
    }
}

static void fire_timers(hamok_raft *r)
{
    if (r->role == HAMOK_RAFT_LEADER) {
        if (r->now >= r->quorum_deadline) {
            check_quorum(r);
            if (r->role != HAMOK_RAFT_LEADER) {
                return;
            }
        }
        if (r->transferring && r->now >= r->transfer_deadline) {
            r->transferring = false; /* the target did not take over in time */
        }
        if (r->now >= r->heartbeat_deadline) {
            heartbeat(r);
        }
    } else if (r->now >= r->election_deadline) {
        start_election(r);
    }
}

/* ------------------------------------------------------------------------- */
/* Step */

static void begin_step(hamok_raft *r)
{
    r->n_out = 0;
    r->hard_state_changed = false;
    r->truncate_from = 0;
    r->persist_from = 0;
    r->role_changed = false;
    r->leader_changed = false;
    r->proposed_index = 0;
    r->proposed_term = 0;
    r->n_done_reads = 0;
    r->n_sends = 0;
    r->has_chunk = false;
    r->installed = false;
    hamok__free(r->chunk_data);
    r->chunk_data = NULL;
}

static void end_step(hamok_raft *r, hamok_raft_update *u)
{
    memset(u, 0, sizeof *u);
    u->hard_state_changed = r->hard_state_changed;
    u->term = r->term;
    u->has_vote = r->has_vote;
    u->vote = r->vote;
    u->truncate_from = r->truncate_from;
    uint64_t last = hamok__log_last(&r->log);
    if (r->persist_from != 0 && r->persist_from <= last) {
        u->persist_first = r->persist_from;
        u->persist = hamok__log_get(&r->log, r->persist_from);
        u->n_persist = (size_t)(last - r->persist_from + 1);
    }
    if (r->n_out > r->cap_msgs) {
        hamok_msg *p = hamok__realloc(r->msgs, r->n_out * sizeof *p);
        if (p == NULL) {
            r->n_out = r->cap_msgs; /* drop the tail: Raft retransmits */
        } else {
            r->msgs = p;
            r->cap_msgs = r->n_out;
        }
    }
    for (size_t i = 0; i < r->n_out; i++) {
        hamok_msg *m = &r->msgs[i];
        *m = r->out[i].msg;
        if (m->type == HAMOK_MSG_APPEND_ENTRIES && m->u.append.n_entries > 0) {
            m->u.append.entries = hamok__log_get(&r->log, r->out[i].first_index);
        }
    }
    u->msgs = r->msgs;
    u->n_msgs = r->n_out;
    if (r->commit > r->applied) {
        u->apply_first = r->applied + 1;
        u->apply = hamok__log_get(&r->log, r->applied + 1);
        u->n_apply = (size_t)(r->commit - r->applied);
        r->applied = r->commit;
        for (size_t i = 0; i < u->n_apply; i++) {
            r->applied_bytes += u->apply[i].len;
        }
    }
    uint64_t base = r->want_index > r->snapshot_index ? r->want_index : r->snapshot_index;
    uint64_t since = r->applied > base ? r->applied - base : 0;
    bool due = (r->opt.snapshot_entries > 0 && since >= r->opt.snapshot_entries) ||
               (r->opt.snapshot_bytes > 0 && r->applied_bytes >= r->opt.snapshot_bytes);
    /* A leader sending its snapshot defers the next one (which would restart
     * every transfer at offset 0: under steady writes a slow install would
     * never finish, FINDINGS.md 12), up to SNAPSHOT_DEFER_FACTOR times the
     * thresholds: the log stays bounded even if a transfer stalls. */
    bool forced =
        (r->opt.snapshot_entries > 0 && since / SNAPSHOT_DEFER_FACTOR >= r->opt.snapshot_entries) ||
        (r->opt.snapshot_bytes > 0 &&
         r->applied_bytes / SNAPSHOT_DEFER_FACTOR >= r->opt.snapshot_bytes);
    if (due && (forced || !sending_snapshot(r))) {
        const cfg_version *c = cfg_at(r, r->applied);
        u->snapshot_wanted = true;
        u->snapshot_want_index = r->applied;
        u->snapshot_members = c ? c->members : NULL;
        u->n_snapshot_members = c ? c->n : 0;
        r->want_index = r->applied;
        r->applied_bytes = 0;
    }
    u->has_chunk = r->has_chunk;
    u->chunk = r->chunk;
    u->snapshot_installed = r->installed;
    u->installed_index = r->installed ? r->snapshot_index : 0;
    u->installed_term = r->installed ? r->snapshot_term : 0;
    u->snapshot_sends = r->sends;
    u->n_snapshot_sends = r->n_sends;
    u->proposed_index = r->proposed_index;
    u->proposed_term = r->proposed_term;
    if (r->config_changed) {
        const cfg_version *c = cur_cfg(r);
        u->config_changed = true;
        u->members = c->members;
        u->n_members = c->n;
        u->config_index = c->index;
        r->config_changed = false; /* reported */
    }
    u->reads = r->done_reads;
    u->n_reads = r->n_done_reads;
    u->role_changed = r->role_changed;
    u->leader_changed = r->leader_changed;
    if (r->role == HAMOK_RAFT_LEADER) {
        u->next_deadline_ms =
            r->heartbeat_deadline < r->quorum_deadline ? r->heartbeat_deadline : r->quorum_deadline;
        if (r->transferring && r->transfer_deadline < u->next_deadline_ms) {
            u->next_deadline_ms = r->transfer_deadline;
        }
    } else {
        u->next_deadline_ms = r->election_deadline; /* campaign() checks voter status */
    }
}

hamok_status hamok__raft_step(hamok_raft *r, const hamok_raft_event *ev, hamok_raft_update *u)
{
    begin_step(r);
    if (ev->now_ms > r->now) {
        r->now = ev->now_ms;
    }
    if (!r->started) {
        r->started = true;
        reset_election_timer(r);
        if (voter_count(r) == 1 && is_voter(r)) {
            start_election(r); /* a cluster of one elects itself at once */
        }
    }
    if (ev->type == HAMOK_RAFT_EV_PROPOSE || ev->type == HAMOK_RAFT_EV_READ_INDEX ||
        ev->type == HAMOK_RAFT_EV_TRANSFER || ev->type == HAMOK_RAFT_EV_CHANGE) {
        /* A client operation must see the state after overdue timers: a
         * leader past its check-quorum deadline is no leader to accept it. */
        fire_timers(r);
    }
    hamok_status st = HAMOK_OK;
    switch (ev->type) {
    case HAMOK_RAFT_EV_TICK: break;
    case HAMOK_RAFT_EV_RECEIVE:
        if (ev->u.msg == NULL) {
            st = HAMOK_ERR_INVALID;
        } else {
            receive(r, ev->u.msg);
        }
        break;
    case HAMOK_RAFT_EV_PROPOSE: st = propose(r, ev); break;
    case HAMOK_RAFT_EV_PERSISTED: persisted(r, ev->u.persisted.index, ev->u.persisted.term); break;
    case HAMOK_RAFT_EV_READ_INDEX: register_read(r, ev->u.read.id, false, NULL); break;
    case HAMOK_RAFT_EV_TRANSFER: st = transfer(r, ev); break;
    case HAMOK_RAFT_EV_SNAPSHOT_TAKEN: st = snapshot_taken(r, ev->u.snapshot.index); break;
    case HAMOK_RAFT_EV_CHANGE:
        st = change(r, ev->u.change.op, &ev->u.change.id, ev->u.change.endpoint);
        break;
    default: st = HAMOK_ERR_INVALID; break;
    }
    fire_timers(r);
    after_step(r);
    end_step(r, u);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Introspection */

hamok_raft_role hamok__raft_role(const hamok_raft *r)
{
    return r->role;
}

uint64_t hamok__raft_term(const hamok_raft *r)
{
    return r->term;
}

bool hamok__raft_leader(const hamok_raft *r, hamok_id *out)
{
    if (r->has_leader && out != NULL) {
        *out = r->leader;
    }
    return r->has_leader;
}

bool hamok__raft_vote(const hamok_raft *r, hamok_id *out)
{
    if (r->has_vote && out != NULL) {
        *out = r->vote;
    }
    return r->has_vote;
}

const hamok_id *hamok__raft_self(const hamok_raft *r)
{
    return &r->opt.self;
}

uint64_t hamok__raft_commit_index(const hamok_raft *r)
{
    return r->commit;
}

uint64_t hamok__raft_applied_index(const hamok_raft *r)
{
    return r->applied;
}

uint64_t hamok__raft_persisted_index(const hamok_raft *r)
{
    return r->persisted;
}

uint64_t hamok__raft_first_index(const hamok_raft *r)
{
    return hamok__log_first(&r->log);
}

uint64_t hamok__raft_last_index(const hamok_raft *r)
{
    return hamok__log_last(&r->log);
}

bool hamok__raft_term_at(const hamok_raft *r, uint64_t index, uint64_t *term)
{
    return hamok__log_term(&r->log, index, term);
}

const hamok_entry *hamok__raft_entry(const hamok_raft *r, uint64_t index)
{
    return hamok__log_get(&r->log, index);
}

const hamok_member *hamok__raft_members(const hamok_raft *r, size_t *n, uint64_t *index)
{
    const cfg_version *c = cur_cfg(r);
    if (n != NULL) {
        *n = c->n;
    }
    if (index != NULL) {
        *index = c->index;
    }
    return c->members;
}

const hamok_member *hamok__raft_config_at(const hamok_raft *r, uint64_t index, size_t *n)
{
    const cfg_version *c = cfg_at(r, index);
    if (n != NULL) {
        *n = c ? c->n : 0;
    }
    return c ? c->members : NULL;
}

uint64_t hamok__raft_snapshot_index(const hamok_raft *r, uint64_t *term)
{
    if (term != NULL) {
        *term = r->snapshot_term;
    }
    return r->snapshot_index;
}

bool hamok__raft_match(const hamok_raft *r, const hamok_id *peer, uint64_t *match)
{
    if (r->role != HAMOK_RAFT_LEADER) {
        return false;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        if (hamok__id_eq(&r->prs[i].id, peer)) {
            *match = r->prs[i].is_self ? hamok__log_last(&r->log) : r->prs[i].match;
            return true;
        }
    }
    return false;
}
