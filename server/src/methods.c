/* The method table. */
#include "methods.h"

#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "router_internal.h"
#include "server_internal.h"

/* ---- the method table ------------------------------------------------------------------- */

/* Read tokens may search, get, describe, list and check health; everything else needs admin. */
const method qv__method_table[NMETHODS] = {
    [M_SEARCH] = {"/quiver.v1.Retrieval/Search", K_UNARY, &quiver__v1__search_request__descriptor,
                  qv__h_search, NULL, QV__ROLE_READ, 0, qv__rt_search, NULL},
    [M_CREATE] = {"/quiver.v1.Retrieval/CreateCollection", K_UNARY,
                  &quiver__v1__create_collection_request__descriptor, qv__h_create, NULL,
                  QV__ROLE_ADMIN, 0, qv__rt_create, NULL},
    [M_DROP] = {"/quiver.v1.Retrieval/DropCollection", K_UNARY,
                &quiver__v1__drop_collection_request__descriptor, qv__h_drop, NULL, QV__ROLE_ADMIN,
                0, qv__rt_drop, NULL},
    [M_LIST] = {"/quiver.v1.Retrieval/ListCollections", K_UNARY,
                &quiver__v1__list_collections_request__descriptor, qv__h_list, NULL, QV__ROLE_READ,
                0, qv__rt_list, NULL},
    [M_DESCRIBE] = {"/quiver.v1.Retrieval/DescribeCollection", K_UNARY,
                    &quiver__v1__describe_collection_request__descriptor, qv__h_describe, NULL,
                    QV__ROLE_READ, 0, qv__rt_describe, NULL},
    [M_UPSERT] = {"/quiver.v1.Retrieval/Upsert", K_CLIENT_STREAM,
                  &quiver__v1__upsert_request__descriptor, NULL, qv__start_upsert, QV__ROLE_ADMIN,
                  1, NULL, qv__rt_start_upsert},
    [M_DELETE] = {"/quiver.v1.Retrieval/Delete", K_UNARY, &quiver__v1__delete_request__descriptor,
                  qv__h_delete, NULL, QV__ROLE_ADMIN, 1, qv__rt_delete, NULL},
    [M_BUILD] = {"/quiver.v1.Retrieval/BuildIndex", K_SERVER_STREAM,
                 &quiver__v1__build_index_request__descriptor, NULL, qv__start_build,
                 QV__ROLE_ADMIN, 0, NULL, qv__rt_start_build},
    [M_HEALTH] = {"/grpc.health.v1.Health/Check", K_UNARY,
                  &grpc__health__v1__health_check_request__descriptor, qv__h_health, NULL,
                  QV__ROLE_NONE, 0, NULL, NULL},
    [M_IMPORT] = {"/quiver.v1.Retrieval/ImportIndex", K_CLIENT_STREAM,
                  &quiver__v1__import_index_request__descriptor, NULL, qv__start_import,
                  QV__ROLE_ADMIN, 1, NULL, qv__rt_start_import},
    /* A flip saves the collection: a writer thread's step, as a write's. */
    [M_ROLLOUT] = {"/quiver.v1.Retrieval/Rollout", K_UNARY,
                   &quiver__v1__rollout_request__descriptor, qv__h_rollout, NULL, QV__ROLE_ADMIN, 1,
                   qv__rt_rollout, NULL},
    /* Served by the node's code in both roles, open to all as Check. */
    [M_HEALTH_WATCH] = {"/grpc.health.v1.Health/Watch", K_SERVER_STREAM,
                        &grpc__health__v1__health_check_request__descriptor, NULL, qv__start_watch,
                        QV__ROLE_NONE, 0, NULL, NULL},
    [M_GET] = {"/quiver.v1.Retrieval/Get", K_UNARY, &quiver__v1__get_request__descriptor, qv__h_get,
               NULL, QV__ROLE_READ, 0, qv__rt_get, NULL},
};

const char *qv__method_short(const method *m) {
  const char *p = strrchr(m->path, '/');
  return p ? p + 1 : m->path;
}

int qv__server_methods(void) {
  return NMETHODS;
}

const char *qv__server_method_path(int method) {
  return method >= 0 && method < NMETHODS ? qv__method_table[method].path : NULL;
}
