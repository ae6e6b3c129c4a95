/**
 * @file json_depth.h
 * @brief Nesting check for parsed JSON. cJSON's own limit is 1000 levels;
 *        mqim accepts MQIM_JSON_DEPTH_MAX, counted in containers (objects
 *        and arrays): {"a":[1]} has depth 2.
 */
#ifndef MQIM_JSON_DEPTH_H
#define MQIM_JSON_DEPTH_H

#include <stdbool.h>

struct cJSON;

/** true when no container is nested deeper than max. Stops walking early. */
bool mqim_json_depth_ok(const struct cJSON *root, int max);

#endif /* MQIM_JSON_DEPTH_H */
