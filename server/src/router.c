/* The router's map of the fleet, its channels and logs, and the controller: see router.h.
 *
 * One thread reads etcd every --map-poll-ms (collections, replica reports, nodes, assignments)
 * and publishes the reading as an immutable map; calls take a reference to the current one, so
 * a reading never changes under a call. A failed reading keeps the last map: searches go on
 * while etcd is unreachable, to the replicas it last saw (a replica that died meanwhile fails
 * its calls, which are retried on another).
 *
 * The controller is the router that holds /quiver/controller (an exclusive create on its lease:
 * etcd's own election pattern; the key goes when its router stops or dies). After each reading
 * it reconciles assignments with nodes: an assignment to a node that is gone (its lease ended) or
 * of a collection that was dropped is deleted; a shard with fewer assigned live nodes than its
 * replicas gets the live nodes holding the fewest replicas that do not hold that shard yet. It
 * never writes a replica's state: a replica reports its own, and only in-sync ones are searched.
 */
#define _GNU_SOURCE
#include "router.h"

#include <grpc/grpc_security.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "quiver/clock.h"
#include "router_internal.h"

static int grow_peers(qv__router *r) {
  if (r->npeers < r->pcap)
    return 1;
  const size_t cap = r->pcap ? 2 * r->pcap : 16;
  qv__rpeer **n = realloc(r->peers, cap * sizeof *n);
  if (n == NULL)
    return 0;
  r->peers = n;
  r->pcap = cap;
  return 1;
}

/* ---- peers -------------------------------------------------------------------------------- */

static qv__rpeer *peer_get(qv__router *r, const char *addr) {
  pthread_mutex_lock(&r->pmu);
  qv__rpeer *p = NULL;
  for (size_t i = 0; i < r->npeers && p == NULL; i++)
    if (strcmp(r->peers[i]->addr, addr) == 0)
      p = r->peers[i];
  if (p == NULL && grow_peers(r) && (p = calloc(1, sizeof *p)) != NULL) {
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = -1;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    grpc_channel_args ca = {2, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    p->ch = grpc_channel_create(addr, creds, &ca);
    grpc_channel_credentials_release(creds);
    r->peers[r->npeers++] = p;
  }
  pthread_mutex_unlock(&r->pmu);
  return p;
}

/* ---- the map ------------------------------------------------------------------------------ */

static void map_free(qv__rmap *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->ncolls; i++) {
    for (uint32_t k = 0; k < m->colls[i].c.shards; k++)
      free(m->colls[i].shards[k].reps);
    free(m->colls[i].shards);
  }
  free(m->colls);
  free(m->nodes);
  free(m->routers);
  free(m->pins);
  free(m);
}

void qv__rmap_put(qv__rmap *m) {
  if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1)
    map_free(m);
}

qv__rmap *qv__router_map(qv__router *r) {
  pthread_mutex_lock(&r->mu);
  qv__rmap *m = r->map;
  atomic_fetch_add(&m->refs, 1);
  pthread_mutex_unlock(&r->mu);
  return m;
}

qv__rmap *qv__router_map_for(qv__router *r, const char *name) {
  qv__rmap *m = qv__router_map(r);
  if (qv__rmap_find(m, name) != NULL || name == NULL || name[0] == '\0' ||
      qv_monotonic_s() - m->read_at < 0.05)
    return m;
  /* Not in the map: maybe created through another router since the last reading. One reading
   * now (at most one per 50 ms: a client asking for a name that does not exist is answered from
   * the map). */
  qv__rmap_put(m);
  qv_error ignored = {0};
  (void)qv__router_refresh(r, &ignored);
  return qv__router_map(r);
}

const qv__rcoll *qv__rmap_find(const qv__rmap *m, const char *name) {
  for (size_t i = 0; name && i < m->ncolls; i++)
    if (strcmp(m->colls[i].c.name, name) == 0)
      return &m->colls[i];
  return NULL;
}

typedef struct reading {
  qv__router *r;
  qv__rmap *m;
  size_t ccap, ncap;
  /* assignments: node, name, shard (the controller's input) */
  struct assign {
    char node[64];
    char name[QV__FLEET_NAME_MAX + 1];
    uint32_t shard;
  } * as;
  size_t nas, acap;
  size_t rcap, pcap;
  int failed;
} reading;

static int grow(void **p, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return 1;
  size_t c = *cap ? 2 * *cap : 8;
  void *q = realloc(*p, c * size);
  if (q == NULL)
    return 0;
  *p = q;
  *cap = c;
  return 1;
}

static int on_coll(void *user, const char *key, const char *val, size_t len) {
  (void)key;
  reading *g = user;
  qv__rmap *m = g->m;
  if (!grow((void **)&m->colls, &g->ccap, m->ncolls, sizeof *m->colls))
    return g->failed = 1;
  qv__rcoll *c = &m->colls[m->ncolls];
  qv_error err = {0};
  if (qv__fcoll_parse(val, len, &c->c, &err) != QV_OK) {
    QV_LOG_W("fleet: %s", err.msg);
    return 0;
  }
  if ((c->shards = calloc(c->c.shards, sizeof *c->shards)) == NULL)
    return g->failed = 1;
  m->ncolls++;
  return 0;
}

static int on_rep(void *user, const char *key, const char *val, size_t len) {
  reading *g = user;
  /* /quiver/replicas/<name>/<shard>/<node> */
  const char *rest = key + strlen(QV__FLEET_REPLICAS);
  const char *s1 = strchr(rest, '/');
  const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
  if (s2 == NULL || (size_t)(s1 - rest) > QV__FLEET_NAME_MAX || strlen(s2 + 1) >= 64)
    return 0;
  char name[QV__FLEET_NAME_MAX + 1];
  memcpy(name, rest, (size_t)(s1 - rest));
  name[s1 - rest] = '\0';
  const uint32_t shard = (uint32_t)strtoul(s1 + 1, NULL, 10);
  qv__rcoll *c = (qv__rcoll *)qv__rmap_find(g->m, name);
  qv__frep rep;
  qv_error err = {0};
  if (c == NULL || shard >= c->c.shards || qv__frep_parse(val, len, &rep, &err) != QV_OK ||
      rep.uid != c->c.uid)
    return 0; /* of a collection dropped (or re-created) since */
  qv__rshard *sh = &c->shards[shard];
  qv__rrep *n = realloc(sh->reps, (sh->n + 1) * sizeof *n);
  if (n == NULL)
    return g->failed = 1;
  sh->reps = n;
  qv__rrep *x = &sh->reps[sh->n++];
  snprintf(x->node, sizeof x->node, "%s", s2 + 1);
  x->r = rep;
  x->peer = peer_get(g->r, rep.addr);
  return 0;
}

static int on_node(void *user, const char *key, const char *val, size_t len) {
  reading *g = user;
  qv__rmap *m = g->m;
  json_error_t je;
  json_t *o = json_loadb(val, len, 0, &je);
  const char *id = NULL, *addr = NULL;
  if (o != NULL && json_unpack(o, "{s:s, s:s}", "id", &id, "addr", &addr) == 0 && strlen(id) < 64 &&
      strlen(addr) < 256 && grow((void **)&m->nodes, &g->ncap, m->nnodes, sizeof *m->nodes)) {
    qv__rnode *n = &m->nodes[m->nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->addr, sizeof n->addr, "%s", addr);
  }
  (void)key;
  json_decref(o);
  return 0;
}

static int on_rollout(void *user, const char *key, const char *val, size_t len) {
  reading *g = user;
  qv__rcoll *c = (qv__rcoll *)qv__rmap_find(g->m, key + strlen(QV__FLEET_ROLLOUTS));
  qv__froll ro;
  qv_error err = {0};
  if (c != NULL && qv__froll_parse(val, len, &ro, &err) == QV_OK && ro.uid == c->c.uid) {
    c->ro = ro;
    c->have_ro = 1;
  }
  return 0;
}

static int on_router(void *user, const char *key, const char *val, size_t len) {
  (void)val, (void)len;
  reading *g = user;
  qv__rmap *m = g->m;
  const char *id = key + strlen(QV__FLEET_ROUTERS);
  if (strlen(id) < 64 && grow((void **)&m->routers, &g->rcap, m->nrouters, sizeof *m->routers))
    snprintf(m->routers[m->nrouters++], 64, "%s", id);
  return 0;
}

static int on_pins(void *user, const char *key, const char *val, size_t len) {
  reading *g = user;
  qv__rmap *m = g->m;
  const char *router = key + strlen(QV__FLEET_PINS);
  json_error_t je;
  json_t *o = json_loadb(val, len, 0, &je);
  const char *name;
  json_t *v;
  if (o != NULL && strlen(router) < 64)
    json_object_foreach(o, name, v) {
      json_int_t seen = 0, oldest = 0;
      if (strlen(name) > QV__FLEET_NAME_MAX ||
          json_unpack(v, "{s:I, s:I}", "seen", &seen, "oldest", &oldest) != 0 ||
          !grow((void **)&m->pins, &g->pcap, m->npins, sizeof *m->pins))
        continue;
      qv__rpin *p = &m->pins[m->npins++];
      snprintf(p->router, sizeof p->router, "%s", router);
      snprintf(p->name, sizeof p->name, "%s", name);
      p->seen = (uint64_t)seen;
      p->oldest = (uint64_t)oldest;
    }
  json_decref(o);
  return 0;
}

static int on_assign(void *user, const char *key, const char *val, size_t len) {
  (void)val;
  (void)len;
  reading *g = user;
  const char *rest = key + strlen(QV__FLEET_ASSIGN);
  const char *s1 = strchr(rest, '/');
  const char *s2 = s1 ? strrchr(s1 + 1, '/') : NULL;
  if (s2 == NULL || s2 == s1 || (size_t)(s1 - rest) >= 64 ||
      (size_t)(s2 - s1 - 1) > QV__FLEET_NAME_MAX ||
      !grow((void **)&g->as, &g->acap, g->nas, sizeof *g->as))
    return 0;
  struct assign *a = &g->as[g->nas++];
  memcpy(a->node, rest, (size_t)(s1 - rest));
  a->node[s1 - rest] = '\0';
  memcpy(a->name, s1 + 1, (size_t)(s2 - s1 - 1));
  a->name[s2 - s1 - 1] = '\0';
  a->shard = (uint32_t)strtoul(s2 + 1, NULL, 10);
  return 0;
}

static int cmp_coll(const void *a, const void *b) {
  return strcmp(((const qv__rcoll *)a)->c.name, ((const qv__rcoll *)b)->c.name);
}
static int cmp_node(const void *a, const void *b) {
  return strcmp(((const qv__rnode *)a)->id, ((const qv__rnode *)b)->id);
}

static qv__rnode *find_node(qv__rmap *m, const char *id) {
  for (size_t i = 0; i < m->nnodes; i++)
    if (strcmp(m->nodes[i].id, id) == 0)
      return &m->nodes[i];
  return NULL;
}

/* ---- the controller ------------------------------------------------------------------------ */

static void assign_key(char *out, size_t cap, const char *node, const char *name, uint32_t shard) {
  snprintf(out, cap, QV__FLEET_ASSIGN "%s/%s/%u", node, name, shard);
}

static void controller_turn(qv__router *r, reading *g) {
  qv__rmap *m = g->m;
  qv_error err = {0};
  /* Elected? The key is ours while our lease lives. */
  int created = 0;
  const int64_t lease = qv__member_lease(r->member);
  if (qv_etcd_create(r->etcd, QV__FLEET_CONTROLLER, r->id, strlen(r->id), lease, &created, &err) !=
      QV_OK)
    return;
  int mine = created;
  if (!created) {
    char *v = NULL;
    size_t len = 0;
    if (qv_etcd_get(r->etcd, QV__FLEET_CONTROLLER, &v, &len, NULL, &err) == QV_OK)
      mine = len == strlen(r->id) && memcmp(v, r->id, len) == 0;
    free(v);
  }
  if (mine != r->controller)
    QV_LOG_I("fleet: %s the controller", mine ? "this router is now" : "this router is no longer");
  r->controller = mine;
  if (!mine)
    return;
  char key[256];
  /* Assignments to nodes that are gone, of collections that are gone. */
  for (size_t i = 0; i < g->nas; i++) {
    const struct assign *a = &g->as[i];
    const qv__rcoll *c = qv__rmap_find(m, a->name);
    qv__rnode *n = find_node(m, a->node);
    if (n != NULL && c != NULL && a->shard < c->c.shards) {
      n->assigned++;
      continue;
    }
    assign_key(key, sizeof key, a->node, a->name, a->shard);
    if (qv_etcd_delete(r->etcd, key, 0, NULL, &err) == QV_OK)
      QV_LOG_I("fleet: controller: %s/%u unassigned from %s (%s)", a->name, a->shard, a->node,
               n == NULL ? "the node is gone" : "the collection is gone");
    g->as[i].node[0] = '\0'; /* not counted below */
  }
  /* Shards short of replicas get the least loaded live nodes that do not hold them. */
  for (size_t ci = 0; ci < m->ncolls; ci++) {
    const qv__rcoll *c = &m->colls[ci];
    for (uint32_t k = 0; k < c->c.shards; k++) {
      uint32_t have = 0;
      for (size_t i = 0; i < g->nas; i++)
        have += g->as[i].node[0] && g->as[i].shard == k && strcmp(g->as[i].name, c->c.name) == 0;
      while (have < c->c.replicas) {
        qv__rnode *best = NULL;
        for (size_t ni = 0; ni < m->nnodes; ni++) {
          qv__rnode *n = &m->nodes[ni];
          int holds = 0;
          for (size_t i = 0; i < g->nas && !holds; i++)
            holds = g->as[i].shard == k && strcmp(g->as[i].node, n->id) == 0 &&
                    strcmp(g->as[i].name, c->c.name) == 0;
          if (!holds && (best == NULL || n->assigned < best->assigned))
            best = n;
        }
        if (best == NULL)
          break; /* fewer live nodes than replicas: the shard runs short until one joins */
        assign_key(key, sizeof key, best->id, c->c.name, k);
        if (qv_etcd_put(r->etcd, key, "", 0, 0, NULL, &err) != QV_OK ||
            !grow((void **)&g->as, &g->acap, g->nas, sizeof *g->as))
          return;
        struct assign *a = &g->as[g->nas++];
        snprintf(a->node, sizeof a->node, "%s", best->id);
        snprintf(a->name, sizeof a->name, "%s", c->c.name);
        a->shard = k;
        best->assigned++;
        have++;
        QV_LOG_I("fleet: controller: %s/%u assigned to %s", c->c.name, k, best->id);
      }
    }
  }
}

/* ---- reading etcd -------------------------------------------------------------------------- */

qv_status qv__router_refresh(qv__router *r, qv_error *err) {
  reading g = {.r = r};
  if ((g.m = calloc(1, sizeof *g.m)) == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  atomic_init(&g.m->refs, 1);
  qv_status st = qv_etcd_range_prefix(r->etcd, QV__FLEET_COLLECTIONS, on_coll, &g, &g.m->rev, err);
  if (st == QV_OK && g.m->ncolls > 1)
    qsort(g.m->colls, g.m->ncolls, sizeof *g.m->colls, cmp_coll);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_REPLICAS, on_rep, &g, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_NODES, on_node, &g, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_ASSIGN, on_assign, &g, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_ROLLOUTS, on_rollout, &g, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_ROUTERS, on_router, &g, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_range_prefix(r->etcd, QV__FLEET_PINS, on_pins, &g, NULL, err);
  if (st == QV_OK && g.failed)
    st = qv_error_set(err, QV_ENOMEM, "out of memory reading the fleet's map");
  if (st == QV_OK) {
    if (g.m->nnodes > 1)
      qsort(g.m->nodes, g.m->nnodes, sizeof *g.m->nodes, cmp_node);
    pthread_mutex_lock(&r->mu);
    const int joined = r->member != NULL;
    pthread_mutex_unlock(&r->mu);
    if (joined) {
      controller_turn(r, &g);
      if (r->controller)
        qv__rollout_turn(r, g.m);
      qv__pins_report(r, g.m);
    } else
      for (size_t i = 0; i < g.nas; i++) {
        qv__rnode *n = find_node(g.m, g.as[i].node);
        if (n)
          n->assigned++;
      }
    g.m->read_at = qv_monotonic_s();
    /* Two readings may overlap (the map thread's and an admin call's): one that began before the
     * other's and ends after it is older and is not published, so that a map never goes back
     * (a version pointer a router pinned queries to never returns to the version before). */
    pthread_mutex_lock(&r->mu);
    qv__rmap *old = r->map;
    if (g.m->rev >= old->rev)
      r->map = g.m;
    else
      old = g.m; /* dropped: the published one is newer */
    pthread_mutex_unlock(&r->mu);
    qv__rmap_put(old);
  } else {
    map_free(g.m);
  }
  free(g.as);
  return st;
}

static void *map_main(void *arg) {
  qv__router *r = arg;
  int failing = 0;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    pthread_mutex_unlock(&r->mu);
    qv_error err = {0};
    if (qv__router_refresh(r, &err) != QV_OK) {
      if (!failing)
        QV_LOG_W("fleet: reading the map from etcd: %s (serving from the last one)", err.msg);
      failing = 1;
    } else if (failing) {
      QV_LOG_I("fleet: reading the map from etcd works again");
      failing = 0;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->stop)
      qv_cond_wait_ms(&r->cv, &r->mu, r->cfg->map_poll_ms);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* ---- logs ---------------------------------------------------------------------------------- */

qv_status qv__router_log(qv__router *r, const qv__fcoll *c, uint32_t shard, qv__rlog **out,
                         qv_error *err) {
  char stream[64];
  qv__fleet_stream_name(c->uid, shard, stream, sizeof stream);
  pthread_mutex_lock(&r->lmu);
  qv__rlog *l = r->logs;
  while (l != NULL && strcmp(l->stream, stream) != 0)
    l = l->next;
  qv_status st = QV_OK;
  if (l == NULL) {
    /* Opened under the lock: a first write to each shard waits for the one before; later ones
     * find it at once. */
    if ((l = calloc(1, sizeof *l)) == NULL) {
      st = qv_error_set(err, QV_ENOMEM, "out of memory");
    } else if ((st = qv_jslog_open(&l->log, r->nats, stream, (int)c->stream_replicas, 5000, err)) !=
               QV_OK) {
      free(l);
      l = NULL;
    } else {
      snprintf(l->stream, sizeof l->stream, "%s", stream);
      l->next = r->logs;
      r->logs = l;
    }
  }
  pthread_mutex_unlock(&r->lmu);
  *out = l;
  return st;
}

qv_status qv__router_drop_logs(qv__router *r, const qv__fcoll *c, qv_error *err) {
  qv_status st = QV_OK;
  for (uint32_t k = 0; k < c->shards && st == QV_OK; k++) {
    qv__rlog *l;
    if ((st = qv__router_log(r, c, k, &l, err)) == QV_OK)
      st = qv_jslog_delete(l->log, err);
  }
  return st;
}

/* ---- metrics ------------------------------------------------------------------------------ */

const double qv__fanout_bounds_ms[QV__FANOUT_BUCKETS] = {0.5, 1,   2,   5,   10,   20,
                                                         50,  100, 200, 500, 1000, 5000};

void qv__router_fanout_observe(qv__router *r, double seconds) {
  const double ms = seconds * 1e3;
  int b = 0;
  while (b < QV__FANOUT_BUCKETS && ms > qv__fanout_bounds_ms[b])
    b++;
  atomic_fetch_add(&r->fanout_hist[b], 1);
  atomic_fetch_add(&r->fanout_us_sum, (uint_fast64_t)(seconds * 1e6));
}

void qv__router_metrics(qv__router *r, qv__mbuf *o) {
  static const struct {
    const char *name, *help;
    size_t off;
  } counters[] = {
      {"quiver_router_fanouts_total", "Searches fanned out to the shards.",
       offsetof(qv__router, fanouts)},
      {"quiver_router_hedges_total", "Second tries sent to another replica after --hedge-ms.",
       offsetof(qv__router, hedges)},
      {"quiver_router_retries_total", "Tries sent to another replica after a replica failed.",
       offsetof(qv__router, retries)},
      {"quiver_router_shard_failures_total", "Shard calls that failed (then retried or missing).",
       offsetof(qv__router, shard_failures)},
      {"quiver_router_partial_answers_total",
       "Searches answered without some shards "
       "(allow_partial).",
       offsetof(qv__router, partials)},
  };
  for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
    qv__mbuf_printf(
        o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name, counters[i].help,
        counters[i].name, counters[i].name,
        (unsigned long long)atomic_load((atomic_uint_fast64_t *)((char *)r + counters[i].off)));
  qv__mbuf_printf(o, "# HELP quiver_router_fanout_seconds Searches through the router, from the "
                     "first shard call to the merged answer.\n"
                     "# TYPE quiver_router_fanout_seconds histogram\n");
  uint64_t cum = 0;
  for (int b = 0; b <= QV__FANOUT_BUCKETS; b++) {
    cum += atomic_load(&r->fanout_hist[b]);
    if (b < QV__FANOUT_BUCKETS)
      qv__mbuf_printf(o, "quiver_router_fanout_seconds_bucket{le=\"%g\"} %llu\n",
                      qv__fanout_bounds_ms[b] / 1e3, (unsigned long long)cum);
  }
  qv__mbuf_printf(o,
                  "quiver_router_fanout_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "quiver_router_fanout_seconds_sum %.6f\n"
                  "quiver_router_fanout_seconds_count %llu\n",
                  (unsigned long long)cum, (double)atomic_load(&r->fanout_us_sum) / 1e6,
                  (unsigned long long)cum);
  qv__rmap *m = qv__router_map(r);
  qv__mbuf_printf(o,
                  "# HELP quiver_fleet_nodes Live shard servers in etcd.\n"
                  "# TYPE quiver_fleet_nodes gauge\nquiver_fleet_nodes %zu\n"
                  "# HELP quiver_router_controller 1 while this router is the controller.\n"
                  "# TYPE quiver_router_controller gauge\nquiver_router_controller %d\n"
                  "# HELP quiver_fleet_map_age_seconds Since the map was last read from etcd.\n"
                  "# TYPE quiver_fleet_map_age_seconds gauge\nquiver_fleet_map_age_seconds %.3f\n",
                  m->nnodes, atomic_load(&r->controller), qv_monotonic_s() - m->read_at);
  qv__mbuf_printf(o, "# HELP quiver_fleet_replica_lag Log records a replica has yet to apply.\n"
                     "# TYPE quiver_fleet_replica_lag gauge\n");
  for (size_t i = 0; i < m->ncolls; i++)
    for (uint32_t k = 0; k < m->colls[i].c.shards; k++)
      for (size_t j = 0; j < m->colls[i].shards[k].n; j++) {
        const qv__rrep *x = &m->colls[i].shards[k].reps[j];
        qv__mbuf_printf(
            o,
            "quiver_fleet_replica_lag{collection=\"%s\",shard=\"%u\",node=\"%s\","
            "state=\"%s\"} %llu\n",
            m->colls[i].c.name, k, x->node, qv__rep_state_name(x->r.state),
            (unsigned long long)(x->r.log_seq > x->r.applied ? x->r.log_seq - x->r.applied : 0));
      }
  qv__mbuf_printf(o, "# HELP quiver_fleet_shard_in_sync In-sync replicas per shard.\n"
                     "# TYPE quiver_fleet_shard_in_sync gauge\n");
  for (size_t i = 0; i < m->ncolls; i++)
    for (uint32_t k = 0; k < m->colls[i].c.shards; k++) {
      unsigned n = 0;
      for (size_t j = 0; j < m->colls[i].shards[k].n; j++)
        n += m->colls[i].shards[k].reps[j].r.state == QV__REP_IN_SYNC;
      qv__mbuf_printf(o, "quiver_fleet_shard_in_sync{collection=\"%s\",shard=\"%u\"} %u\n",
                      m->colls[i].c.name, k, n);
    }
  qv__rmap_put(m);
}

/* ---- start and stop ------------------------------------------------------------------------ */

qv_status qv__router_new(qv__router **out, const qv__config *cfg, const char *etcd,
                         const char *nats, const char *id, qv_error *err) {
  *out = NULL;
  if (nats == NULL || nats[0] == '\0')
    return qv_error_set(err, QV_EINVAL,
                        "--cluster: a router needs the write logs' NATS servers too "
                        "(etcd=...,nats=nats://HOST:PORT[,nats://...])");
  qv__router *r = calloc(1, sizeof *r);
  if (r == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  r->cfg = cfg;
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->etcd_eps, sizeof r->etcd_eps, "%s", etcd);
  snprintf(r->nats, sizeof r->nats, "%s", nats);
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->pmu, NULL);
  pthread_mutex_init(&r->lmu, NULL);
  pthread_mutex_init(&r->pin_mu, NULL);
  qv_cond_init_monotonic(&r->cv);
  FILE *f = fopen("/dev/urandom", "rb");
  if (f == NULL || fread(&r->nonce, sizeof r->nonce, 1, f) != 1)
    r->nonce = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  if (f)
    fclose(f);
  qv_status st = qv_etcd_open(&r->etcd, etcd, 5000, err);
  if (st == QV_OK && (r->map = calloc(1, sizeof *r->map)) == NULL)
    st = qv_error_set(err, QV_ENOMEM, "out of memory");
  if (st == QV_OK) {
    atomic_init(&r->map->refs, 1);
    qv_error first = {0};
    if (qv__router_refresh(r, &first) != QV_OK)
      QV_LOG_W("fleet: the first reading of the map failed: %s (retrying)", first.msg);
    if (pthread_create(&r->thr, NULL, map_main, r) != 0)
      st = qv_error_set(err, QV_ENOMEM, "cannot start the router's map thread");
  }
  if (st != QV_OK) {
    qv_etcd_close(r->etcd);
    map_free(r->map);
    free(r);
    return st;
  }
  *out = r;
  return QV_OK;
}

qv_status qv__router_join(qv__router *r, const char *addr, qv_error *err) {
  qv__member *m;
  qv_status st =
      qv__member_join(&m, r->etcd_eps, QV__FLEET_ROUTERS, r->id, addr, r->cfg->lease_s, err);
  if (st != QV_OK)
    return st;
  pthread_mutex_lock(&r->mu);
  r->member = m;
  pthread_mutex_unlock(&r->mu);
  return QV_OK;
}

void qv__router_free(qv__router *r) {
  if (r == NULL)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cv);
  qv__member *m = r->member;
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thr, NULL);
  qv__member_leave(m); /* the controller key goes with the lease */
  for (qv__rlog *l = r->logs, *next; l != NULL; l = next) {
    next = l->next;
    qv_jslog_close(l->log);
    free(l);
  }
  for (size_t i = 0; i < r->npeers; i++) {
    grpc_channel_destroy(r->peers[i]->ch);
    free(r->peers[i]);
  }
  free(r->peers);
  qv__rmap_put(r->map);
  qv_etcd_close(r->etcd);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->pmu);
  pthread_mutex_destroy(&r->lmu);
  pthread_mutex_destroy(&r->pin_mu);
  free(r->inflight);
  free(r->pins_report);
  free(r);
}
