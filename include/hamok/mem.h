/* The in-process transport: a hub that carries frames between the nodes of
 * one process (tests, single-process demos, benchmarks), with optional fault
 * injection: random loss, delay, and partitions between pairs of peers.
 *
 * Every hub runs one delivery thread; frames are delivered to each node's
 * inbox in FIFO order per (sender, receiver) pair unless a delay range
 * reorders them. */
#ifndef HAMOK_MEM_H
#define HAMOK_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/id.h"
#include "hamok/status.h"
#include "hamok/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hamok_mem_hub hamok_mem_hub;

/** Create a hub. HAMOK_OK, HAMOK_ERR_NOMEM, HAMOK_ERR_STATE (thread creation
 * failed). Thread: any. */
HAMOK_API hamok_status hamok_mem_hub_new(hamok_mem_hub **out);

/** Destroy the hub: NULL-safe, sets *hub = NULL. Every transport of the hub
 * must have been destroyed first (destroy the nodes first); otherwise
 * HAMOK_ERR_BUSY is returned and nothing is freed. */
HAMOK_API hamok_status hamok_mem_hub_destroy(hamok_mem_hub **hub);

/** A transport attached to `hub` (it keeps a reference to the hub). Hand it
 * to hamok_node_new(). HAMOK_OK, HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_mem_transport_new(hamok_mem_hub *hub, hamok_transport **out);

/** Fault injection, effective for frames sent from now on. Thread: any.
 * Drop each frame with probability permille/1000 (0..1000). */
HAMOK_API hamok_status hamok_mem_hub_set_drop(hamok_mem_hub *hub, uint32_t permille);
/** Delay every frame by a uniformly drawn [min_ms, max_ms] (0, 0 = none). */
HAMOK_API hamok_status hamok_mem_hub_set_delay(hamok_mem_hub *hub, uint32_t min_ms,
                                               uint32_t max_ms);
/** Cut (cut = true) or heal the link between peers a and b, both ways. */
HAMOK_API hamok_status hamok_mem_hub_set_link(hamok_mem_hub *hub, const hamok_id *a,
                                              const hamok_id *b, bool cut);
/** Isolate a peer from everyone (cut = true) or reconnect it. */
HAMOK_API hamok_status hamok_mem_hub_isolate(hamok_mem_hub *hub, const hamok_id *peer, bool cut);
/** Heal every cut link and remove loss and delay. */
HAMOK_API void hamok_mem_hub_heal(hamok_mem_hub *hub);

/** Frames the hub dropped by fault injection or for a missing receiver. */
HAMOK_API uint64_t hamok_mem_hub_dropped(const hamok_mem_hub *hub);

#ifdef __cplusplus
}
#endif
#endif
