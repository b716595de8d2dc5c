/* etcd v3 over gRPC's C core: see quiver/etcd.h. */
#include "quiver/etcd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"
#include "quiver/clock.h"
#include "rpc_call.h"

struct qv_etcd {
  qv__rpc_peer peer;
};

/* "a:1,b:2" -> a gRPC target: one address as it is; several as gRPC's ipv4: list (numeric
 * addresses) so that the channel fails over between them. */
static char *make_target(const char *endpoints, qv_error *err) {
  size_t n = strlen(endpoints);
  if (n == 0 || endpoints[0] == ',' || endpoints[n - 1] == ',' || strstr(endpoints, ",,"))
    return qv_error_set(err, QV_EINVAL, "etcd endpoints '%.200s': give host:port[,host:port...]",
                        endpoints),
           NULL;
  for (const char *p = endpoints; *p; p++)
    if (*p == ' ' || *p == '/')
      return qv_error_set(err, QV_EINVAL,
                          "etcd endpoints '%.200s': host:port entries separated by commas, "
                          "no spaces or schemes",
                          endpoints),
             NULL;
  const int several = strchr(endpoints, ',') != NULL;
  char *t = malloc(n + 8);
  if (t == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory"), NULL;
  strcpy(t, several ? "ipv4:" : "");
  strcat(t, endpoints);
  return t;
}

qv_status qv_etcd_open(qv_etcd **out, const char *endpoints, int64_t timeout_ms, qv_error *err) {
  *out = NULL;
  char *target = make_target(endpoints ? endpoints : "", err);
  if (target == NULL)
    return err ? err->code : QV_EINVAL;
  qv_etcd *e = calloc(1, sizeof *e);
  if (e == NULL) {
    free(target);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  e->peer.ch = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  free(target);
  e->peer.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
  e->peer.wait_for_ready = 1; /* a member down or an election: wait for another, to the deadline */
  if (e->peer.ch == NULL) {
    free(e);
    grpc_shutdown();
    return qv_error_set(err, QV_EINVAL, "etcd endpoints '%.200s': gRPC refused the target",
                        endpoints);
  }
  *out = e;
  return QV_OK;
}

void qv_etcd_close(qv_etcd *e) {
  if (e == NULL)
    return;
  grpc_channel_destroy(e->peer.ch);
  free(e);
  grpc_shutdown();
}

static ProtobufCBinaryData bytes_of(const char *s) {
  return (ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)s};
}

/* The end of the key range holding every key that starts with prefix: prefix with its last byte
 * below 0xff incremented (and what follows dropped); "\0" (every key) when there is none. */
static char *prefix_end(const char *prefix, size_t *len) {
  size_t n = strlen(prefix);
  char *end = malloc(n + 1);
  if (end == NULL)
    return NULL;
  memcpy(end, prefix, n + 1);
  while (n > 0 && (unsigned char)end[n - 1] == 0xff)
    n--;
  if (n == 0) {
    end[0] = '\0';
    *len = 1;
    return end;
  }
  end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
  *len = n;
  return end;
}

static char *dup_bytes(const ProtobufCBinaryData *b) {
  char *s = malloc(b->len + 1);
  if (s != NULL) {
    if (b->len > 0)
      memcpy(s, b->data, b->len);
    s[b->len] = '\0';
  }
  return s;
}

/* One call, retried while it fails UNAVAILABLE and its deadline allows: a call in flight on the
 * connection to a member that died fails so (gRPC never resends a started call), and the next
 * attempt goes to a member that is up. Every call this file makes is safe to repeat (puts and
 * deletes of the same data, reads; a create checks what it finds, see qv_etcd_create). */
static qv_status call(qv_etcd *e, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp,
                      qv_error *err) {
  const double deadline = qv_monotonic_s() + (double)e->peer.timeout_ms / 1e3;
  double pause = 0.02;
  qv_status st;
  for (;;) {
    const int64_t left_ms = (int64_t)((deadline - qv_monotonic_s()) * 1e3);
    st = qv__rpc_unary(&e->peer, method, left_ms > 1 ? left_ms : 1, req, rd, resp, err);
    if (st != QV_EUNAVAILABLE || qv_monotonic_s() + pause >= deadline)
      break;
    nanosleep(&(struct timespec){.tv_nsec = (long)(pause * 1e9)}, NULL);
    pause = pause * 2 < 0.5 ? pause * 2 : 0.5;
  }
  if (st != QV_OK)
    qv_error_prefix(err, st, "etcd %s", strrchr(method, '/') + 1);
  return st;
}

qv_status qv_etcd_put(qv_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
                      int64_t *rev, qv_error *err) {
  Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
  r.key = bytes_of(key);
  r.value = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)val};
  r.lease = lease;
  ProtobufCMessage *m;
  qv_status st =
      call(e, "/etcdserverpb.KV/Put", &r.base, &etcdserverpb__put_response__descriptor, &m, err);
  if (st != QV_OK)
    return st;
  Etcdserverpb__PutResponse *p = (Etcdserverpb__PutResponse *)m;
  if (rev)
    *rev = p->header ? p->header->revision : 0;
  protobuf_c_message_free_unpacked(m, NULL);
  return QV_OK;
}

qv_status qv_etcd_create(qv_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
                         int *created, qv_error *err) {
  *created = 0;
  Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
  cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
  cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
  cmp.key = bytes_of(key);
  cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
  cmp.create_revision = 0;
  Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
  put.key = bytes_of(key);
  put.value = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)val};
  put.lease = lease;
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op.request_put = &put;
  Etcdserverpb__Compare *cmps[1] = {&cmp};
  Etcdserverpb__RequestOp *ops[1] = {&op};
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.n_compare = 1;
  t.compare = cmps;
  t.n_success = 1;
  t.success = ops;
  ProtobufCMessage *m;
  qv_status st =
      call(e, "/etcdserverpb.KV/Txn", &t.base, &etcdserverpb__txn_response__descriptor, &m, err);
  if (st != QV_OK)
    return st;
  *created = ((Etcdserverpb__TxnResponse *)m)->succeeded != 0;
  protobuf_c_message_free_unpacked(m, NULL);
  if (!*created) {
    /* A retried create whose first attempt went through (its answer lost with a member) finds
     * its own value: count that as created. Callers give values only they would write. */
    char *v = NULL;
    size_t vlen = 0;
    if (qv_etcd_get(e, key, &v, &vlen, NULL, NULL) == QV_OK && vlen == len &&
        (len == 0 || memcmp(v, val, len) == 0))
      *created = 1;
    free(v);
  }
  return QV_OK;
}

/* One Range call over [key, end) (end_len 0: the key alone). */
static qv_status range(qv_etcd *e, const char *key, const char *end, size_t end_len,
                       Etcdserverpb__RangeResponse **out, qv_error *err) {
  Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
  r.key = bytes_of(key);
  if (end_len > 0)
    r.range_end = (ProtobufCBinaryData){.len = end_len, .data = (uint8_t *)end};
  r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY;
  return call(e, "/etcdserverpb.KV/Range", &r.base, &etcdserverpb__range_response__descriptor,
              (ProtobufCMessage **)out, err);
}

qv_status qv_etcd_get(qv_etcd *e, const char *key, char **val, size_t *len, int64_t *mod_rev,
                      qv_error *err) {
  *val = NULL;
  Etcdserverpb__RangeResponse *r;
  qv_status st = range(e, key, NULL, 0, &r, err);
  if (st != QV_OK)
    return st;
  if (r->n_kvs == 0) {
    st = qv_error_set(err, QV_ENOTFOUND, "etcd: no key '%.200s'", key);
  } else if ((*val = dup_bytes(&r->kvs[0]->value)) == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory");
  } else {
    if (len)
      *len = r->kvs[0]->value.len;
    if (mod_rev)
      *mod_rev = r->kvs[0]->mod_revision;
  }
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return st;
}

qv_status qv_etcd_range_prefix(qv_etcd *e, const char *prefix, qv_etcd_kv_fn fn, void *user,
                               int64_t *rev, qv_error *err) {
  size_t end_len;
  char *end = prefix_end(prefix, &end_len);
  if (end == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  Etcdserverpb__RangeResponse *r;
  qv_status st = range(e, prefix, end, end_len, &r, err);
  free(end);
  if (st != QV_OK)
    return st;
  if (rev)
    *rev = r->header ? r->header->revision : 0;
  for (size_t i = 0; st == QV_OK && i < r->n_kvs; i++) {
    char *k = dup_bytes(&r->kvs[i]->key), *v = dup_bytes(&r->kvs[i]->value);
    if (k == NULL || v == NULL)
      st = qv_error_set(err, QV_ENOMEM, "out of memory");
    else if (fn(user, k, v, r->kvs[i]->value.len) != 0)
      i = r->n_kvs;
    free(k);
    free(v);
  }
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return st;
}

qv_status qv_etcd_delete(qv_etcd *e, const char *key, int prefix, int64_t *deleted, qv_error *err) {
  Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  r.key = bytes_of(key);
  size_t end_len = 0;
  char *end = prefix ? prefix_end(key, &end_len) : NULL;
  if (prefix && end == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  if (end)
    r.range_end = (ProtobufCBinaryData){.len = end_len, .data = (uint8_t *)end};
  ProtobufCMessage *m;
  qv_status st = call(e, "/etcdserverpb.KV/DeleteRange", &r.base,
                      &etcdserverpb__delete_range_response__descriptor, &m, err);
  free(end);
  if (st != QV_OK)
    return st;
  if (deleted)
    *deleted = ((Etcdserverpb__DeleteRangeResponse *)m)->deleted;
  protobuf_c_message_free_unpacked(m, NULL);
  return QV_OK;
}

qv_status qv_etcd_lease_grant(qv_etcd *e, int64_t ttl_s, int64_t *id, int64_t *ttl_granted,
                              qv_error *err) {
  *id = 0;
  if (ttl_s < 1)
    return qv_error_set(err, QV_EINVAL, "etcd lease: ttl %lld s, want >= 1", (long long)ttl_s);
  Etcdserverpb__LeaseGrantRequest r = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  r.ttl = ttl_s;
  ProtobufCMessage *m;
  qv_status st = call(e, "/etcdserverpb.Lease/LeaseGrant", &r.base,
                      &etcdserverpb__lease_grant_response__descriptor, &m, err);
  if (st != QV_OK)
    return st;
  Etcdserverpb__LeaseGrantResponse *g = (Etcdserverpb__LeaseGrantResponse *)m;
  if (g->error != NULL && g->error[0] != '\0') {
    st = qv_error_set(err, QV_EUNAVAILABLE, "etcd LeaseGrant: %.200s", g->error);
  } else {
    *id = g->id;
    if (ttl_granted)
      *ttl_granted = g->ttl;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return st;
}

qv_status qv_etcd_lease_keepalive(qv_etcd *e, int64_t id, int64_t *ttl_left, qv_error *err) {
  /* LeaseKeepAlive is a bidirectional stream; one refresh is one request and a half-close, in the
   * unary call's single batch: etcd answers it, reads the end of stream and ends the call. */
  Etcdserverpb__LeaseKeepAliveRequest r = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
  r.id = id;
  ProtobufCMessage *m;
  qv_status st = call(e, "/etcdserverpb.Lease/LeaseKeepAlive", &r.base,
                      &etcdserverpb__lease_keep_alive_response__descriptor, &m, err);
  if (st != QV_OK)
    return st;
  const int64_t ttl = ((Etcdserverpb__LeaseKeepAliveResponse *)m)->ttl;
  protobuf_c_message_free_unpacked(m, NULL);
  if (ttl <= 0)
    return qv_error_set(err, QV_ENOTFOUND, "etcd lease %llx has expired or was revoked",
                        (unsigned long long)id);
  if (ttl_left)
    *ttl_left = ttl;
  return QV_OK;
}

qv_status qv_etcd_lease_revoke(qv_etcd *e, int64_t id, qv_error *err) {
  Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  r.id = id;
  ProtobufCMessage *m;
  qv_status st = call(e, "/etcdserverpb.Lease/LeaseRevoke", &r.base,
                      &etcdserverpb__lease_revoke_response__descriptor, &m, err);
  if (st == QV_OK)
    protobuf_c_message_free_unpacked(m, NULL);
  return st;
}

qv_status qv_etcd_put_if(qv_etcd *e, const qv_etcd_cmp *cmps_in, size_t ncmp,
                         const qv_etcd_kv *puts, size_t n, int *done, qv_error *err) {
  *done = 0;
  if (n < 1 || n > 8 || ncmp < 1 || ncmp > 8)
    return qv_error_set(err, QV_EINVAL, "etcd put_if: 1 .. 8 compares and puts, not %zu, %zu", ncmp,
                        n);
  Etcdserverpb__Compare cmp[8], *cmps[8];
  for (size_t i = 0; i < ncmp; i++) {
    etcdserverpb__compare__init(&cmp[i]);
    cmp[i].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp[i].key = bytes_of(cmps_in[i].key);
    if (cmps_in[i].mod_rev == 0) {
      cmp[i].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
      cmp[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
      cmp[i].create_revision = 0;
    } else {
      cmp[i].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
      cmp[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
      cmp[i].mod_revision = cmps_in[i].mod_rev;
    }
    cmps[i] = &cmp[i];
  }
  Etcdserverpb__PutRequest put[8];
  Etcdserverpb__RequestOp op[8], *ops[8];
  for (size_t i = 0; i < n; i++) {
    etcdserverpb__put_request__init(&put[i]);
    put[i].key = bytes_of(puts[i].key);
    put[i].value = (ProtobufCBinaryData){.len = puts[i].len, .data = (uint8_t *)puts[i].val};
    etcdserverpb__request_op__init(&op[i]);
    op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op[i].request_put = &put[i];
    ops[i] = &op[i];
  }
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.n_compare = ncmp;
  t.compare = cmps;
  t.n_success = n;
  t.success = ops;
  ProtobufCMessage *m;
  qv_status st =
      call(e, "/etcdserverpb.KV/Txn", &t.base, &etcdserverpb__txn_response__descriptor, &m, err);
  if (st != QV_OK)
    return st;
  *done = ((Etcdserverpb__TxnResponse *)m)->succeeded != 0;
  protobuf_c_message_free_unpacked(m, NULL);
  int all = !*done;
  for (size_t i = 0; all && i < n; i++) { /* a retried transaction that went through */
    char *v = NULL;
    size_t vlen = 0;
    all = qv_etcd_get(e, puts[i].key, &v, &vlen, NULL, NULL) == QV_OK && vlen == puts[i].len &&
          (vlen == 0 || memcmp(v, puts[i].val, vlen) == 0);
    free(v);
  }
  if (all)
    *done = 1;
  return QV_OK;
}
