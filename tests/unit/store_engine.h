/* The store's unit tests run on either engine: LMDB (the default), or
 * PostgreSQL when MQIM_TEST_PG_DSN names a server (ctest's unit.*_pg tests,
 * whose fixture starts one with scripts/pg-temp). Each test directory gets
 * a schema of its own in that server, so a test that reopens its store
 * finds it again and tests running in parallel do not meet. */
#ifndef MQIM_TEST_STORE_ENGINE_H
#define MQIM_TEST_STORE_ENGINE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#ifdef MQIM_HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif

static inline bool test_store_pg(void)
{
#ifdef MQIM_HAVE_POSTGRESQL
    return getenv("MQIM_TEST_PG_DSN") != NULL;
#else
    return false;
#endif
}

/* A test that checks what only LMDB has (its file, its map) says so. */
#define TEST_LMDB_ONLY()                                                    \
    do {                                                                    \
        if (test_store_pg()) {                                              \
            printf("%s: LMDB only, skipped on PostgreSQL\n", __func__);     \
            return;                                                         \
        }                                                                   \
    } while (0)

static inline mqim_status_t test_store_open(const char *dir, size_t map_size, bool read_only,
                                            mqim_store_t **out)
{
#ifdef MQIM_HAVE_POSTGRESQL
    const char *base = getenv("MQIM_TEST_PG_DSN");
    if (base != NULL) {
        char schema[64], sql[128], dsn[1024];
        const char *name = strrchr(dir, '/') != NULL ? strrchr(dir, '/') + 1 : dir;
        size_t n = 0;
        PGconn *c;
        mqim_store_config_t cfg = { .engine = MQIM_STORE_POSTGRESQL, .dir = dir };
        n = (size_t)snprintf(schema, sizeof(schema), "t_");
        for (; *name != '\0' && n + 1u < sizeof(schema); name++) {
            char ch = *name;
            schema[n++] = (char)((ch >= 'A' && ch <= 'Z') ? ch - 'A' + 'a'
                                 : ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '_');
        }
        schema[n] = '\0';
        c = PQconnectdb(base);
        snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", schema);
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "test: cannot connect to %s: %s", base, PQerrorMessage(c));
            exit(2);
        }
        PQclear(PQexec(c, "SET client_min_messages TO warning"));
        PQclear(PQexec(c, sql));
        PQfinish(c);
        snprintf(dsn, sizeof(dsn), "%s options='-csearch_path=%s'", base, schema);
        cfg.dsn = dsn;
        return mqim_store_open_config(&cfg, read_only, out);
    }
#endif
    return mqim_store_open(dir, map_size, read_only, out);
}

#endif /* MQIM_TEST_STORE_ENGINE_H */
