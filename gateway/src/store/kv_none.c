/**
 * @file kv_none.c
 * @brief A gateway built without libpq: no PostgreSQL store engine.
 */
#include "kv.h"

const mqim_kv_engine_t *const mqim_kv_postgresql = NULL;
