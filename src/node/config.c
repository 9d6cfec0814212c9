#include <string.h>

#include "node/node_int.h"
#include "util/alloc.h"

hamok_status hamok_config_new(hamok_config **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_config *c = hamok__calloc(1, sizeof *c);
    if (c == NULL) {
        *out = NULL;
        return HAMOK_ERR_NOMEM;
    }
    strcpy(c->cluster, "hamok");
    c->sync = HAMOK_FSYNC_ALWAYS;
    c->batch_delay_ms = 2;
    c->election_timeout_ms = 1000;
    c->heartbeat_ms = 100;
    c->peer_timeout_ms = 5000;
    c->request_timeout_ms = 5000;
    c->bootstrap_expect = 1;
    c->snapshot_entries = 16384;
    c->log_level = hamok__log_level_from_env();
    *out = c;
    return HAMOK_OK;
}

void hamok_config_destroy(hamok_config **cfg)
{
    if (cfg == NULL || *cfg == NULL) {
        return;
    }
    hamok__free((*cfg)->storage_dir);
    hamok__free(*cfg);
    *cfg = NULL;
}

hamok_status hamok_config_set_cluster(hamok_config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL) {
        return HAMOK_ERR_INVALID;
    }
    size_t len = strlen(name);
    if (len == 0 || len > HAMOK_CLUSTER_NAME_MAX) {
        return HAMOK_ERR_INVALID;
    }
    memcpy(cfg->cluster, name, len + 1);
    return HAMOK_OK;
}

hamok_status hamok_config_set_peer_id(hamok_config *cfg, const char *uuid)
{
    hamok_id id;
    if (cfg == NULL || uuid == NULL || hamok__id_parse(uuid, &id) != HAMOK_OK ||
        hamok__id_is_nil(&id)) {
        return HAMOK_ERR_INVALID;
    }
    cfg->id = id;
    cfg->has_id = true;
    return HAMOK_OK;
}

hamok_status hamok_config_set_storage_dir(hamok_config *cfg, const char *dir)
{
    if (cfg == NULL || (dir != NULL && dir[0] == '\0')) {
        return HAMOK_ERR_INVALID;
    }
    char *copy = NULL;
    if (dir != NULL) {
        copy = hamok__strdup(dir);
        if (copy == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    hamok__free(cfg->storage_dir);
    cfg->storage_dir = copy;
    return HAMOK_OK;
}

hamok_status hamok_config_set_sync(hamok_config *cfg, hamok_fsync_mode mode,
                                   uint32_t batch_delay_ms)
{
    if (cfg == NULL || (mode != HAMOK_FSYNC_ALWAYS && mode != HAMOK_FSYNC_BATCH) ||
        (mode == HAMOK_FSYNC_BATCH && (batch_delay_ms == 0 || batch_delay_ms > 1000))) {
        return HAMOK_ERR_INVALID;
    }
    cfg->sync = mode;
    if (mode == HAMOK_FSYNC_BATCH) {
        cfg->batch_delay_ms = batch_delay_ms;
    }
    return HAMOK_OK;
}

hamok_status hamok_config_set_timing(hamok_config *cfg, uint32_t election_timeout_ms,
                                     uint32_t heartbeat_ms)
{
    if (cfg == NULL || heartbeat_ms == 0 || heartbeat_ms >= election_timeout_ms ||
        election_timeout_ms > 3600000u) {
        return HAMOK_ERR_INVALID;
    }
    cfg->election_timeout_ms = election_timeout_ms;
    cfg->heartbeat_ms = heartbeat_ms;
    return HAMOK_OK;
}

hamok_status hamok_config_set_peer_timeout(hamok_config *cfg, uint32_t ms)
{
    if (cfg == NULL) {
        return HAMOK_ERR_INVALID;
    }
    cfg->peer_timeout_ms = ms; /* checked against the timing in hamok_node_new() */
    return HAMOK_OK;
}

hamok_status hamok_config_set_request_timeout(hamok_config *cfg, uint32_t ms)
{
    if (cfg == NULL || ms == 0) {
        return HAMOK_ERR_INVALID;
    }
    cfg->request_timeout_ms = ms;
    return HAMOK_OK;
}

hamok_status hamok_config_set_bootstrap_expect(hamok_config *cfg, uint32_t peers)
{
    if (cfg == NULL || peers == 0 || peers > 255) {
        return HAMOK_ERR_INVALID;
    }
    cfg->bootstrap_expect = peers;
    return HAMOK_OK;
}

hamok_status hamok_config_set_snapshot_entries(hamok_config *cfg, uint64_t entries)
{
    if (cfg == NULL) {
        return HAMOK_ERR_INVALID;
    }
    cfg->snapshot_entries = entries;
    return HAMOK_OK;
}

hamok_status hamok_config_set_embedded(hamok_config *cfg, bool embedded)
{
    if (cfg == NULL) {
        return HAMOK_ERR_INVALID;
    }
    cfg->embedded = embedded;
    return HAMOK_OK;
}

hamok_status hamok_config_set_log(hamok_config *cfg, hamok_log_fn fn, void *ud,
                                  hamok_log_level level)
{
    if (cfg == NULL || level < HAMOK_LOG_ERROR || level > HAMOK_LOG_TRACE) {
        return HAMOK_ERR_INVALID;
    }
    cfg->log_fn = fn;
    cfg->log_ud = ud;
    cfg->log_level = level;
    return HAMOK_OK;
}
