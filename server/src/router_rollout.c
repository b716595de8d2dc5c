/* A fleet rollout (docs/rollout.md): the Rollout call at a router, the controller's part (ready
 * replicas, the recall floor, the flip in one etcd transaction, the hold and the release) and the
 * versions this router's queries are pinned to.
 *
 * The rollout record (/quiver/rollouts/NAME, fleet.h) is the state; every change of it is a
 * compare-and-swap on its revision (and the collection record's, when the pointer moves), so two
 * routers (an admin call and the controller) never both win. The replicas act on what they read
 * (replica.c: feed, warm, flip, roll back, drop, release). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "quiver/clock.h"
#include "router_internal.h"

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- pins -------------------------------------------------------------------------------- */

void qv__router_pin(qv__router *r, const char *name, uint64_t version, int delta) {
  pthread_mutex_lock(&r->pin_mu);
  size_t i = 0;
  while (i < r->ninflight &&
         (r->inflight[i].version != version || strcmp(r->inflight[i].name, name) != 0))
    i++;
  if (i == r->ninflight && delta > 0) {
    if (r->ninflight == r->icap) {
      size_t cap = r->icap ? 2 * r->icap : 8;
      void *n = realloc(r->inflight, cap * sizeof *r->inflight);
      if (n == NULL) {
        pthread_mutex_unlock(&r->pin_mu);
        return; /* unseen by the report: the controller then waits on the hold alone */
      }
      r->inflight = n;
      r->icap = cap;
    }
    snprintf(r->inflight[i].name, sizeof r->inflight[i].name, "%s", name);
    r->inflight[i].version = version;
    r->inflight[i].n = 0;
    r->ninflight++;
  }
  if (i < r->ninflight) {
    r->inflight[i].n += delta;
    if (r->inflight[i].n <= 0) /* none left: forget it */
      r->inflight[i] = r->inflight[--r->ninflight];
  }
  pthread_mutex_unlock(&r->pin_mu);
}

void qv__pins_report(qv__router *r, const qv__rmap *m) {
  json_t *o = json_object();
  if (o == NULL)
    return;
  pthread_mutex_lock(&r->pin_mu);
  for (size_t i = 0; i < m->ncolls; i++) {
    const qv__rcoll *c = &m->colls[i];
    uint64_t oldest = c->c.version;
    for (size_t j = 0; j < r->ninflight; j++)
      if (strcmp(r->inflight[j].name, c->c.name) == 0 && r->inflight[j].version < oldest)
        oldest = r->inflight[j].version;
    json_object_set_new(
        o, c->c.name,
        json_pack("{s:I, s:I}", "seen", (json_int_t)c->c.version, "oldest", (json_int_t)oldest));
  }
  char *json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
  const int64_t lease = qv__member_lease(r->member);
  const int same = json != NULL && r->pins_report != NULL && lease == r->pins_lease &&
                   strcmp(json, r->pins_report) == 0;
  if (json == NULL || same) {
    pthread_mutex_unlock(&r->pin_mu);
    free(json);
    return;
  }
  char key[128];
  snprintf(key, sizeof key, QV__FLEET_PINS "%s", r->id);
  qv_error err = {0};
  if (qv_etcd_put(r->etcd, key, json, strlen(json), lease, NULL, &err) == QV_OK) {
    free(r->pins_report);
    r->pins_report = json;
    r->pins_lease = lease;
  } else {
    free(json);
  }
  pthread_mutex_unlock(&r->pin_mu);
}

/* ---- changing the record ------------------------------------------------------------------ */

static void ro_key(char *out, size_t cap, const char *name) {
  snprintf(out, cap, QV__FLEET_ROLLOUTS "%s", name);
}

/* The rollout record and the collection record as etcd has them now, with their revisions. */
static qv_status read_both(qv__router *r, const char *name, qv__froll *ro, int64_t *ro_rev,
                           qv__fcoll *c, int64_t *c_rev, qv_error *err) {
  char key[128];
  char *v = NULL;
  size_t len = 0;
  snprintf(key, sizeof key, QV__FLEET_COLLECTIONS "%s", name);
  qv_status st = qv_etcd_get(r->etcd, key, &v, &len, c_rev, err);
  if (st == QV_OK)
    st = qv__fcoll_parse(v, len, c, err);
  free(v);
  v = NULL;
  if (st != QV_OK)
    return st == QV_ENOTFOUND
               ? qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", name)
               : st;
  ro_key(key, sizeof key, name);
  *ro_rev = 0;
  memset(ro, 0, sizeof *ro);
  st = qv_etcd_get(r->etcd, key, &v, &len, ro_rev, err);
  if (st == QV_OK) {
    st = qv__froll_parse(v, len, ro, err);
    if (st == QV_OK && ro->uid != c->uid) { /* a rollout of a dropped namesake */
      memset(ro, 0, sizeof *ro);
      ro->state = -1;
    }
  } else if (st == QV_ENOTFOUND) {
    ro->state = -1;
    st = QV_OK;
  }
  free(v);
  return st;
}

/* Puts ro (and c when c != NULL) if neither changed since read_both. *won: it did. */
static qv_status write_both(qv__router *r, const char *name, const qv__froll *ro, int64_t ro_rev,
                            const qv__fcoll *c, int64_t c_rev, int *won, qv_error *err) {
  char rkey[128], ckey[128];
  ro_key(rkey, sizeof rkey, name);
  snprintf(ckey, sizeof ckey, QV__FLEET_COLLECTIONS "%s", name);
  char *rj = qv__froll_json(ro), *cj = c ? qv__fcoll_json(c) : NULL;
  qv_status st = QV_OK;
  if (rj == NULL || (c != NULL && cj == NULL)) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory");
  } else {
    const qv_etcd_cmp cmps[2] = {{rkey, ro_rev}, {ckey, c_rev}};
    const qv_etcd_kv puts[2] = {{rkey, rj, strlen(rj)}, {ckey, cj, cj ? strlen(cj) : 0}};
    st = qv_etcd_put_if(r->etcd, cmps, 2, puts, c ? 2 : 1, won, err);
  }
  free(rj);
  free(cj);
  return st;
}

/* ---- the controller ----------------------------------------------------------------------- */

/* 1 when replica x can answer version v now. */
static int holds(const qv__frep *x, uint64_t v) {
  return x->version == v || (x->beside_version == v && x->beside_ready);
}

void qv__rollout_turn(qv__router *r, const qv__rmap *m) {
  for (size_t ci = 0; ci < m->ncolls; ci++) {
    const qv__rcoll *c = &m->colls[ci];
    if (!c->have_ro || (c->ro.state != QV__RO_STAGING && c->ro.state != QV__RO_FLIPPED))
      continue;
    const qv__froll *ro = &c->ro;
    const uint64_t V = ro->version;
    char why[256] = "";
    int all_ready = ro->shards == c->c.shards;
    if (ro->state == QV__RO_STAGING) {
      for (uint32_t k = 0; k < c->c.shards && why[0] == '\0'; k++) {
        const qv__rshard *sh = &c->shards[k];
        uint32_t insync = 0, ready = 0;
        for (size_t i = 0; i < sh->n; i++) {
          const qv__frep *x = &sh->reps[i].r;
          if (x->beside_version == V && x->beside_kind == 1 && ro->recall_floor > 0 &&
              x->beside_recall >= 0 && x->beside_recall < ro->recall_floor)
            snprintf(why, sizeof why,
                     "shard %u's replica on %s measured recall %.4f for version %llu, below the "
                     "floor %.4f: the rollout was aborted (no shard flipped)",
                     k, sh->reps[i].node, x->beside_recall, (unsigned long long)V,
                     ro->recall_floor);
          if (x->state != QV__REP_IN_SYNC)
            continue;
          insync++;
          ready += holds(x, V);
        }
        uint32_t need = ro->min_ready ? ro->min_ready : insync;
        if (need < 1)
          need = 1;
        if (ready < need)
          all_ready = 0;
      }
    } else {
      /* Flipped: released once the hold is over and every live router's queries are on the new
       * version (its map shows the pointer, and no query it has in flight holds an older one). */
      all_ready = unix_now() - ro->flipped_at >= ro->hold_s;
      for (size_t i = 0; all_ready && i < m->nrouters; i++) {
        int seen = 0;
        for (size_t p = 0; p < m->npins && !seen; p++)
          seen = strcmp(m->pins[p].router, m->routers[i]) == 0 &&
                 strcmp(m->pins[p].name, c->c.name) == 0 && m->pins[p].seen == c->c.version &&
                 m->pins[p].oldest >= c->c.version;
        all_ready = seen;
      }
    }
    if (why[0] == '\0' && !all_ready)
      continue;
    qv__froll now;
    qv__fcoll rec;
    int64_t ro_rev, c_rev;
    qv_error err = {0};
    if (read_both(r, c->c.name, &now, &ro_rev, &rec, &c_rev, &err) != QV_OK ||
        now.state != ro->state || now.version != V)
      continue; /* changed meanwhile: the next turn sees it */
    int won = 0;
    if (why[0] != '\0') {
      now.state = QV__RO_ABORTED;
      snprintf(now.message, sizeof now.message, "%s", why);
      if (write_both(r, c->c.name, &now, ro_rev, NULL, c_rev, &won, &err) == QV_OK && won)
        QV_LOG_W("fleet: controller: rollout of %s version %llu aborted: %s", c->c.name,
                 (unsigned long long)V, why);
    } else if (now.state == QV__RO_STAGING) {
      now.state = QV__RO_FLIPPED;
      now.previous = rec.version;
      now.flipped_at = unix_now();
      snprintf(now.message, sizeof now.message, "flipped from version %llu to %llu",
               (unsigned long long)rec.version, (unsigned long long)V);
      rec.version = V;
      if (write_both(r, c->c.name, &now, ro_rev, &rec, c_rev, &won, &err) == QV_OK && won)
        QV_LOG_I("fleet: controller: %s flipped to version %llu (%.2f s after the rollout began)",
                 c->c.name, (unsigned long long)V, now.flipped_at - now.begun_at);
    } else {
      now.state = QV__RO_DONE;
      snprintf(now.message, sizeof now.message, "version %llu serving; version %llu released",
               (unsigned long long)V, (unsigned long long)now.previous);
      if (write_both(r, c->c.name, &now, ro_rev, NULL, c_rev, &won, &err) == QV_OK && won)
        QV_LOG_I("fleet: controller: %s: version %llu released", c->c.name,
                 (unsigned long long)now.previous);
    }
  }
}

/* ---- the Rollout call ---------------------------------------------------------------------- */

static qv_status status_answer(qv__router *r, const char *name, const char *msg,
                               grpc_byte_buffer **resp, qv_error *err) {
  qv_status st = qv__router_refresh(r, err);
  if (st != QV_OK)
    return st;
  qv__rmap *map = qv__router_map(r);
  const qv__rcoll *c = qv__rmap_find(map, name);
  if (c == NULL) {
    qv__rmap_put(map);
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", name);
  }
  Quiver__V1__CollectionInfo info;
  info_buf b = {0};
  if ((st = qv__rt_fill_info(c, &info, &b, err)) == QV_OK) {
    Quiver__V1__RolloutStatus out = QUIVER__V1__ROLLOUT_STATUS__INIT;
    out.collection = (char *)c->c.name;
    out.version = c->c.version;
    out.shards = c->c.shards;
    out.n_replicas = info.n_replica_info;
    out.replicas = info.replica_info;
    char message[512];
    snprintf(message, sizeof message, "%s", msg ? msg : c->have_ro ? c->ro.message : "");
    out.routers = (uint32_t)map->nrouters;
    for (size_t i = 0; i < map->nrouters; i++)
      for (size_t p = 0; p < map->npins; p++)
        if (strcmp(map->pins[p].router, map->routers[i]) == 0 &&
            strcmp(map->pins[p].name, c->c.name) == 0 && map->pins[p].seen == c->c.version)
          out.routers_on_version++;
    out.message = message;
    out.state = c->have_ro ? (char *)qv__ro_state_name(c->ro.state) : (char *)"";
    out.rollout_version = c->have_ro ? c->ro.version : 0;
    out.previous_version = c->have_ro ? c->ro.previous : 0;
    out.n_stage_seq = c->have_ro ? c->ro.shards : 0;
    out.stage_seq = (uint64_t *)(c->have_ro ? c->ro.stage_seq : NULL);
    *resp = qv__wire_pack(&out.base);
  }
  qv__rt_info_free(&b);
  qv__rmap_put(map);
  return st;
}

qv_status qv__rt_rollout(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                         grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  qv__router *r = s->router;
  const Quiver__V1__RolloutRequest *q = (const Quiver__V1__RolloutRequest *)m;
  const char *name = q->collection ? q->collection : "";
  const int a = q->action;
  if (a < QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_STATUS ||
      a > QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_BEGIN)
    return qv_error_set(err, QV_EINVAL,
                        "rollout action %d is not one of STATUS, FLIP, ABORT, ROLLBACK, RELEASE, "
                        "BEGIN",
                        a);
  if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_STATUS)
    return status_answer(r, name, NULL, resp, err);
  if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_FLIP)
    return qv_error_set(err, QV_EINVAL,
                        "through a router the controller flips, once every shard has its ready "
                        "replicas: BEGIN a rollout, push each shard's directory, then poll "
                        "STATUS (quiver rollout NAME --index DIR does it all)");
  if (!(q->recall_floor >= 0 && q->recall_floor <= 1) || !(q->hold_s >= 0 && q->hold_s <= 86400))
    return qv_error_set(err, QV_EINVAL,
                        "recall_floor must be in [0, 1] and hold_s in [0, 86400] (got %g, %g)",
                        q->recall_floor, q->hold_s);
  qv__froll ro;
  qv__fcoll rec;
  int64_t ro_rev = 0, c_rev = 0;
  qv_status st = read_both(r, name, &ro, &ro_rev, &rec, &c_rev, err);
  if (st != QV_OK)
    return st;
  const int active = ro.state == QV__RO_STAGING || ro.state == QV__RO_FLIPPED;
  qv__fcoll *moved = NULL;
  char msg[256] = "";
  if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_BEGIN) {
    const uint64_t v =
        q->version ? q->version : (rec.version > ro.version ? rec.version : ro.version) + 1;
    if (v > INT64_MAX)
      return qv_error_set(err, QV_EINVAL, "version %llu is above 2^63-1", (unsigned long long)v);
    if (active)
      return qv_error_set(err, QV_EPRECONDITION,
                          "collection '%s' has a rollout of version %llu %s: abort it or release "
                          "its previous version first (quiver rollout %s --status)",
                          name, (unsigned long long)ro.version, qv__ro_state_name(ro.state), name);
    if (v <= rec.version || (ro.state >= 0 && v <= ro.version))
      return qv_error_set(
          err, QV_EINVAL,
          "version %llu is not above collection '%s''s version %llu or its last "
          "rollout's %llu: send version 0 for %llu",
          (unsigned long long)v, name, (unsigned long long)rec.version,
          (unsigned long long)(ro.state >= 0 ? ro.version : 0),
          (unsigned long long)((rec.version > ro.version ? rec.version : ro.version) + 1));
    if (q->min_ready > rec.replicas)
      return qv_error_set(err, QV_EINVAL, "min_ready %u is above the collection's %u replicas",
                          q->min_ready, rec.replicas);
    qv__froll n;
    memset(&n, 0, sizeof n);
    n.uid = rec.uid;
    n.version = v;
    n.state = QV__RO_STAGING;
    n.shards = rec.shards;
    n.min_ready = q->min_ready;
    n.recall_floor = q->recall_floor;
    n.hold_s = q->hold_s;
    n.begun_at = unix_now();
    /* Each shard's log position now: the version's snapshot stands for the writes up to it;
     * those after it reach the new version too. */
    for (uint32_t k = 0; k < rec.shards && st == QV_OK; k++) {
      qv__rlog *l;
      if ((st = qv__router_log(r, &rec, k, &l, err)) == QV_OK)
        st = qv_jslog_last_seq(l->log, &n.stage_seq[k], err);
    }
    snprintf(n.message, sizeof n.message, "staging version %llu", (unsigned long long)v);
    ro = n;
    snprintf(msg, sizeof msg, "rollout of version %llu begun", (unsigned long long)v);
  } else if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ABORT) {
    if (ro.state != QV__RO_STAGING)
      return qv_error_set(err, QV_EPRECONDITION,
                          "collection '%s' has no rollout staging (%s%s): nothing to abort", name,
                          ro.state >= 0 ? "its last one is " : "none was begun",
                          ro.state >= 0 ? qv__ro_state_name(ro.state) : "");
    ro.state = QV__RO_ABORTED;
    snprintf(ro.message, sizeof ro.message, "aborted by the caller before the flip");
    snprintf(msg, sizeof msg, "rollout of version %llu aborted", (unsigned long long)ro.version);
  } else if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ROLLBACK) {
    if (ro.state != QV__RO_FLIPPED)
      return qv_error_set(err, QV_EPRECONDITION,
                          "collection '%s' holds no previous version to roll back to (%s%s)", name,
                          ro.state >= 0 ? "its last rollout is " : "no rollout was begun",
                          ro.state >= 0 ? qv__ro_state_name(ro.state) : "");
    qv__rmap *map = qv__router_map(r);
    const qv__rcoll *c = qv__rmap_find(map, name);
    for (uint32_t k = 0; c != NULL && k < c->c.shards && st == QV_OK; k++) {
      int any = 0;
      for (size_t i = 0; i < c->shards[k].n && !any; i++)
        any = c->shards[k].reps[i].r.state == QV__REP_IN_SYNC &&
              holds(&c->shards[k].reps[i].r, ro.previous);
      if (!any)
        st = qv_error_set(err, QV_EPRECONDITION,
                          "shard %u of '%s' has no in-sync replica holding version %llu any more: "
                          "roll out that version again instead",
                          k, name, (unsigned long long)ro.previous);
    }
    qv__rmap_put(map);
    if (st != QV_OK)
      return st;
    ro.state = QV__RO_ROLLED_BACK;
    snprintf(ro.message, sizeof ro.message, "rolled back from version %llu to %llu",
             (unsigned long long)ro.version, (unsigned long long)ro.previous);
    rec.version = ro.previous;
    moved = &rec;
    snprintf(msg, sizeof msg, "rolled back to version %llu", (unsigned long long)ro.previous);
  } else { /* RELEASE */
    if (ro.state != QV__RO_FLIPPED)
      return qv_error_set(err, QV_EPRECONDITION,
                          "collection '%s' holds no previous version to release (%s%s)", name,
                          ro.state >= 0 ? "its last rollout is " : "no rollout was begun",
                          ro.state >= 0 ? qv__ro_state_name(ro.state) : "");
    ro.hold_s = 0; /* released by the controller as soon as no router has a query on it */
    snprintf(msg, sizeof msg, "version %llu released once no router has a query on it",
             (unsigned long long)ro.previous);
  }
  int won = 0;
  if (st == QV_OK)
    st = write_both(r, name, &ro, ro_rev, moved, c_rev, &won, err);
  if (st == QV_OK && !won)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "collection '%s' or its rollout changed while this call ran: look again "
                      "(quiver rollout %s --status)",
                      name, name);
  if (st != QV_OK)
    return st;
  QV_LOG_I("fleet: Rollout collection=%s: %s", name, msg);
  return status_answer(r, name, msg, resp, err);
}
