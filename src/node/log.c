#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/node_int.h"

const char *hamok_log_level_str(hamok_log_level level)
{
    switch (level) {
    case HAMOK_LOG_ERROR: return "error";
    case HAMOK_LOG_WARN: return "warn";
    case HAMOK_LOG_INFO: return "info";
    case HAMOK_LOG_DEBUG: return "debug";
    case HAMOK_LOG_TRACE: return "trace";
    }
    return "unknown";
}

hamok_log_level hamok__log_level_from_env(void)
{
    const char *v = getenv("HAMOK_LOG");
    if (v == NULL) {
        return HAMOK_LOG_WARN;
    }
    for (int l = HAMOK_LOG_ERROR; l <= HAMOK_LOG_TRACE; l++) {
        if (strcasecmp(v, hamok_log_level_str((hamok_log_level)l)) == 0) {
            return (hamok_log_level)l;
        }
    }
    return HAMOK_LOG_WARN;
}

void hamok__log_default(void *ud, hamok_log_level level, const char *module, const char *msg)
{
    (void)ud;
    fprintf(stderr, "hamok %-5s %-9s %s\n", hamok_log_level_str(level), module, msg);
}
