/* Cluster membership: see member.h. */
#define _GNU_SOURCE
#include "member.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "log.h"
#include "quiver/clock.h"
#include "quiver/etcd.h"

struct qv__member {
  qv_etcd *etcd;
  char key[128];
  char value[512];
  int64_t lease, lease_s;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
};

static int id_ok(const char *id) {
  size_t n = strlen(id);
  if (n < 1 || n > 63)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

static int addr_ok(const char *a) {
  const char *colon = strrchr(a, ':');
  if (colon == NULL || colon == a || colon[1] == '\0' || strlen(a) > 255)
    return 0;
  for (const char *p = a; *p; p++)
    if (*p == '"' || *p == '\\' || *p == ' ' || (unsigned char)*p < 0x20)
      return 0;
  return 1;
}

/* A lease, and the key on it. */
static qv_status register_node(qv__member *m, qv_error *err) {
  int64_t lease = 0;
  qv_status st = qv_etcd_lease_grant(m->etcd, m->lease_s, &lease, NULL, err);
  if (st == QV_OK)
    st = qv_etcd_put(m->etcd, m->key, m->value, strlen(m->value), lease, NULL, err);
  pthread_mutex_lock(&m->mu);
  if (lease != 0)
    m->lease = lease;
  pthread_mutex_unlock(&m->mu);
  return st;
}

int64_t qv__member_lease(qv__member *m) {
  pthread_mutex_lock(&m->mu);
  const int64_t lease = m->lease;
  pthread_mutex_unlock(&m->mu);
  return lease;
}

static void *refresh_main(void *arg) {
  qv__member *m = arg;
  /* Three refreshes per lease: one lost to a slow etcd still leaves time for the next. */
  const int64_t period_ms = m->lease_s * 1000 / 3 > 0 ? m->lease_s * 1000 / 3 : 300;
  pthread_mutex_lock(&m->mu);
  while (!m->stop) {
    qv_cond_wait_ms(&m->cv, &m->mu, period_ms);
    if (m->stop)
      break;
    pthread_mutex_unlock(&m->mu);
    qv_error e = {0};
    qv_status st = qv_etcd_lease_keepalive(m->etcd, qv__member_lease(m), NULL, &e);
    if (st == QV_ENOTFOUND) { /* expired while etcd was unreachable: join again */
      QV_LOG_W("cluster: the membership lease expired; registering %s again", m->key);
      st = register_node(m, &e);
    }
    if (st != QV_OK)
      QV_LOG_W("cluster: refreshing the membership lease failed: %s", e.msg);
    pthread_mutex_lock(&m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

qv_status qv__member_join(qv__member **out, const char *etcd, const char *prefix, const char *id,
                          const char *addr, int64_t lease_s, qv_error *err) {
  *out = NULL;
  if (!id_ok(id))
    return qv_error_set(err, QV_EINVAL, "--node-id '%.80s': [A-Za-z0-9_.-]{1,63}", id);
  if (!addr_ok(addr))
    return qv_error_set(err, QV_EINVAL, "--advertise '%.80s': host:port", addr);
  qv__member *m = calloc(1, sizeof *m);
  if (m == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  snprintf(m->key, sizeof m->key, "%s%s", prefix, id);
  snprintf(m->value, sizeof m->value, "{\"id\":\"%s\",\"addr\":\"%s\",\"pid\":%ld}", id, addr,
           (long)getpid());
  m->lease_s = lease_s;
  pthread_mutex_init(&m->mu, NULL);
  qv_cond_init_monotonic(&m->cv);
  qv_status st = qv_etcd_open(&m->etcd, etcd, 5000, err);
  if (st == QV_OK)
    st = register_node(m, err);
  if (st == QV_OK && pthread_create(&m->thread, NULL, refresh_main, m) != 0)
    st = qv_error_set(err, QV_ENOMEM, "cannot start the membership thread");
  if (st != QV_OK) {
    if (m->lease)
      qv_etcd_lease_revoke(m->etcd, m->lease, NULL);
    qv_etcd_close(m->etcd);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return qv_error_prefix(err, st, "cluster: joining as %s", id);
  }
  QV_LOG_I("cluster: joined as %s (%s), lease %lld s", id, addr, (long long)lease_s);
  *out = m;
  return QV_OK;
}

void qv__member_leave(qv__member *m) {
  if (m == NULL)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->thread, NULL);
  qv_error e = {0};
  if (qv_etcd_lease_revoke(m->etcd, m->lease, &e) == QV_OK)
    QV_LOG_I("cluster: left (%s removed)", m->key);
  else
    QV_LOG_W("cluster: leaving: %s (the key goes when its lease expires)", e.msg);
  qv_etcd_close(m->etcd);
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  free(m);
}
