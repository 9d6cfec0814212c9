/* Prometheus text exposition of a node's counters (hamok_node_metrics in
 * include/hamok/node.h). Built only from the node's public snapshots
 * (stats, peers, collections), so it never holds a node lock while
 * formatting. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hamok/version.h"
#include "node/node_int.h"
#include "util/alloc.h"

/* An snprintf-like writer: counts everything, stores what fits. */
typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

__attribute__((format(printf, 2, 3))) static void putf(out *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) {
        put(o, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
    }
}

/* A label value: backslash, quote and newline escaped as the format wants;
 * bytes that are not printable ASCII become '_' (label values must be UTF-8,
 * collection names are arbitrary bytes). */
static void put_label(out *o, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\\' || c == '"') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            put(o, "_", 1);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
}

static void family(out *o, const char *name, const char *type, const char *help)
{
    putf(o, "# HELP hamok_%s %s\n# TYPE hamok_%s %s\n", name, help, name, type);
}

static void value(out *o, const char *name, uint64_t v)
{
    putf(o, "hamok_%s %" PRIu64 "\n", name, v);
}

static void metric(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    family(o, name, type, help);
    value(o, name, v);
}

static const hamok_role roles[] = {HAMOK_ROLE_NONE, HAMOK_ROLE_FOLLOWER, HAMOK_ROLE_CANDIDATE,
                                   HAMOK_ROLE_LEADER, HAMOK_ROLE_LEARNER};
static const hamok_transport_link links[] = {HAMOK_LINK_CONNECTED, HAMOK_LINK_DISCONNECTED,
                                             HAMOK_LINK_RECONNECTED, HAMOK_LINK_CLOSED};

size_t hamok_node_metrics(hamok_node *n, char *buf, size_t cap)
{
    out o = {buf, cap, 0};
    if (n == NULL) {
        if (cap > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    hamok_node_stats s;
    hamok_node_stats_get(n, &s);
    hamok_id self = hamok_node_id(n);
    char id[HAMOK_ID_STR_LEN + 1];
    hamok__id_format(&self, id);
    const char *cluster = hamok__node_cluster(n);

    family(&o, "info", "gauge", "Constant 1, labelled with this peer's identity.");
    putf(&o, "hamok_info{peer=\"%s\",cluster=\"", id);
    put_label(&o, cluster, strlen(cluster));
    putf(&o, "\",transport=\"");
    const char *tn = hamok__node_transport_name(n);
    put_label(&o, tn, strlen(tn));
    putf(&o, "\",version=\"%s\"} 1\n", HAMOK_VERSION_STRING);

    family(&o, "role", "gauge", "1 for the role this peer has now, 0 for the others.");
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        putf(&o, "hamok_role{role=\"%s\"} %d\n", hamok_role_str(roles[i]),
             s.role == roles[i] ? 1 : 0);
    }
    metric(&o, "is_leader", "gauge", "1 when this peer is the leader.",
           s.role == HAMOK_ROLE_LEADER ? 1u : 0u);
    metric(&o, "has_leader", "gauge", "1 when this peer knows a leader.", s.has_leader ? 1u : 0u);
    metric(&o, "term", "gauge", "Current Raft term.", s.term);
    metric(&o, "leader_changes_total", "counter", "Times the known leader changed.",
           s.leader_changes);
    metric(&o, "elections_total", "counter", "Campaigns this peer started.", s.elections);
    metric(&o, "commit_index", "gauge", "Highest log index known committed.", s.commit_index);
    metric(&o, "applied_index", "gauge", "Highest log index applied here.", s.applied_index);
    metric(&o, "last_log_index", "gauge", "Last index of the local log.", s.last_log_index);
    metric(&o, "snapshot_index", "gauge", "Index of the latest snapshot.", s.snapshot_index);
    metric(&o, "members", "gauge", "Members of the configuration in force.", s.members);

    /* Per-peer replication, known on the leader only. */
    hamok_peer_info stack[16];
    hamok_peer_info *ps = stack;
    size_t k = hamok_node_peers(n, stack, 16);
    if (k > 16) {
        ps = hamok__calloc(k, sizeof *ps);
        if (ps != NULL) {
            size_t now = hamok_node_peers(n, ps, k); /* may have shrunk meanwhile */
            k = now < k ? now : k;
        } else {
            ps = stack;
            k = 16;
        }
    }
    family(&o, "peer_voter", "gauge", "Members of the configuration: 1 voter, 0 learner.");
    for (size_t i = 0; i < k; i++) {
        char pid[HAMOK_ID_STR_LEN + 1];
        hamok__id_format(&ps[i].id, pid);
        putf(&o, "hamok_peer_voter{peer=\"%s\"} %d\n", pid, ps[i].voter ? 1 : 0);
    }
    if (s.role == HAMOK_ROLE_LEADER) {
        family(&o, "peer_lag_entries", "gauge",
               "Leader only: entries of the leader's log a member does not hold yet.");
        for (size_t i = 0; i < k; i++) {
            char pid[HAMOK_ID_STR_LEN + 1];
            hamok__id_format(&ps[i].id, pid);
            uint64_t lag =
                s.last_log_index > ps[i].match_index ? s.last_log_index - ps[i].match_index : 0;
            putf(&o, "hamok_peer_lag_entries{peer=\"%s\"} %" PRIu64 "\n", pid, lag);
        }
        family(&o, "peer_last_seen_seconds", "gauge",
               "Leader only: seconds since a member was last heard from.");
        for (size_t i = 0; i < k; i++) {
            if (ps[i].is_self) {
                continue;
            }
            char pid[HAMOK_ID_STR_LEN + 1];
            hamok__id_format(&ps[i].id, pid);
            putf(&o, "hamok_peer_last_seen_seconds{peer=\"%s\"} %.3f\n", pid,
                 (double)ps[i].last_seen_ms / 1000.0);
        }
    }
    if (ps != stack) {
        hamok__free(ps);
    }

    family(&o, "proposals_total", "counter", "Write requests of this peer, by outcome.");
    putf(&o, "hamok_proposals_total{result=\"committed\"} %" PRIu64 "\n", s.proposals_committed);
    putf(&o, "hamok_proposals_total{result=\"failed\"} %" PRIu64 "\n", s.proposals_failed);
    metric(&o, "frames_sent_total", "counter", "Frames handed to the transport.", s.frames_sent);
    metric(&o, "frames_received_total", "counter", "Frames received from the transport.",
           s.frames_received);
    metric(&o, "frames_dropped_total", "counter", "Inbound frames dropped (inbox full, stopping).",
           s.frames_dropped);
    family(&o, "frames_rejected_total", "counter", "Inbound frames rejected, by reason.");
    for (int r = 0; r < HAMOK_FRAME_REJECT_REASONS; r++) {
        putf(&o, "hamok_frames_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
             hamok_frame_reject_str((hamok_frame_reject)r), s.frames_rejected_by[r]);
    }
    metric(&o, "snapshots_taken_total", "counter", "Snapshots taken here.", s.snapshots_taken);
    metric(&o, "snapshots_installed_total", "counter", "Snapshots installed from a leader.",
           s.snapshots_installed);

    family(&o, "transport_link", "gauge",
           "1 for the link state the transport reported last (none before its first report).");
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        putf(&o, "hamok_transport_link{state=\"%s\"} %d\n", hamok_transport_link_str(links[i]),
             s.link == links[i] ? 1 : 0);
    }
    metric(&o, "transport_link_changes_total", "counter", "Link state changes reported.",
           s.link_changes);

    family(&o, "collection_entries", "gauge",
           "Entries of each collection (map/record keys, queue items, emitter subscriptions).");
    size_t nc = hamok_node_collections(n, NULL, 0);
    hamok_coll_info *cs = nc > 0 ? hamok__calloc(nc, sizeof *cs) : NULL;
    if (cs != NULL) {
        size_t got = hamok_node_collections(n, cs, nc);
        for (size_t i = 0; i < got && i < nc; i++) {
            putf(&o, "hamok_collection_entries{kind=\"%s\",name=\"",
                 hamok_coll_kind_str(cs[i].kind));
            put_label(&o, cs[i].name, cs[i].name_len);
            putf(&o, "\"} %zu\n", cs[i].entries);
        }
        hamok__free(cs);
    }

    if (cap > 0) {
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    }
    return o.len;
}
