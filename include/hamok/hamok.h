/* Hamok: replicated objects for horizontally scaled services, agreed through
 * Raft. Umbrella header.
 *
 * Ownership rules, for every public function:
 *  1. `const T *` arguments are borrowed for the call; Hamok copies what it
 *     keeps.
 *  2. A `T **` argument transfers ownership and the callee sets `*p = NULL`.
 *  3. Callback arguments are borrowed until the callback returns.
 *  4. `_new` results belong to the caller; `_destroy(T **p)` is NULL-safe and
 *     sets `*p = NULL`.
 *  5. Every allocation goes through the allocator set by hamok_set_allocator().
 */
#ifndef HAMOK_HAMOK_H
#define HAMOK_HAMOK_H

#include <stddef.h>

#include "hamok/export.h"
#include "hamok/status.h"
#include "hamok/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A custom allocator. `realloc(NULL, n)` must behave as malloc, `free(NULL)`
 * must be a no-op. */
typedef struct hamok_allocator {
    void *(*malloc)(void *ud, size_t size);
    void *(*realloc)(void *ud, void *ptr, size_t size);
    void (*free)(void *ud, void *ptr);
    void *ud;
} hamok_allocator;

/** Replace the allocator used by every Hamok object (NULL restores the libc
 * one). Thread: call once, before any Hamok object exists; not thread-safe.
 * Returns HAMOK_ERR_INVALID when a function pointer is missing. */
HAMOK_API hamok_status hamok_set_allocator(const hamok_allocator *allocator);

/** Version of the library linked at run time, e.g. "0.1.0". Thread: any. */
HAMOK_API const char *hamok_version(void);

#ifdef __cplusplus
}
#endif
#endif
