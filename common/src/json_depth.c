/* JSON nesting check (json_depth.h). Recursion is bounded by the limit:
 * the walk never descends below max + 1 levels. */
#include <cjson/cJSON.h>

#include "mqim/json_depth.h"

static bool depth_ok(const cJSON *item, int level, int max)
{
    bool ok = true;
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        if (level > max) {
            ok = false;
        } else {
            for (const cJSON *c = item->child; c != 0 && ok; c = c->next) {
                ok = depth_ok(c, level + 1, max);
            }
        }
    }
    return ok;
}

bool mqim_json_depth_ok(const struct cJSON *root, int max)
{
    return root == 0 || depth_ok(root, 1, max);
}
