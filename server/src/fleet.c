/* The fleet's records and names: see fleet.h. */
#include "fleet.h"

#include "quiver/shard.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *qv__rep_state_name(qv__rep_state s) {
  switch (s) {
  case QV__REP_IN_SYNC:
    return "in-sync";
  case QV__REP_CATCHING_UP:
    return "catching-up";
  default:
    return "loading";
  }
}

static qv__rep_state rep_state_parse(const char *s) {
  if (s && strcmp(s, "in-sync") == 0)
    return QV__REP_IN_SYNC;
  if (s && strcmp(s, "catching-up") == 0)
    return QV__REP_CATCHING_UP;
  return QV__REP_LOADING;
}

/* JSON has no 64-bit integers everyone reads alike: uids travel as hex strings. */
static void uid_hex(uint64_t uid, char out[17]) {
  snprintf(out, 17, "%016" PRIx64, uid);
}

static char *dump(json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return s;
}

static json_t *with(json_t *o, const char *key, json_t *v) {
  if (o != NULL)
    json_object_set_new(o, key, v);
  else
    json_decref(v);
  return o;
}

/* The schema as [{"name": N, "type": "int64"}, ...]. */
static json_t *attrs_json(const qv__fcoll *c) {
  json_t *a = json_array();
  for (size_t i = 0; a != NULL && i < c->n_attrs; i++) {
    const char *type = qv_attr_type_name(c->attrs[i].type);
    if (json_array_append_new(
            a, json_pack("{s:s, s:s}", "name", c->attrs[i].name, "type", type ? type : "?")) != 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

static qv_status attrs_parse(json_t *a, qv__fcoll *c, qv_error *err) {
  if (a == NULL)
    return QV_OK; /* a record of before attributes: none */
  if (!json_is_array(a) || json_array_size(a) > QV_MAX_ATTRS)
    return qv_error_set(err, QV_EINTERNAL, "a collection record in etcd has malformed attrs");
  for (size_t i = 0; i < json_array_size(a); i++) {
    const char *name = NULL, *type = NULL;
    if (json_unpack(json_array_get(a, i), "{s:s, s:s}", "name", &name, "type", &type) != 0 ||
        strlen(name) >= QV_MAX_ATTR_NAME ||
        qv_attr_type_parse(type, &c->attrs[i].type, NULL) != QV_OK)
      return qv_error_set(err, QV_EINTERNAL,
                          "a collection record in etcd has a malformed attribute (attrs[%zu])", i);
    snprintf(c->attrs[i].name, sizeof c->attrs[i].name, "%s", name);
  }
  c->n_attrs = json_array_size(a);
  return qv_attr_schema_check(c->n_attrs, c->attrs, err) == QV_OK
             ? QV_OK
             : qv_error_prefix(err, QV_EINTERNAL, "a collection record in etcd");
}

char *qv__fcoll_json(const qv__fcoll *c) {
  char uid[17];
  uid_hex(c->uid, uid);
  json_t *o = with(
      json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:b, s:{s:I, s:f, "
                "s:f, s:I, "
                "s:I}}",
                "name", c->name, "uid", uid, "shards", (json_int_t)c->shards, "replicas",
                (json_int_t)c->replicas, "stream_replicas", (json_int_t)c->stream_replicas, "dim",
                (json_int_t)c->dim, "nprobe", (json_int_t)c->default_nprobe, "n_features",
                (json_int_t)c->n_features, "metric", (json_int_t)c->metric, "device",
                (json_int_t)c->device, "spec", c->spec, "train_sample", (json_int_t)c->train_sample,
                "deferred_deletes", c->deferred_deletes, "build", "gen", (json_int_t)c->build_gen,
                "floor", c->build_floor, "target", c->build_target, "eval_queries",
                (json_int_t)c->build_eval_queries, "eval_k", (json_int_t)c->build_eval_k),
      "data_version", json_integer((json_int_t)(c->version ? c->version : 1)));
  if (c->n_attrs > 0) { /* absent without attributes: the records of before read as they did */
    json_t *a = attrs_json(c);
    if (a == NULL) {
      json_decref(o);
      return NULL;
    }
    o = with(o, "attrs", a);
  }
  return dump(o);
}

static json_t *load(const char *json, size_t len, const char *what, qv_error *err) {
  json_error_t je;
  json_t *o = json_loadb(json, len, 0, &je);
  if (o == NULL || !json_is_object(o)) {
    json_decref(o);
    qv_error_set(err, QV_EINTERNAL, "%s in etcd is not a JSON object: %.120s", what, je.text);
    return NULL;
  }
  return o;
}

qv_status qv__fcoll_parse(const char *json, size_t len, qv__fcoll *c, qv_error *err) {
  memset(c, 0, sizeof *c);
  json_t *o = load(json, len, "a collection record", err);
  if (o == NULL)
    return QV_EINTERNAL;
  const char *name = NULL, *uid = NULL, *spec = NULL;
  json_int_t shards = 0, replicas = 0, srep = 1, dim = 0, nprobe = 0, nf = 0, metric = 0,
             device = 0, ts = 0, gen = 0, eq = 0, ek = 0;
  int deferred = 0;
  double floor = 0, target = 0;
  json_error_t je;
  int rc = json_unpack_ex(
      o, &je, 0,
      "{s:s, s:s, s:I, s:I, s?I, s:I, s?I, s?I, s:I, s?I, s:s, s?I, s?b, s?{s?I, s?F, s?F, s?I, "
      "s?I}}",
      "name", &name, "uid", &uid, "shards", &shards, "replicas", &replicas, "stream_replicas",
      &srep, "dim", &dim, "nprobe", &nprobe, "n_features", &nf, "metric", &metric, "device",
      &device, "spec", &spec, "train_sample", &ts, "deferred_deletes", &deferred, "build", "gen",
      &gen, "floor", &floor, "target", &target, "eval_queries", &eq, "eval_k", &ek);
  qv_status st = QV_OK;
  if (rc != 0 || strlen(name) > QV__FLEET_NAME_MAX || shards < 1 || shards > QV__FLEET_MAX_SHARDS ||
      replicas < 1 || replicas > QV__FLEET_MAX_REPLICAS || dim < 1) {
    st = qv_error_set(err, QV_EINTERNAL, "a collection record in etcd is malformed: %.120s",
                      rc != 0 ? je.text : "a value out of range");
  } else {
    snprintf(c->name, sizeof c->name, "%s", name);
    c->uid = strtoull(uid, NULL, 16);
    c->shards = (uint32_t)shards;
    c->replicas = (uint32_t)replicas;
    c->stream_replicas = (uint32_t)srep;
    c->dim = (uint32_t)dim;
    c->default_nprobe = (uint32_t)nprobe;
    c->n_features = (uint32_t)nf;
    c->metric = (int)metric;
    c->device = (int)device;
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    c->train_sample = (uint64_t)ts;
    c->deferred_deletes = deferred;
    c->build_gen = (uint64_t)gen;
    c->build_floor = floor;
    c->build_target = target;
    c->build_eval_queries = (uint32_t)eq;
    c->build_eval_k = (uint32_t)ek;
    json_t *dv = json_object_get(o, "data_version");
    c->version =
        json_is_integer(dv) && json_integer_value(dv) > 0 ? (uint64_t)json_integer_value(dv) : 1;
    st = attrs_parse(json_object_get(o, "attrs"), c, err);
  }
  json_decref(o);
  return st;
}

char *qv__frep_json(const qv__frep *r) {
  char uid[17];
  uid_hex(r->uid, uid);
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "uid", uid, "state",
                        qv__rep_state_name(r->state), "applied", (json_int_t)r->applied, "log",
                        (json_int_t)r->log_seq, "count", (json_int_t)r->count, "version",
                        (json_int_t)r->index_version, "built", (json_int_t)r->built_gen, "addr",
                        r->addr, "build_error", r->build_error);
  o = with(o, "data_version", json_integer((json_int_t)r->version));
  if (r->beside_version != 0)
    o = with(o, "beside",
             json_pack("{s:I, s:s, s:b, s:f}", "version", (json_int_t)r->beside_version, "kind",
                       r->beside_kind == 1 ? "staged" : "previous", "ready", r->beside_ready,
                       "recall", r->beside_recall));
  return dump(o);
}

qv_status qv__frep_parse(const char *json, size_t len, qv__frep *r, qv_error *err) {
  memset(r, 0, sizeof *r);
  json_t *o = load(json, len, "a replica report", err);
  if (o == NULL)
    return QV_EINTERNAL;
  const char *uid = NULL, *state = NULL, *addr = NULL, *berr = "";
  json_int_t applied = 0, log = 0, count = 0, version = 0, built = 0;
  json_error_t je;
  int rc =
      json_unpack_ex(o, &je, 0, "{s:s, s:s, s:I, s?I, s?I, s?I, s?I, s:s, s?s}", "uid", &uid,
                     "state", &state, "applied", &applied, "log", &log, "count", &count, "version",
                     &version, "built", &built, "addr", &addr, "build_error", &berr);
  qv_status st = QV_OK;
  if (rc != 0) {
    st = qv_error_set(err, QV_EINTERNAL, "a replica report in etcd is malformed: %.120s", je.text);
  } else {
    r->uid = strtoull(uid, NULL, 16);
    r->state = rep_state_parse(state);
    r->applied = (uint64_t)applied;
    r->log_seq = (uint64_t)log;
    r->count = (uint64_t)count;
    r->index_version = (uint64_t)version;
    r->built_gen = (uint64_t)built;
    snprintf(r->addr, sizeof r->addr, "%s", addr);
    snprintf(r->build_error, sizeof r->build_error, "%s", berr);
  }
  if (st == QV_OK) {
    json_t *dv = json_object_get(o, "data_version");
    r->version = json_is_integer(dv) ? (uint64_t)json_integer_value(dv) : 1;
    json_t *b = json_object_get(o, "beside");
    json_int_t bv = 0;
    const char *kind = "";
    int ready = 0;
    double recall = -1;
    if (json_is_object(b) &&
        json_unpack(b, "{s:I, s:s, s?b, s?F}", "version", &bv, "kind", &kind, "ready", &ready,
                    "recall", &recall) == 0 &&
        bv > 0) {
      r->beside_version = (uint64_t)bv;
      r->beside_kind = strcmp(kind, "staged") == 0 ? 1 : 2;
      r->beside_ready = ready;
      r->beside_recall = recall;
    }
  }
  json_decref(o);
  return st;
}

uint32_t qv__fleet_shard_of(int64_t id, uint32_t shards) {
  return qv_shard_of(id, shards);
}

void qv__fleet_local_name(const char *name, uint32_t shard, char *out, size_t cap) {
  snprintf(out, cap, "%s.shard%u", name, shard);
}

void qv__fleet_stream_name(uint64_t uid, uint32_t shard, char *out, size_t cap) {
  snprintf(out, cap, "qv-%016" PRIx64 "-%u", uid, shard);
}

qv_status qv__cluster_parse(const char *cluster, char *etcd, size_t etcd_cap, char *nats,
                            size_t nats_cap, qv_error *err) {
  etcd[0] = '\0';
  nats[0] = '\0';
  char *copy = strdup(cluster ? cluster : "");
  if (copy == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  enum { NONE, ETCD, NATS } key = NONE;
  size_t used[2] = {0, 0};
  qv_status st = QV_OK;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && st == QV_OK;
       tok = strtok_r(NULL, ",", &save)) {
    if (strncmp(tok, "etcd=", 5) == 0) {
      key = ETCD;
      tok += 5;
    } else if (strncmp(tok, "nats=", 5) == 0) {
      key = NATS;
      tok += 5;
    } else if (key == NONE) {
      st = qv_error_set(err, QV_EINVAL,
                        "--cluster '%.200s': give etcd=HOST:PORT[,HOST:PORT...][,nats=...]",
                        cluster);
      break;
    }
    if (tok[0] == '\0')
      continue;
    char *buf = key == ETCD ? etcd : nats;
    const size_t cap = key == ETCD ? etcd_cap : nats_cap;
    size_t *u = &used[key == ETCD ? 0 : 1];
    int n = snprintf(buf + *u, cap - *u, "%s%s", *u ? "," : "", tok);
    if (n < 0 || (size_t)n >= cap - *u)
      st = qv_error_set(err, QV_EINVAL, "--cluster: the %s list is too long",
                        key == ETCD ? "etcd" : "nats");
    else
      *u += (size_t)n;
  }
  free(copy);
  if (st == QV_OK && used[0] == 0)
    st = qv_error_set(err, QV_EINVAL, "--cluster '%.200s' names no etcd endpoint (etcd=HOST:PORT)",
                      cluster);
  return st;
}

const char *qv__ro_state_name(int s) {
  static const char *const names[] = {"staging", "flipped", "done", "aborted", "rolled-back"};
  return s >= 0 && s <= QV__RO_ROLLED_BACK ? names[s] : "unknown";
}

char *qv__froll_json(const qv__froll *r) {
  char uid[17];
  uid_hex(r->uid, uid);
  json_t *seq = json_array();
  for (uint32_t k = 0; seq != NULL && k < r->shards; k++)
    json_array_append_new(seq, json_integer((json_int_t)(r->stage_seq[k] & INT64_MAX)));
  return dump(json_pack("{s:s, s:I, s:I, s:s, s:o, s:I, s:f, s:f, s:f, s:f, s:s}", "uid", uid,
                        "version", (json_int_t)r->version, "previous", (json_int_t)r->previous,
                        "state", qv__ro_state_name(r->state), "stage_seq", seq, "min_ready",
                        (json_int_t)r->min_ready, "recall_floor", r->recall_floor, "hold_s",
                        r->hold_s, "flipped_at", r->flipped_at, "begun_at", r->begun_at, "message",
                        r->message));
}

qv_status qv__froll_parse(const char *json, size_t len, qv__froll *r, qv_error *err) {
  memset(r, 0, sizeof *r);
  json_t *o = load(json, len, "a rollout record", err);
  if (o == NULL)
    return QV_EINTERNAL;
  const char *uid = NULL, *state = NULL, *msg = "";
  json_int_t version = 0, previous = 0, min_ready = 0;
  json_t *seq = NULL;
  json_error_t je;
  int rc = json_unpack_ex(o, &je, 0, "{s:s, s:I, s:I, s:s, s:o, s?I, s?F, s?F, s?F, s?F, s?s}",
                          "uid", &uid, "version", &version, "previous", &previous, "state", &state,
                          "stage_seq", &seq, "min_ready", &min_ready, "recall_floor",
                          &r->recall_floor, "hold_s", &r->hold_s, "flipped_at", &r->flipped_at,
                          "begun_at", &r->begun_at, "message", &msg);
  qv_status st = QV_OK;
  if (rc != 0 || !json_is_array(seq) || json_array_size(seq) < 1 ||
      json_array_size(seq) > QV__FLEET_MAX_SHARDS || version < 1) {
    st = qv_error_set(err, QV_EINTERNAL, "a rollout record in etcd is malformed: %.120s",
                      rc != 0 ? je.text : "stage_seq or version out of range");
  } else {
    r->uid = strtoull(uid, NULL, 16);
    r->version = (uint64_t)version;
    r->previous = (uint64_t)previous;
    r->state = -1;
    for (int s = 0; s <= QV__RO_ROLLED_BACK; s++)
      if (strcmp(state, qv__ro_state_name(s)) == 0)
        r->state = s;
    r->shards = (uint32_t)json_array_size(seq);
    for (uint32_t k = 0; k < r->shards; k++)
      r->stage_seq[k] = (uint64_t)json_integer_value(json_array_get(seq, k));
    r->min_ready = (uint32_t)min_ready;
    snprintf(r->message, sizeof r->message, "%s", msg);
    if (r->state < 0)
      st = qv_error_set(err, QV_EINTERNAL, "a rollout record in etcd has an unknown state '%.40s'",
                        state);
  }
  json_decref(o);
  return st;
}
