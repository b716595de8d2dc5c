/* The router's writes and admin calls (Search is router_search.c).
 *
 * Writes: each Upsert message and each Delete is split by shard (fleet.h's hash of the id) and
 * appended to every shard's JetStream log it touches (records of at most RECORD_BYTES, under
 * NATS's message limit); the call is acknowledged once JetStream acknowledged all of them. A
 * failure part-way leaves the records already stored in their logs (applied in time by their
 * replicas): the client sees the error and sends again, which is safe, since a write of an id
 * gives the same result however often it is applied.
 *
 * Admin: CreateCollection writes the collection's record in etcd (an exclusive create: one
 * winner) and creates its shards' logs; the controller assigns the replicas, and the call waits
 * (up to 15 s, within its deadline) until every shard has its replicas in-sync. Describe and
 * List answer from the router's map: no call to a shard server. BuildIndex raises the record's
 * build generation; every replica builds from its own store and reports, and the call ends when
 * all have (the slowest replica sets its time). */
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "quiver/clock.h"
#include "router_internal.h"

enum { RECORD_BYTES = 512 * 1024 };

static void pause_ms(int ms) {
  nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L}, NULL);
}

/* Seconds left before a call's deadline (cap when it has none). */
static double seconds_left(const gpr_timespec *deadline, double cap) {
  if (deadline == NULL || gpr_time_cmp(*deadline, gpr_inf_future(deadline->clock_type)) == 0)
    return cap;
  gpr_timespec d = gpr_convert_clock_type(*deadline, GPR_CLOCK_MONOTONIC);
  double left = (double)gpr_time_to_millis(gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC))) / 1e3;
  return left < cap ? left : cap;
}

/* ---- the answers' descriptions --------------------------------------------------------------- */

void qv__rt_info_free(info_buf *b) {
  free(b->reps);
  free(b->ptrs);
}

static const char *beside_state(const qv__frep *r) {
  return r->beside_version == 0 ? ""
         : r->beside_kind == 2  ? "previous"
         : r->beside_ready      ? "ready"
                                : "staged";
}

qv_status qv__rt_fill_info(const qv__rcoll *c, Quiver__V1__CollectionInfo *info, info_buf *b,
                           qv_error *err) {
  quiver__v1__collection_info__init(info);
  size_t n = 0;
  for (uint32_t k = 0; k < c->c.shards; k++)
    n += c->shards[k].n;
  b->reps = calloc(n ? n : 1, sizeof *b->reps);
  b->ptrs = calloc(n ? n : 1, sizeof *b->ptrs);
  if (b->reps == NULL || b->ptrs == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  snprintf(b->spec, sizeof b->spec, "%s", c->c.spec);
  info->name = (char *)c->c.name;
  info->dim = c->c.dim;
  info->metric = (Quiver__V1__Metric)c->c.metric;
  info->index_spec = b->spec;
  const int graph = qv_spec_is_graph(c->c.spec);
  info->default_nprobe = graph ? 0 : c->c.default_nprobe;
  info->default_ef_search = graph ? c->c.default_nprobe : 0;
  info->n_features = c->c.n_features;
  info->device = (Quiver__V1__Device)c->c.device;
  info->deferred_deletes = c->c.deferred_deletes;
  info->shards = c->c.shards;
  info->replicas = c->c.replicas;
  qv__schema_to_pb(c->c.n_attrs, c->c.attrs, b->attrs, b->attr_ptrs);
  info->n_attributes = c->c.n_attrs;
  info->attributes = c->c.n_attrs ? b->attr_ptrs : NULL;
  info->build_recall = -1;
  info->gpu = -1;
  int serving = 1, building = 0;
  uint64_t version = UINT64_MAX;
  size_t o = 0;
  for (uint32_t k = 0; k < c->c.shards; k++) {
    const qv__rshard *sh = &c->shards[k];
    uint64_t count = 0;
    int insync = 0;
    for (size_t i = 0; i < sh->n; i++) {
      const qv__rrep *x = &sh->reps[i];
      Quiver__V1__ReplicaInfo *ri = &b->reps[o];
      quiver__v1__replica_info__init(ri);
      ri->shard = k;
      ri->node = (char *)x->node;
      ri->addr = (char *)x->r.addr;
      ri->state = (char *)qv__rep_state_name(x->r.state);
      ri->applied_seq = x->r.applied;
      ri->log_seq = x->r.log_seq;
      ri->count = x->r.count;
      ri->index_version = x->r.index_version;
      ri->version = x->r.version;
      ri->beside_version = x->r.beside_version;
      ri->beside_state = (char *)beside_state(&x->r);
      ri->beside_recall = x->r.beside_version ? x->r.beside_recall : -1;
      b->ptrs[o++] = ri;
      if (x->r.built_gen < c->c.build_gen)
        building = 1;
      if (x->r.state == QV__REP_IN_SYNC) {
        insync = 1;
        if (x->r.count > count)
          count = x->r.count;
        if (x->r.index_version < version)
          version = x->r.index_version;
      }
    }
    info->count += count;
    serving &= insync;
  }
  info->n_replica_info = o;
  info->replica_info = b->ptrs;
  info->version = c->c.version;
  info->index_version = version == UINT64_MAX ? 0 : version;
  info->indexed = info->count;
  const int flat = strcmp(c->c.spec, "Flat") == 0 || c->c.spec[0] == '\0';
  info->state = building ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_BUILDING
                : !flat && c->c.build_gen == 0
                    ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_NOT_BUILT
                : serving ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_READY
                          : QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_NOT_BUILT;
  info->placement = serving
                        ? (char *)"fleet: every shard has an in-sync replica"
                        : (char *)"fleet: a shard has no in-sync replica (quiver cluster status)";
  return QV_OK;
}

qv_status qv__rt_describe(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                          grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DescribeCollectionRequest *r = (const Quiver__V1__DescribeCollectionRequest *)m;
  qv__rmap *map = qv__router_map_for(s->router, r->name);
  const qv__rcoll *c = qv__rmap_find(map, r->name);
  qv_status st;
  if (c == NULL) {
    st = qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist",
                      r->name ? r->name : "");
  } else {
    Quiver__V1__CollectionInfo info;
    info_buf b = {0};
    if ((st = qv__rt_fill_info(c, &info, &b, err)) == QV_OK)
      *resp = qv__wire_pack(&info.base);
    qv__rt_info_free(&b);
  }
  qv__rmap_put(map);
  return st;
}

qv_status qv__rt_list(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                      grpc_byte_buffer **resp, qv_error *err) {
  (void)unused, (void)m;
  qv__rmap *map = qv__router_map(s->router);
  const size_t n = map->ncolls, nn = map->nnodes;
  Quiver__V1__CollectionInfo *infos = calloc(n ? n : 1, sizeof *infos);
  Quiver__V1__CollectionInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  info_buf *bufs = calloc(n ? n : 1, sizeof *bufs);
  Quiver__V1__NodeInfo *nodes = calloc(nn ? nn : 1, sizeof *nodes);
  Quiver__V1__NodeInfo **nptrs = calloc(nn ? nn : 1, sizeof *nptrs);
  qv_status st = infos && ptrs && bufs && nodes && nptrs
                     ? QV_OK
                     : qv_error_set(err, QV_ENOMEM, "out of memory listing %zu collections", n);
  for (size_t i = 0; i < n && st == QV_OK; i++) {
    st = qv__rt_fill_info(&map->colls[i], &infos[i], &bufs[i], err);
    ptrs[i] = &infos[i];
  }
  for (size_t i = 0; i < nn && st == QV_OK; i++) {
    quiver__v1__node_info__init(&nodes[i]);
    nodes[i].id = map->nodes[i].id;
    nodes[i].addr = map->nodes[i].addr;
    nodes[i].replicas = map->nodes[i].assigned;
    nptrs[i] = &nodes[i];
  }
  if (st == QV_OK) {
    Quiver__V1__ListCollectionsResponse out = QUIVER__V1__LIST_COLLECTIONS_RESPONSE__INIT;
    out.n_collections = n;
    out.collections = ptrs;
    out.n_nodes = nn;
    out.nodes = nptrs;
    *resp = qv__wire_pack(&out.base);
  }
  for (size_t i = 0; bufs && i < n; i++)
    qv__rt_info_free(&bufs[i]);
  free(infos);
  free(ptrs);
  free(bufs);
  free(nodes);
  free(nptrs);
  qv__rmap_put(map);
  return st;
}

/* ---- CreateCollection, DropCollection ------------------------------------------------------- */

static uint64_t random_uid(qv__router *r) {
  uint64_t u = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f == NULL || fread(&u, sizeof u, 1, f) != 1)
    u = r->nonce ^ (uint64_t)qv_monotonic_s() * 0x9e3779b97f4a7c15ULL;
  if (f)
    fclose(f);
  return u ? u : 1;
}

/* Every shard of `name` has `want` in-sync replicas (in the current map). */
static int placed(qv__router *r, const char *name, uint64_t uid, uint32_t want) {
  qv__rmap *map = qv__router_map(r);
  const qv__rcoll *c = qv__rmap_find(map, name);
  int ok = c != NULL && c->c.uid == uid;
  for (uint32_t k = 0; ok && k < c->c.shards; k++) {
    uint32_t n = 0;
    for (size_t i = 0; i < c->shards[k].n; i++)
      n += c->shards[k].reps[i].r.state == QV__REP_IN_SYNC;
    ok = n >= want;
  }
  qv__rmap_put(map);
  return ok;
}

qv_status qv__rt_create(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                        grpc_byte_buffer **resp, qv_error *err) {
  qv__router *r = s->router;
  const Quiver__V1__CreateCollectionRequest *q = (const Quiver__V1__CreateCollectionRequest *)m;
  qv_status st = qv__name_check(q->name, err);
  if (st != QV_OK)
    return st;
  if (strlen(q->name) > QV__FLEET_NAME_MAX)
    return qv_error_set(err, QV_EINVAL,
                        "name '%s' is %zu characters; a fleet collection's takes at most %d "
                        "(its replicas are named NAME.shardK)",
                        q->name, strlen(q->name), QV__FLEET_NAME_MAX);
  const uint32_t shards = q->shards ? q->shards : 1, replicas = q->replicas ? q->replicas : 1;
  if (shards > QV__FLEET_MAX_SHARDS)
    return qv_error_set(err, QV_EINVAL, "shards = %u is out of range 1..%d", shards,
                        QV__FLEET_MAX_SHARDS);
  if (replicas > QV__FLEET_MAX_REPLICAS)
    return qv_error_set(err, QV_EINVAL, "replicas = %u is out of range 1..%d", replicas,
                        QV__FLEET_MAX_REPLICAS);
  /* The collection's options, checked as a node checks them (an empty in-memory collection). */
  qv_collection_opts o;
  qv_attr_field fields[QV_MAX_ATTRS];
  if ((st = qv__create_opts_from(s, q, &o, fields, err)) != QV_OK)
    return st;
  o.device = QV_DEVICE_CPU; /* the check only; each replica places its own copy */
  qv_collection *probe = NULL;
  if ((st = qv_collection_create(&probe, &o, err)) != QV_OK)
    return st;
  qv_collection_close(probe);
  if (strlen(o.spec) >= sizeof(((qv__fcoll *)0)->spec))
    return qv_error_set(err, QV_EINVAL, "index_spec '%.60s...' is too long", o.spec);
  qv__rmap *map = qv__router_map(r);
  const size_t live = map->nnodes;
  const int exists = qv__rmap_find(map, q->name) != NULL;
  qv__rmap_put(map);
  if (exists)
    return qv_error_set(err, QV_EEXIST, "collection '%s' already exists", q->name);
  if (live < replicas)
    return qv_error_set(err, QV_EPRECONDITION,
                        "replicas = %u needs %u shard servers; the fleet has %zu live (quiver "
                        "cluster status)",
                        replicas, replicas, live);
  qv__fcoll c;
  memset(&c, 0, sizeof c);
  snprintf(c.name, sizeof c.name, "%s", q->name);
  c.uid = random_uid(r);
  c.shards = shards;
  c.replicas = replicas;
  c.stream_replicas = (uint32_t)r->cfg->stream_replicas;
  c.dim = q->dim;
  c.metric = (int)q->metric;
  c.device = (int)q->device; /* unset: each shard server's --device */
  snprintf(c.spec, sizeof c.spec, "%s", o.spec);
  c.default_nprobe = o.default_nprobe; /* a graph's default efSearch too */
  c.train_sample = q->train_sample;
  c.n_features = q->n_features;
  c.deferred_deletes = q->deferred_deletes;
  c.n_attrs = o.n_attrs;
  if (o.n_attrs > 0)
    memcpy(c.attrs, o.attrs, o.n_attrs * sizeof *c.attrs);
  /* The logs first: a record in etcd always has its logs. */
  for (uint32_t k = 0; k < shards && st == QV_OK; k++) {
    qv__rlog *l;
    st = qv__router_log(r, &c, k, &l, err);
  }
  if (st != QV_OK)
    return qv_error_prefix(err, QV_EUNAVAILABLE, "creating the write logs of '%s'", q->name);
  char *json = qv__fcoll_json(&c);
  if (json == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  char key[128];
  snprintf(key, sizeof key, QV__FLEET_COLLECTIONS "%s", q->name);
  int created = 0;
  st = qv_etcd_create(r->etcd, key, json, strlen(json), 0, &created, err);
  free(json);
  if (st == QV_OK && !created) {
    qv_error ignored = {0};
    (void)qv__router_drop_logs(r, &c, &ignored);
    return qv_error_set(err, QV_EEXIST, "collection '%s' already exists", q->name);
  }
  if (st != QV_OK)
    return st;
  QV_LOG_I("CreateCollection collection=%s dim=%u spec=%s attributes=%zu shards=%u replicas=%u "
           "(fleet)",
           c.name, c.dim, c.spec, c.n_attrs, shards, replicas);
  /* Placed: the controller assigns, each replica opens and reports in-sync. */
  const double until = qv_monotonic_s() + seconds_left(deadline, 15.0);
  qv_error ignored = {0};
  while (qv__router_refresh(r, &ignored),
         !placed(r, c.name, c.uid, replicas) && qv_monotonic_s() < until)
    pause_ms(50);
  map = qv__router_map(r);
  const qv__rcoll *rc = qv__rmap_find(map, c.name);
  Quiver__V1__CollectionInfo info;
  info_buf b = {0};
  if (rc != NULL && (st = qv__rt_fill_info(rc, &info, &b, err)) == QV_OK)
    *resp = qv__wire_pack(&info.base);
  else if (rc == NULL)
    st = qv_error_set(err, QV_EUNAVAILABLE, "collection '%s' was created but vanished from etcd",
                      c.name);
  qv__rt_info_free(&b);
  qv__rmap_put(map);
  return st;
}

qv_status qv__rt_drop(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                      grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  qv__router *r = s->router;
  const Quiver__V1__DropCollectionRequest *q = (const Quiver__V1__DropCollectionRequest *)m;
  qv_error ignored = {0};
  (void)qv__router_refresh(r, &ignored);
  qv__rmap *map = qv__router_map(r);
  const qv__rcoll *rc = qv__rmap_find(map, q->name);
  qv__fcoll c;
  if (rc != NULL)
    c = rc->c;
  qv__rmap_put(map);
  if (rc == NULL)
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist",
                        q->name ? q->name : "");
  char key[128];
  snprintf(key, sizeof key, QV__FLEET_COLLECTIONS "%s", c.name);
  int64_t deleted = 0;
  qv_status st = qv_etcd_delete(r->etcd, key, 0, &deleted, err);
  if (st != QV_OK)
    return st;
  snprintf(key, sizeof key, QV__FLEET_ROLLOUTS "%s", c.name); /* its rollout goes with it */
  (void)qv_etcd_delete(r->etcd, key, 0, NULL, &ignored);
  /* The replicas drop their copies once the controller removes their assignments. */
  if ((st = qv__router_drop_logs(r, &c, err)) != QV_OK)
    QV_LOG_W("DropCollection %s: deleting its write logs: %s", c.name, err->msg);
  QV_LOG_I("DropCollection collection=%s (fleet)", c.name);
  Quiver__V1__DropCollectionResponse out = QUIVER__V1__DROP_COLLECTION_RESPONSE__INIT;
  *resp = qv__wire_pack(&out.base);
  return QV_OK;
}

/* ---- writes ---------------------------------------------------------------------------------- */

/* Appends one record to shard k's log; the log's acknowledged sequence moves on. */
static qv_status append(qv__router *r, const qv__fcoll *c, uint32_t k, uint8_t tag,
                        const ProtobufCMessage *msg, qv_error *err) {
  qv__rlog *l;
  qv_status st = qv__router_log(r, c, k, &l, err);
  if (st != QV_OK)
    return st;
  const size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len + 1);
  if (buf == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  buf[0] = tag;
  protobuf_c_message_pack(msg, buf + 1);
  char id[96];
  snprintf(id, sizeof id, "%s-%016" PRIx64 "-%" PRIu64, r->id, r->nonce,
           (uint64_t)atomic_fetch_add(&r->writes, 1));
  uint64_t seq = 0;
  st = qv_jslog_append(l->log, buf, len + 1, id, &seq, NULL, err);
  free(buf);
  if (st == QV_OK) {
    uint_fast64_t cur = atomic_load(&l->acked);
    while (seq > cur && !atomic_compare_exchange_weak(&l->acked, &cur, seq)) {
    }
  } else {
    st = qv_error_prefix(err, st, "collection '%s', shard %u: the write log did not take it",
                         c->name, k);
  }
  return st;
}

/* The rows of one message going to shard k, in records of at most RECORD_BYTES (a row larger
 * than that alone in its record). An upsert's attribute columns (checked) are cut alike. */
static qv_status write_rows(qv__router *r, const qv__fcoll *c, int upsert, size_t n,
                            const int64_t *ids, const float *vecs, const float *feats, size_t ncols,
                            Quiver__V1__AttributeColumn *const *cols, qv_error *err) {
  const size_t dim = c->dim, nf = c->n_features;
  const uint32_t S = c->shards;
  uint32_t *shard = malloc((n ? n : 1) * sizeof *shard);
  size_t *count = calloc(S, sizeof *count);
  int64_t *bids = malloc((n ? n : 1) * sizeof *bids);
  float *bvec = upsert ? malloc((n ? n : 1) * dim * sizeof *bvec) : NULL;
  float *bfeat = upsert && feats ? malloc((n ? n : 1) * nf * sizeof *bfeat) : NULL;
  qv__attrs_split split;
  memset(&split, 0, sizeof split);
  qv_status st = shard && count && bids && (!upsert || bvec) && (!(upsert && feats) || bfeat)
                     ? QV_OK
                     : qv_error_set(err, QV_ENOMEM, "out of memory");
  if (st == QV_OK && upsert && ncols > 0)
    st = qv__attrs_split_init(&split, c->n_attrs, c->attrs, n, ncols, cols, err);
  for (size_t i = 0; i < n && st == QV_OK; i++) {
    shard[i] = qv__fleet_shard_of(ids[i], S);
    count[shard[i]]++;
  }
  const size_t row_bytes = 10 + (upsert ? (dim + (feats ? nf : 0)) * 4 : 0);
  for (uint32_t k = 0; k < S && st == QV_OK; k++) {
    if (count[k] == 0)
      continue;
    size_t m = 0, bytes = 0;
    for (size_t i = 0; i <= n && st == QV_OK; i++) {
      const int take = i < n && shard[i] == k;
      const size_t rb = take ? row_bytes + (split.n ? qv__attrs_row_bytes(&split, i) : 0) : 0;
      /* The record so far goes before a row that would take it over RECORD_BYTES. */
      if (m > 0 && (i == n || (take && bytes + rb > RECORD_BYTES))) {
        if (upsert) {
          Quiver__V1__UpsertRequest u = QUIVER__V1__UPSERT_REQUEST__INIT;
          u.collection = (char *)c->name;
          u.n_ids = m;
          u.ids = bids;
          u.n_vectors = m * dim;
          u.vectors = bvec;
          u.n_features = bfeat ? m * nf : 0;
          u.features = bfeat;
          qv__attrs_split_rows(&split, m);
          u.n_attributes = split.n;
          u.attributes = split.n ? split.ptrs : NULL;
          st = append(r, c, k, QV__REC_UPSERT, &u.base, err);
        } else {
          Quiver__V1__DeleteRequest d = QUIVER__V1__DELETE_REQUEST__INIT;
          d.collection = (char *)c->name;
          d.n_ids = m;
          d.ids = bids;
          st = append(r, c, k, QV__REC_DELETE, &d.base, err);
        }
        m = 0;
        bytes = 0;
      }
      if (take && st == QV_OK) {
        bids[m] = ids[i];
        if (upsert)
          memcpy(bvec + m * dim, vecs + i * dim, dim * sizeof *bvec);
        if (bfeat)
          memcpy(bfeat + m * nf, feats + i * nf, nf * sizeof *bfeat);
        if (split.n)
          qv__attrs_split_set(&split, m, i);
        m++;
        bytes += rb;
      }
    }
  }
  free(shard);
  free(count);
  free(bids);
  free(bvec);
  free(bfeat);
  qv__attrs_split_free(&split);
  return st;
}

static uint64_t fleet_count(qv__router *r, const char *name) {
  qv__rmap *map = qv__router_map(r);
  const qv__rcoll *c = qv__rmap_find(map, name);
  uint64_t total = 0;
  for (uint32_t k = 0; c && k < c->c.shards; k++) {
    uint64_t best = 0;
    for (size_t i = 0; i < c->shards[k].n; i++)
      if (c->shards[k].reps[i].r.count > best)
        best = c->shards[k].reps[i].r.count;
    total += best;
  }
  qv__rmap_put(map);
  return total;
}

static qv_status find(qv__router *r, const char *name, qv__fcoll *out, qv_error *err) {
  qv__rmap *map = qv__router_map_for(r, name);
  const qv__rcoll *c = qv__rmap_find(map, name);
  if (c != NULL)
    *out = c->c;
  qv__rmap_put(map);
  return c != NULL ? QV_OK
                   : qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist",
                                  name ? name : "");
}

qv_status qv__rt_delete(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                        grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DeleteRequest *q = (const Quiver__V1__DeleteRequest *)m;
  qv__fcoll c;
  qv_status st = find(s->router, q->collection, &c, err);
  if (st == QV_OK)
    st = write_rows(s->router, &c, 0, q->n_ids, q->ids, NULL, NULL, 0, NULL, err);
  if (st == QV_OK) {
    Quiver__V1__DeleteResponse out = QUIVER__V1__DELETE_RESPONSE__INIT;
    out.deleted = q->n_ids; /* logged; which were present only the replicas know */
    out.count = fleet_count(s->router, c.name);
    *resp = qv__wire_pack(&out.base);
  }
  return st;
}

typedef struct rt_upsert {
  qv__stream st; /* first: its tag is the call's */
  qv__server *s;
  qv__fcoll c;
  int have;
  uint64_t upserted;
} rt_upsert;

static void rt_upsert_end(rt_upsert *u, qv_status st, const char *msg, grpc_byte_buffer *resp) {
  if (st != QV_OK)
    qv__log_failure("Upsert", u->have ? u->c.name : NULL, st, msg);
  qv__metrics_call_end(M_UPSERT, st, u->st.t0);
  qv__finish_call(u->st.call, &u->st.md, 0, resp, st, msg);
  free(u);
}

static qv_status rt_upsert_chunk(rt_upsert *u, const Quiver__V1__UpsertRequest *q, qv_error *err) {
  const char *name = q->collection ? q->collection : "";
  qv_status st;
  if (!u->have) {
    if (name[0] == '\0')
      return qv_error_set(err, QV_EINVAL, "the first upsert message must name the collection");
    if ((st = find(u->s->router, name, &u->c, err)) != QV_OK)
      return st;
    u->have = 1;
  } else if (name[0] != '\0' && strcmp(name, u->c.name) != 0) {
    return qv_error_set(err, QV_EINVAL,
                        "one upsert stream goes to one collection ('%s', not '%.80s')", u->c.name,
                        name);
  }
  const size_t dim = u->c.dim, nf = u->c.n_features;
  if (q->n_vectors != q->n_ids * dim)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu floats for %zu ids; collection '%s' needs %zu "
                        "(dimension %zu)",
                        q->n_vectors, q->n_ids, u->c.name, q->n_ids * dim, dim);
  if (q->n_features != 0 && q->n_features != q->n_ids * nf)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu features for %zu ids; items of collection '%s' "
                        "carry %zu each (send none for zeros)",
                        q->n_features, q->n_ids, u->c.name, nf);
  qv_metric metric = QV_METRIC_L2;
  qv__metric_from_pb((Quiver__V1__Metric)u->c.metric, &metric);
  if ((st = qv_rows_check(dim, metric, nf, q->n_ids, q->ids, q->vectors,
                          q->n_features ? q->features : NULL, err)) != QV_OK)
    return st;
  /* The attributes, checked as the shards' collections will check them (what is logged must
   * apply on every replica). */
  qv__attrs_in a;
  st = qv__attrs_from_pb(u->c.n_attrs, u->c.attrs, u->c.name, q->n_ids, q->n_attributes,
                         q->attributes, &a, err);
  if (st == QV_OK && q->n_attributes > 0)
    st = qv_attr_batch_check(u->c.n_attrs, u->c.attrs, q->n_ids, &a.b, err);
  qv__attrs_in_free(&a);
  if (st != QV_OK)
    return st;
  if ((st = write_rows(u->s->router, &u->c, 1, q->n_ids, q->ids, q->vectors,
                       q->n_features ? q->features : NULL, q->n_attributes, q->attributes, err)) !=
      QV_OK)
    return st;
  u->upserted += q->n_ids;
  return QV_OK;
}

static void on_rt_upsert(void *self, int ok) {
  rt_upsert *u = self;
  qv_error err = {0};
  if (!ok) {
    rt_upsert_end(u, QV_ECANCELLED, "upsert stream broken before its end", NULL);
    return;
  }
  if (u->st.recv == NULL) {
    if (!u->have) {
      rt_upsert_end(u, QV_EINVAL,
                    "empty upsert stream: send at least one message naming the collection", NULL);
      return;
    }
    Quiver__V1__UpsertResponse out = QUIVER__V1__UPSERT_RESPONSE__INIT;
    out.upserted = u->upserted;
    out.count = fleet_count(u->s->router, u->c.name);
    rt_upsert_end(u, QV_OK, NULL, qv__wire_pack(&out.base));
    return;
  }
  Quiver__V1__UpsertRequest *q = (Quiver__V1__UpsertRequest *)qv__stream_take(
      &u->st, &quiver__v1__upsert_request__descriptor, &err);
  qv_status st = q ? rt_upsert_chunk(u, q, &err) : QV_EINVAL;
  if (q)
    protobuf_c_message_free_unpacked(&q->base, NULL);
  if (st != QV_OK)
    rt_upsert_end(u, st, err.msg, NULL);
  else if (!qv__stream_recv_next(&u->st))
    rt_upsert_end(u, QV_EINTERNAL, "cannot read the next upsert message", NULL);
}

void qv__rt_start_upsert(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                         grpc_byte_buffer *unused) {
  (void)unused;
  rt_upsert *u = calloc(1, sizeof *u);
  if (u == NULL) {
    qv__finish_call(call, md, 0, NULL, QV_ENOMEM, "out of memory");
    return;
  }
  qv__stream_init(&u->st, call, md, on_rt_upsert, 1); /* appends wait for JetStream: writers */
  u->s = s;
  if (!qv__stream_recv_next(&u->st))
    rt_upsert_end(u, QV_EINTERNAL, "cannot read the first upsert message", NULL);
}

/* ---- BuildIndex, ImportIndex ----------------------------------------------------------------- */

typedef struct rt_build {
  qv__server *s;
  grpc_call *call;
  grpc_metadata_array md;
  char name[QV__FLEET_NAME_MAX + 1];
  uint64_t uid, gen;
  double t0;
} rt_build;

/* Waits until every replica of every shard reports the build; the answer from the map then. */
static void *rt_build_main(void *arg) {
  rt_build *b = arg;
  qv__router *r = b->s->router;
  qv_error err = {0};
  qv_status st = QV_OK;
  grpc_byte_buffer *resp = NULL;
  for (;;) {
    qv__rmap *map = qv__router_map(r);
    const qv__rcoll *c = qv__rmap_find(map, b->name);
    int done = 1;
    char failed[320] = "";
    if (c == NULL || c->c.uid != b->uid) {
      st =
          qv_error_set(&err, QV_ENOTFOUND, "collection '%s' was dropped during its build", b->name);
    } else {
      for (uint32_t k = 0; k < c->c.shards; k++) {
        uint32_t built = 0;
        for (size_t i = 0; i < c->shards[k].n; i++) {
          const qv__rrep *x = &c->shards[k].reps[i];
          if (x->r.built_gen < b->gen)
            continue;
          built++;
          if (x->r.build_error[0] && failed[0] == '\0')
            snprintf(failed, sizeof failed, "shard %u on %.63s: %.200s", k, x->node,
                     x->r.build_error);
        }
        done &= built >= c->c.replicas || (built > 0 && built == c->shards[k].n);
      }
      if (done && failed[0] != '\0') {
        st =
            qv_error_set(&err, QV_EPRECONDITION, "build of '%s' failed on %.200s", b->name, failed);
      } else if (done) {
        Quiver__V1__BuildIndexProgress p = QUIVER__V1__BUILD_INDEX_PROGRESS__INIT;
        Quiver__V1__CollectionInfo info;
        info_buf ib = {0};
        if ((st = qv__rt_fill_info(c, &info, &ib, &err)) == QV_OK) {
          p.phase = "done";
          p.finished = 1;
          p.info = &info;
          p.recall = -1;
          p.elapsed_seconds = qv_monotonic_s() - b->t0;
          resp = qv__wire_pack(&p.base);
        }
        qv__rt_info_free(&ib);
      }
    }
    qv__rmap_put(map);
    if (st != QV_OK || resp != NULL)
      break;
    if (atomic_load(&b->s->stopping)) {
      st = qv_error_set(
          &err, QV_EUNAVAILABLE,
          "the router is shutting down; the replicas' builds go on (DescribeCollection "
          "shows them)");
      break;
    }
    pause_ms(50);
  }
  if (st != QV_OK)
    qv__log_failure("BuildIndex", b->name, st, err.msg);
  else
    QV_LOG_I("BuildIndex collection=%s build=%llu done in %.2f s (fleet)", b->name,
             (unsigned long long)b->gen, qv_monotonic_s() - b->t0);
  qv__metrics_call_end(M_BUILD, st, b->t0);
  qv__finish_call(b->call, &b->md, 0, resp, st, err.msg);
  qv__long_work_end(b->s);
  free(b);
  return NULL;
}

void qv__rt_start_build(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                        grpc_byte_buffer *payload) {
  qv__router *r = s->router;
  qv_error err = {0};
  const double t0 = qv_monotonic_s();
  Quiver__V1__BuildIndexRequest *q = (Quiver__V1__BuildIndexRequest *)qv__decode(
      payload, &quiver__v1__build_index_request__descriptor, &err);
  qv_status st = q ? QV_OK : QV_EINVAL;
  qv__fcoll c;
  qv_build_opts bo;
  if (st == QV_OK)
    st = find(r, q->collection, &c, &err);
  if (st == QV_OK)
    st = qv__build_opts_from(s, &bo, q->recall_floor, q->target_recall, q->eval_queries, q->eval_k,
                             &err);
  char key[128];
  if (st == QV_OK) {
    /* The generation goes up in the record; the replicas see it at their next reading. */
    snprintf(key, sizeof key, QV__FLEET_COLLECTIONS "%s", c.name);
    char *val = NULL;
    size_t len = 0;
    st = qv_etcd_get(r->etcd, key, &val, &len, NULL, &err);
    if (st == QV_OK)
      st = qv__fcoll_parse(val, len, &c, &err);
    free(val);
  }
  char *json = NULL;
  if (st == QV_OK) {
    c.build_gen++;
    c.build_floor = q->recall_floor;
    c.build_target = q->target_recall;
    c.build_eval_queries = q->eval_queries;
    c.build_eval_k = q->eval_k;
    json = qv__fcoll_json(&c);
    st = json ? qv_etcd_put(r->etcd, key, json, strlen(json), 0, NULL, &err)
              : qv_error_set(&err, QV_ENOMEM, "out of memory");
    free(json);
  }
  if (q)
    protobuf_c_message_free_unpacked(&q->base, NULL);
  rt_build *b = st == QV_OK ? calloc(1, sizeof *b) : NULL;
  if (st == QV_OK && b == NULL)
    st = qv_error_set(&err, QV_ENOMEM, "out of memory");
  if (st == QV_OK)
    st = qv__long_work_begin(s, "build", &err);
  if (st != QV_OK) {
    free(b);
    qv__log_failure("BuildIndex", NULL, st, err.msg);
    qv__metrics_call_end(M_BUILD, st, t0);
    qv__finish_call(call, md, 0, NULL, st, err.msg);
    return;
  }
  b->s = s;
  b->call = call;
  b->md = *md;
  snprintf(b->name, sizeof b->name, "%s", c.name);
  b->uid = c.uid;
  b->gen = c.build_gen;
  b->t0 = t0;
  QV_LOG_I("BuildIndex collection=%s build=%llu asked of every replica (fleet)", c.name,
           (unsigned long long)c.build_gen);
  if (!qv__spawn_detached(rt_build_main, b)) {
    qv__long_work_end(s);
    qv__finish_call(call, &b->md, 0, NULL, QV_ENOMEM, "cannot start the build's thread");
    free(b);
  }
}

void qv__rt_start_import(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                         grpc_byte_buffer *unused) {
  (void)unused;
  const char *msg = "ImportIndex through a router is not supported yet: build with BuildIndex "
                    "(every replica builds from its own store), or import into each shard "
                    "server's NAME.shardK directly";
  qv__log_failure("ImportIndex", NULL, QV_EUNSUPPORTED, msg);
  qv__metrics_call_end(M_IMPORT, QV_EUNSUPPORTED, qv_monotonic_s());
  (void)s;
  qv__finish_call(call, md, 0, NULL, QV_EUNSUPPORTED, msg);
}
