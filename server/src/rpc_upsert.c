/* Upsert (client streaming): one RECV_MESSAGE outstanding at a time, each chunk applied on a
 * writer thread. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server_internal.h"

/* ---- upsert stream ---------------------------------------------------------------------- */

typedef struct upsert_call {
  qv__stream st; /* first: its tag is the call's */
  qv__server *s;
  qv__entry *e;
  uint64_t upserted;
} upsert_call;

static void upsert_end(upsert_call *u, qv_status st, const char *msg, grpc_byte_buffer *resp) {
  if (st != QV_OK)
    qv__log_failure("Upsert", u->e ? qv__entry_name(u->e) : NULL, st, msg);
  qv__metrics_call_end(M_UPSERT, st, u->st.t0);
  qv__finish_call(u->st.call, &u->st.md, 0, resp, st, msg);
  if (u->e)
    qv__registry_put(u->s->reg, u->e);
  free(u);
}

static void upsert_post_recv(upsert_call *u) {
  if (!qv__stream_recv_next(&u->st))
    upsert_end(u, QV_EINTERNAL, "cannot read the next upsert message", NULL);
}

/* The end of an upsert stream: every chunk is in the write-ahead log already (synced per
 * --wal-sync); saves when the log asks for it, then the answer. */
qv_status qv__upsert_done(qv__server *s, qv__entry *e, uint64_t upserted, grpc_byte_buffer **resp,
                          qv_error *err) {
  if (e == NULL)
    return qv_error_set(err, QV_EINVAL,
                        "empty upsert stream: send at least one message naming the collection");
  qv_status st;
  if (upserted > 0 && (st = qv__entry_wrote(s->reg, e, err)) != QV_OK)
    return st;
  qv_collection_stats cs;
  qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
  Quiver__V1__UpsertResponse out = QUIVER__V1__UPSERT_RESPONSE__INIT;
  out.upserted = upserted;
  out.count = cs.count;
  QV_LOG_D("Upsert collection=%s upserted=%llu count=%llu", qv__entry_name(e),
           (unsigned long long)upserted, (unsigned long long)cs.count);
  *resp = qv__wire_pack(&out.base);
  return QV_OK;
}

/* Applies one upsert message; the first names the collection (*e gets a reference to it). */
qv_status qv__upsert_chunk(qv__server *s, qv__entry **e, uint64_t *upserted,
                           const Quiver__V1__UpsertRequest *r, qv_error *err) {
  const char *name = r->collection ? r->collection : "";
  qv_status st;
  if (*e == NULL) {
    if (name[0] == '\0')
      return qv_error_set(err, QV_EINVAL, "the first upsert message must name the collection");
    if ((st = qv__registry_get(s->reg, name, e, err)) != QV_OK)
      return st;
  } else if (name[0] != '\0' && strcmp(name, qv__entry_name((*e))) != 0) {
    return qv_error_set(err, QV_EINVAL,
                        "one upsert stream goes to one collection ('%s', not '%.80s')",
                        qv__entry_name((*e)), name);
  }
  qv_collection_stats cs;
  qv_collection_stats_get(qv__entry_col((*e)), &cs, NULL);
  if (r->n_vectors != r->n_ids * cs.dim)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu floats for %zu ids; collection '%s' needs %zu "
                        "(dimension %zu)",
                        r->n_vectors, r->n_ids, qv__entry_name((*e)), r->n_ids * cs.dim, cs.dim);
  if (r->n_features != 0 && r->n_features != r->n_ids * cs.n_features)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu features for %zu ids; items of collection '%s' "
                        "carry %zu each (send none for zeros)",
                        r->n_features, r->n_ids, qv__entry_name((*e)), cs.n_features);
  /* The attribute columns, checked against the schema, as a batch pointing into r. */
  qv__attrs_in attrs;
  if ((st = qv__attrs_from_pb(cs.n_attrs, cs.attrs, qv__entry_name(*e), r->n_ids, r->n_attributes,
                              r->attributes, &attrs, err)) != QV_OK)
    return st;
  const qv_attr_batch *ab = r->n_attributes ? &attrs.b : NULL;
  const float *feats = r->n_features ? r->features : NULL;
  qv__entry_write_begin(*e);
  st = qv_collection_upsert(qv__entry_col((*e)), r->n_ids, r->ids, r->vectors, feats, ab, err);
  if (st == QV_OK)
    qv__slot_write(*e, r->n_ids, r->ids, r->vectors, feats, ab, 1);
  qv__entry_write_end(*e);
  qv__attrs_in_free(&attrs);
  if (st != QV_OK)
    return st;
  *upserted += r->n_ids;
  if (r->n_ids > 0)
    qv__entry_mark_dirty((*e));
  return QV_OK;
}

static void on_upsert_recv(void *self, int ok) {
  upsert_call *u = self;
  qv_error err = {0};
  if (!ok) { /* the call is gone (cancelled, deadline) */
    if (u->e && u->upserted > 0)
      qv__entry_mark_dirty(u->e);
    upsert_end(u, QV_ECANCELLED, "upsert stream broken before its end", NULL);
    return;
  }
  if (u->st.recv == NULL) { /* end of stream: persist, then acknowledge */
    grpc_byte_buffer *resp = NULL;
    qv_status st = qv__upsert_done(u->s, u->e, u->upserted, &resp, &err);
    upsert_end(u, st, err.msg, resp);
    return;
  }
  Quiver__V1__UpsertRequest *r = (Quiver__V1__UpsertRequest *)qv__stream_take(
      &u->st, &quiver__v1__upsert_request__descriptor, &err);
  qv_status st = r ? qv__upsert_chunk(u->s, &u->e, &u->upserted, r, &err) : QV_EINVAL;
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  if (st != QV_OK)
    upsert_end(u, st, err.msg, NULL);
  else
    upsert_post_recv(u);
}

void qv__start_upsert(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                      grpc_byte_buffer *unused) {
  (void)unused;
  upsert_call *u = calloc(1, sizeof *u);
  if (u == NULL) {
    qv__finish_call(call, md, 0, NULL, QV_ENOMEM, "out of memory");
    return;
  }
  qv__stream_init(&u->st, call, md, on_upsert_recv, 1); /* chunks are applied on writers */
  u->s = s;
  upsert_post_recv(u);
}
