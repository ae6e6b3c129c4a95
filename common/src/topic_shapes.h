/* The topic shapes, shared by building (topic.c) and parsing
 * (topic_parse.c): not part of the API. Parsing lives in its own file
 * because only the gateway parses topics; a device builds them, so its
 * firmware links none of the parser. */
#ifndef MQIM_TOPIC_SHAPES_H
#define MQIM_TOPIC_SHAPES_H

#include <stdint.h>

/* One row per kind: the levels after the root, with "*" for the user level
 * and "$" for the trailing name level. */
typedef struct mqim_topic_shape {
    const char *levels[5];
    uint8_t kind;      /* mqim_topic_kind_t; bytes keep the table small on a device */
    uint8_t name_kind; /* mqim_name_kind_t */
} mqim_topic_shape_t;

#define MQIM_TOPIC_SHAPE_COUNT 14u
#define MQIM_TOPIC_LEVELS_MAX 5u

extern const mqim_topic_shape_t mqim_topic_shapes[MQIM_TOPIC_SHAPE_COUNT];

#endif /* MQIM_TOPIC_SHAPES_H */
