/* Fuzz target: topic parse. A parsed topic must build back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/limits.h"
#include "mqim/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mqim_topic_t t;
    char buf[MQIM_TOPIC_MAX + 1];
    size_t len = 0;
    mqim_str_t topic = { (const char *)data, size };
    if (mqim_topic_parse(MQIM_STR("im"), topic, &t) != MQIM_OK) {
        return 0;
    }
    if (mqim_topic_build(MQIM_STR("im"), t.kind, t.user, t.name, buf, sizeof(buf), &len) != MQIM_OK ||
        len != size || memcmp(buf, data, size) != 0) {
        abort();
    }
    return 0;
}
