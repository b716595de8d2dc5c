/* A shard's write log on NATS JetStream: see quiver/jslog.h. */
#include "quiver/jslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "quiver/clock.h"

struct qv_jslog {
  natsConnection *nc;
  jsCtx *js;
  char name[128];
  int64_t timeout_ms;
};

static qv_status nats_fail(qv_error *err, qv_status code, const char *what, natsStatus s,
                           jsErrCode je) {
  const char *last = nats_GetLastError(NULL);
  return qv_error_set(err, code, "NATS %s: %s%s%.120s (JetStream error %d)", what,
                      natsStatus_GetText(s), last && *last ? ": " : "", last ? last : "", (int)je);
}

static void pause_s(double s) {
  nanosleep(
      &(struct timespec){.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)},
      NULL);
}

static int name_ok(const char *n) {
  if (n == NULL || n[0] == '\0' || strlen(n) >= 128)
    return 0;
  for (const char *p = n; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return 0;
  return 1;
}

qv_status qv_jslog_open(qv_jslog **out, const char *servers, const char *name, int replicas,
                        int64_t timeout_ms, qv_error *err) {
  *out = NULL;
  if (!name_ok(name))
    return qv_error_set(err, QV_EINVAL, "JetStream stream name '%.80s': 1 to 127 of [A-Za-z0-9_-]",
                        name ? name : "");
  if (servers == NULL || servers[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "NATS servers: give nats://host:port[,nats://host:port]");
  if (replicas < 1 || replicas > 5)
    return qv_error_set(err, QV_EINVAL, "JetStream replicas %d: 1 to 5", replicas);
  qv_jslog *l = calloc(1, sizeof *l);
  if (l == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  snprintf(l->name, sizeof l->name, "%s", name);
  l->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
  /* The comma-separated list as nats.c wants it: an array of URLs. */
  char *list = strdup(servers);
  const char *urls[16];
  int n = 0;
  for (char *tok = list ? strtok(list, ",") : NULL; tok && n < 16; tok = strtok(NULL, ","))
    urls[n++] = tok;
  natsOptions *o = NULL;
  natsStatus s = list == NULL ? NATS_NO_MEMORY : natsOptions_Create(&o);
  if (s == NATS_OK)
    s = natsOptions_SetServers(o, urls, n);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(o, -1); /* a shard server outlives any NATS server */
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(o, 100);
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(o, l->timeout_ms);
  qv_status st = QV_OK;
  if (s != NATS_OK)
    st = nats_fail(err, QV_EINVAL, "options", s, 0);
  if (st == QV_OK && (s = natsConnection_Connect(&l->nc, o)) != NATS_OK)
    st = nats_fail(err, QV_EUNAVAILABLE, "connect", s, 0);
  natsOptions_Destroy(o);
  free(list);
  jsOptions jo;
  jsOptions_Init(&jo);
  /* Each JetStream request waits at most 2 s: one sent while the cluster has no leader (a fresh
   * start, a failover) goes unanswered, and the loops below send it again until timeout_ms. */
  jo.Wait = l->timeout_ms < 2000 ? l->timeout_ms : 2000;
  if (st == QV_OK && (s = natsConnection_JetStream(&l->js, l->nc, &jo)) != NATS_OK)
    st = nats_fail(err, QV_EUNAVAILABLE, "JetStream context", s, 0);
  /* The stream: created when missing; a fresh cluster elects its JetStream leader first. */
  const double until = qv_monotonic_s() + (double)l->timeout_ms / 1e3;
  while (st == QV_OK) {
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    s = js_GetStreamInfo(&si, l->js, l->name, NULL, &je);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(si);
      break;
    }
    if (s == NATS_NOT_FOUND) {
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      const char *subj[1] = {l->name};
      cfg.Name = l->name;
      cfg.Subjects = subj;
      cfg.SubjectsLen = 1;
      cfg.Replicas = replicas;
      cfg.Storage = js_FileStorage;
      s = js_AddStream(&si, l->js, &cfg, NULL, &je);
      if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        break;
      }
    }
    if (qv_monotonic_s() >= until)
      st = nats_fail(err, QV_EUNAVAILABLE, "stream", s, je);
    else
      pause_s(0.1);
  }
  if (st != QV_OK) {
    qv_jslog_close(l);
    return st;
  }
  *out = l;
  return QV_OK;
}

void qv_jslog_close(qv_jslog *l) {
  if (l == NULL)
    return;
  jsCtx_Destroy(l->js);
  if (l->nc) {
    natsConnection_Close(l->nc);
    natsConnection_Destroy(l->nc);
  }
  free(l);
}

qv_status qv_jslog_append(qv_jslog *l, const void *rec, size_t len, const char *msg_id,
                          uint64_t *seq, int *duplicate, qv_error *err) {
  if (len > (size_t)INT32_MAX)
    return qv_error_set(err, QV_EINVAL, "a log record of %zu bytes", len);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id;
  po.ExpectStream = l->name;
  const double until = qv_monotonic_s() + (double)l->timeout_ms / 1e3;
  for (;;) {
    jsPubAck *pa = NULL;
    jsErrCode je = 0;
    natsStatus s = js_Publish(&pa, l->js, l->name, rec, (int)len, &po, &je);
    if (s == NATS_OK) {
      if (seq)
        *seq = pa->Sequence;
      if (duplicate)
        *duplicate = pa->Duplicate;
      jsPubAck_Destroy(pa);
      return QV_OK;
    }
    /* No responders or a timeout: the stream's leader moved or a server is down; the same id
     * makes the retry safe. */
    if (qv_monotonic_s() >= until || (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS &&
                                      s != NATS_CONNECTION_DISCONNECTED && s != NATS_ERR))
      return nats_fail(err, s == NATS_TIMEOUT ? QV_EDEADLINE : QV_EUNAVAILABLE, "publish", s, je);
    pause_s(0.05);
  }
}

qv_status qv_jslog_last_seq(qv_jslog *l, uint64_t *seq, qv_error *err) {
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus s = js_GetStreamInfo(&si, l->js, l->name, NULL, &je);
  if (s != NATS_OK)
    return nats_fail(err, QV_EUNAVAILABLE, "stream info", s, je);
  *seq = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return QV_OK;
}

struct qv_jslog_reader {
  qv_jslog *l;
  natsSubscription *sub;
};

qv_status qv_jslog_reader_open(qv_jslog *l, uint64_t from, qv_jslog_reader **out, qv_error *err) {
  *out = NULL;
  if (l == NULL)
    return qv_error_set(err, QV_EINVAL, "no log to read");
  if (from < 1)
    from = 1;
  qv_jslog_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  r->l = l;
  /* An ordered consumer from `from`: in order, no gaps, re-created by nats.c after a failover. */
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = l->name;
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = from;
  jsErrCode je = 0;
  const double until = qv_monotonic_s() + (double)l->timeout_ms / 1e3;
  natsStatus s;
  /* The consumer is made by the stream's leader: retried while a failover leaves none. */
  while ((s = js_SubscribeSync(&r->sub, l->js, l->name, NULL, &so, &je)) != NATS_OK) {
    if (qv_monotonic_s() >= until || (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS)) {
      free(r);
      return nats_fail(err, QV_EUNAVAILABLE, "subscribe", s, je);
    }
    pause_s(0.1);
  }
  *out = r;
  return QV_OK;
}

qv_status qv_jslog_reader_next(qv_jslog_reader *r, int64_t wait_ms, size_t max, qv_jslog_fn fn,
                               void *user, size_t *handed, qv_error *err) {
  size_t n = 0;
  qv_status st = QV_OK;
  while (max == 0 || n < max) {
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, r->sub, n == 0 ? wait_ms : 0);
    if (s == NATS_TIMEOUT)
      break;
    if (s != NATS_OK) {
      st = nats_fail(err, QV_EUNAVAILABLE, "read", s, 0);
      break;
    }
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
      natsMsg_Destroy(m);
      st = qv_error_set(err, QV_EINTERNAL, "JetStream message without metadata");
      break;
    }
    const uint64_t q = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    const int stop = fn(user, q, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
    n++;
    if (stop)
      break;
  }
  if (handed)
    *handed = n;
  return st;
}

void qv_jslog_reader_close(qv_jslog_reader *r) {
  if (r == NULL)
    return;
  natsSubscription_Unsubscribe(r->sub);
  natsSubscription_Destroy(r->sub);
  free(r);
}

typedef struct read_all {
  qv_jslog_fn fn;
  void *user;
  uint64_t next;
  int stopped;
} read_all;

static int read_all_fn(void *user, uint64_t seq, const void *rec, size_t len) {
  read_all *a = user;
  a->next = seq + 1;
  return a->stopped = a->fn(a->user, seq, rec, len);
}

qv_status qv_jslog_read(qv_jslog *l, uint64_t from, int64_t wait_ms, qv_jslog_fn fn, void *user,
                        uint64_t *next, qv_error *err) {
  if (next)
    *next = from;
  qv_jslog_reader *r;
  qv_status st = qv_jslog_reader_open(l, from, &r, err);
  if (st != QV_OK)
    return st;
  read_all a = {fn, user, from, 0};
  size_t n = 1;
  while (st == QV_OK && n > 0 && !a.stopped)
    st = qv_jslog_reader_next(r, wait_ms, 0, read_all_fn, &a, &n, err);
  qv_jslog_reader_close(r);
  if (next)
    *next = a.next;
  return st;
}

qv_status qv_jslog_delete(qv_jslog *l, qv_error *err) {
  if (l == NULL)
    return qv_error_set(err, QV_EINVAL, "no log to delete");
  jsErrCode je = 0;
  const double until = qv_monotonic_s() + (double)l->timeout_ms / 1e3;
  for (;;) {
    natsStatus s = js_DeleteStream(l->js, l->name, NULL, &je);
    if (s == NATS_OK || s == NATS_NOT_FOUND)
      return QV_OK;
    if (qv_monotonic_s() >= until || (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS))
      return nats_fail(err, QV_EUNAVAILABLE, "delete stream", s, je);
    pause_s(0.1);
  }
}
