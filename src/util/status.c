#include "hamok/hamok.h"

static const char *const texts[] = {
#define HAMOK_STATUS_TEXT_(name, text) text,
    HAMOK_STATUS_MAP(HAMOK_STATUS_TEXT_)
#undef HAMOK_STATUS_TEXT_
};

const char *hamok_status_str(hamok_status status)
{
    if ((unsigned)status >= (unsigned)HAMOK_STATUS_COUNT) {
        return "unknown status";
    }
    return texts[status];
}

const char *hamok_version(void)
{
    return HAMOK_VERSION_STRING;
}
