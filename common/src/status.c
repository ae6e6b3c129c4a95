/* Status names and strings from the one table in status.h. */
#include "mqim/status.h"

typedef struct status_entry {
    mqim_status_t status;
    const char *name;
    const char *str;
} status_entry_t;

static const status_entry_t status_table[] = {
#define MQIM_STATUS_ROW_(suffix, num, name, str) { MQIM_##suffix, name, str },
    MQIM_STATUS_TABLE(MQIM_STATUS_ROW_)
#undef MQIM_STATUS_ROW_
};

static const status_entry_t *status_find(mqim_status_t status)
{
    const status_entry_t *found = 0;
    for (unsigned i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++) {
        if (status_table[i].status == status) {
            found = &status_table[i];
            break;
        }
    }
    return found;
}

const char *mqim_status_name(mqim_status_t status)
{
    const status_entry_t *e = status_find(status);
    return e != 0 ? e->name : "unknown_status";
}

const char *mqim_status_str(mqim_status_t status)
{
    const status_entry_t *e = status_find(status);
    return e != 0 ? e->str : "unknown status";
}
