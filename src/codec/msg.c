#include "codec/msg.h"

#include <string.h>

#include "util/alloc.h"

const char *hamok__msg_type_name(uint8_t type)
{
    switch (type) {
    case HAMOK_MSG_HELLO: return "HELLO";
    case HAMOK_MSG_ENDPOINT_STATES: return "ENDPOINT_STATES";
    case HAMOK_MSG_JOIN: return "JOIN";
    case HAMOK_MSG_EMIT_REQUEST: return "EMIT_REQUEST";
    case HAMOK_MSG_EMIT_RESPONSE: return "EMIT_RESPONSE";
    case HAMOK_MSG_EMIT_NOTIFICATION: return "EMIT_NOTIFICATION";
    case HAMOK_MSG_LEAVE: return "LEAVE";
    case HAMOK_MSG_PREVOTE_REQUEST: return "PREVOTE_REQUEST";
    case HAMOK_MSG_PREVOTE_RESPONSE: return "PREVOTE_RESPONSE";
    case HAMOK_MSG_VOTE_REQUEST: return "VOTE_REQUEST";
    case HAMOK_MSG_VOTE_RESPONSE: return "VOTE_RESPONSE";
    case HAMOK_MSG_TIMEOUT_NOW: return "TIMEOUT_NOW";
    case HAMOK_MSG_APPEND_ENTRIES: return "APPEND_ENTRIES";
    case HAMOK_MSG_APPEND_RESPONSE: return "APPEND_RESPONSE";
    case HAMOK_MSG_INSTALL_SNAPSHOT: return "INSTALL_SNAPSHOT";
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: return "INSTALL_SNAPSHOT_RESPONSE";
    case HAMOK_MSG_SUBMIT_REQUEST: return "SUBMIT_REQUEST";
    case HAMOK_MSG_SUBMIT_RESPONSE: return "SUBMIT_RESPONSE";
    case HAMOK_MSG_READ_INDEX_REQUEST: return "READ_INDEX_REQUEST";
    case HAMOK_MSG_READ_INDEX_RESPONSE: return "READ_INDEX_RESPONSE";
    default: return "UNKNOWN";
    }
}

bool hamok__msg_type_known(uint8_t type)
{
    switch (type) {
    case HAMOK_MSG_HELLO:
    case HAMOK_MSG_ENDPOINT_STATES:
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE:
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_RESPONSE:
    case HAMOK_MSG_EMIT_NOTIFICATION:
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_REQUEST:
    case HAMOK_MSG_VOTE_RESPONSE:
    case HAMOK_MSG_TIMEOUT_NOW:
    case HAMOK_MSG_APPEND_ENTRIES:
    case HAMOK_MSG_APPEND_RESPONSE:
    case HAMOK_MSG_INSTALL_SNAPSHOT:
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE:
    case HAMOK_MSG_SUBMIT_REQUEST:
    case HAMOK_MSG_SUBMIT_RESPONSE:
    case HAMOK_MSG_READ_INDEX_REQUEST:
    case HAMOK_MSG_READ_INDEX_RESPONSE: return true;
    default: return false;
    }
}

void hamok__entry_clear(hamok_entry *e)
{
    hamok__free(e->data);
    e->data = NULL;
    e->len = 0;
}

void hamok__members_free(hamok_member *members, size_t n)
{
    if (members == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        hamok__free(members[i].endpoint);
    }
    hamok__free(members);
}

void hamok__msg_clear(hamok_msg *m)
{
    if (m == NULL) {
        return;
    }
    switch (m->type) {
    case HAMOK_MSG_APPEND_ENTRIES:
        for (size_t i = 0; i < m->u.append.n_entries; i++) {
            hamok__entry_clear(&m->u.append.entries[i]);
        }
        hamok__free(m->u.append.entries);
        break;
    case HAMOK_MSG_INSTALL_SNAPSHOT:
        hamok__members_free(m->u.snapshot.members, m->u.snapshot.n_members);
        hamok__free(m->u.snapshot.data);
        break;
    case HAMOK_MSG_HELLO: hamok__free(m->u.hello.endpoint); break;
    case HAMOK_MSG_ENDPOINT_STATES:
        hamok__members_free(m->u.endpoint_states.members, m->u.endpoint_states.n_members);
        break;
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE: hamok__free(m->u.join.endpoint); break;
    case HAMOK_MSG_SUBMIT_REQUEST: hamok__entry_clear(&m->u.submit.entry); break;
    case HAMOK_MSG_SUBMIT_RESPONSE: hamok__free(m->u.submit_response.result); break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION:
        hamok__free(m->u.emit.name);
        hamok__free(m->u.emit.event);
        hamok__free(m->u.emit.payload);
        break;
    default: break;
    }
    memset(m, 0, sizeof *m);
}
