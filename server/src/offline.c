/* Offline calls: the request handling of quiverd without gRPC (fuzz targets, tests). */
#include <grpc/byte_buffer.h>
#include <stdlib.h>
#include <string.h>

#include "quiver/fsutil.h"
#include "server_internal.h"

/* ---- offline calls ---------------------------------------------------------------------- */

qv__server *qv__server_offline_new(qv__config *cfg, qv__registry *reg) {
  qv__server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->cfg = cfg;
  s->reg = reg;
  pthread_mutex_init(&s->build_mu, NULL);
  pthread_cond_init(&s->build_cv, NULL);
  if (qv_device_parse(cfg->device, &s->default_device, NULL) != QV_OK)
    s->default_device = QV_DEVICE_AUTO;
  return s;
}

void qv__server_offline_free(qv__server *s) {
  if (s == NULL)
    return;
  pthread_mutex_destroy(&s->build_mu);
  pthread_cond_destroy(&s->build_cv);
  free(s);
}

/* The answer's bytes (malloc'd; NULL with length 0 when there is none). */
static void offline_answer(grpc_byte_buffer *bb, ProtobufCBinaryData *out) {
  out->data = NULL;
  out->len = 0;
  if (bb == NULL)
    return;
  grpc_slice sl;
  if (qv__wire_slice(bb, &sl)) {
    if ((out->data = malloc(GRPC_SLICE_LENGTH(sl) + 1)) != NULL) {
      memcpy(out->data, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
      out->len = GRPC_SLICE_LENGTH(sl);
    }
    grpc_slice_unref(sl);
  }
  grpc_byte_buffer_destroy(bb);
}

static qv_status offline_upsert(qv__server *s, const ProtobufCBinaryData *msgs, size_t n,
                                grpc_byte_buffer **resp, qv_error *err) {
  qv__entry *e = NULL;
  uint64_t upserted = 0;
  qv_status st = QV_OK;
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    ProtobufCMessage *m =
        qv__decode_bytes(&quiver__v1__upsert_request__descriptor, msgs[i].data, msgs[i].len, err);
    st = m ? qv__upsert_chunk(s, &e, &upserted, (Quiver__V1__UpsertRequest *)m, err) : QV_EINVAL;
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  if (st == QV_OK)
    st = qv__upsert_done(s, e, upserted, resp, err);
  else if (e != NULL && upserted > 0)
    qv__entry_mark_dirty(e);
  if (e)
    qv__registry_put(s->reg, e);
  return st;
}

static qv_status offline_import(qv__server *s, const ProtobufCBinaryData *msgs, size_t n,
                                grpc_byte_buffer **resp, qv_error *err) {
  import_call *u = calloc(1, sizeof *u);
  if (u == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  u->s = s;
  u->st.t0 = qv_monotonic_s();
  qv_status st = QV_OK;
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    ProtobufCMessage *m = qv__decode_bytes(&quiver__v1__import_index_request__descriptor,
                                           msgs[i].data, msgs[i].len, err);
    st = m ? qv__import_message(u, (Quiver__V1__ImportIndexRequest *)m, err) : QV_EINVAL;
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  if (st == QV_OK && !u->have_header)
    st =
        qv_error_set(err, QV_EINVAL, "empty import stream: the first message names the collection");
  if (st == QV_OK)
    st = qv__import_apply(u, resp, err);
  qv_stage_free(u->stage);
  free(u);
  return st;
}

static qv_status offline_build(qv__server *s, const ProtobufCBinaryData *msg,
                               grpc_byte_buffer **resp, qv_error *err) {
  ProtobufCMessage *m =
      qv__decode_bytes(&quiver__v1__build_index_request__descriptor, msg->data, msg->len, err);
  if (m == NULL)
    return QV_EINVAL;
  qv__entry *e = NULL;
  qv_build_opts bo;
  int claimed = 0;
  const double t0 = qv_monotonic_s();
  qv_status st = qv__build_prepare(s, (Quiver__V1__BuildIndexRequest *)m, &e, &bo, &claimed, err);
  protobuf_c_message_free_unpacked(m, NULL);
  qv_build_report rep;
  memset(&rep, 0, sizeof rep);
  if (st == QV_OK) {
    st = qv__build_run(s, e, &bo, NULL, NULL, &rep, err);
  } else if (claimed) {
    qv__entry_end_build(e);
  }
  if (st == QV_OK) {
    Quiver__V1__BuildIndexProgress p = QUIVER__V1__BUILD_INDEX_PROGRESS__INIT;
    Quiver__V1__CollectionInfo info;
    char spec[INFO_BUF];
    qv__build_final(e, &rep, t0, &p, &info, spec);
    *resp = qv__wire_pack(&p.base);
  }
  if (e)
    qv__registry_put(s->reg, e);
  return st;
}

qv_status qv__server_call_offline(qv__server *s, int mi, const ProtobufCBinaryData *msgs,
                                  size_t nmsgs, ProtobufCBinaryData *resp, qv_error *err) {
  resp->data = NULL;
  resp->len = 0;
  if (mi < 0 || mi >= NMETHODS)
    return qv_error_set(err, QV_EUNSUPPORTED, "unknown method %d", mi);
  const method *m = &qv__method_table[mi];
  if (m->kind != K_CLIENT_STREAM && nmsgs != 1)
    return qv_error_set(err, QV_EINVAL, "%s takes one message, not %zu", m->path, nmsgs);
  grpc_byte_buffer *bb = NULL;
  qv_status st;
  if (mi == M_UPSERT) {
    st = offline_upsert(s, msgs, nmsgs, &bb, err);
  } else if (mi == M_IMPORT) {
    st = offline_import(s, msgs, nmsgs, &bb, err);
  } else if (mi == M_BUILD) {
    st = offline_build(s, &msgs[0], &bb, err);
  } else if (mi == M_HEALTH_WATCH) { /* the stream's first message */
    ProtobufCMessage *req = qv__decode_bytes(m->req_desc, msgs[0].data, msgs[0].len, err);
    st = req ? qv__health_watch_first(s, req, &bb, err) : QV_EINVAL;
    if (req)
      protobuf_c_message_free_unpacked(req, NULL);
  } else {
    ProtobufCMessage *req = qv__decode_bytes(m->req_desc, msgs[0].data, msgs[0].len, err);
    st = req ? m->fn(s, req, NULL, &bb, err) : QV_EINVAL;
    if (req)
      protobuf_c_message_free_unpacked(req, NULL);
  }
  if (st != QV_OK && bb != NULL) {
    grpc_byte_buffer_destroy(bb);
    bb = NULL;
  }
  offline_answer(bb, resp);
  return st;
}
