/* Cross-request dynamic batching (batcher.h). */
#include "batcher.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qv__batcher {
  qv_collection *col;
  size_t dim;
  qv__batcher_opts o;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  qv__bq *head, *tail;
  size_t queued; /* queries */
  int stop;
  pthread_t thread;
  qv__batcher_stats stats;
  /* The worker's reused buffers: queries of a batch, its results. */
  float *qbuf, *sbuf;
  int64_t *ibuf;
  size_t qcap, rcap;
};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void finish(qv__bq *r, qv_status st) {
  r->st = st;
  r->done(r);
}

/* Runs r alone (directly into its buffers). */
static void run_one(qv__batcher *b, qv__bq *r) {
  qv_search_params p = {.k = r->k, .nprobe = r->nprobe};
  qv_error_clear(&r->err);
  r->batch_queries = (uint32_t)r->n;
  finish(r, qv_collection_search(b->col, r->q, r->n, &p, r->scores, r->ids, &r->err));
}

static int grow(qv__batcher *b, size_t nq, size_t nr) {
  if (nq > b->qcap) {
    float *q = realloc(b->qbuf, nq * b->dim * sizeof(float));
    if (q == NULL)
      return -1;
    b->qbuf = q;
    b->qcap = nq;
  }
  if (nr > b->rcap) {
    float *s = realloc(b->sbuf, nr * sizeof(float));
    if (s == NULL)
      return -1;
    b->sbuf = s;
    int64_t *i = realloc(b->ibuf, nr * sizeof(int64_t));
    if (i == NULL)
      return -1;
    b->ibuf = i;
    b->rcap = nr;
  }
  return 0;
}

/* One batch: requests in list (same k and nprobe), nq queries in all. */
static void run_batch(qv__batcher *b, qv__bq *list, size_t nq) {
  if (list->next == NULL) { /* alone: no copies at all */
    run_one(b, list);
    return;
  }
  const uint32_t k = list->k;
  if (grow(b, nq, nq * k) != 0) { /* cannot pack: run them one by one */
    for (qv__bq *r = list, *next; r != NULL; r = next) {
      next = r->next;
      run_one(b, r);
    }
    return;
  }
  size_t off = 0;
  for (qv__bq *r = list; r != NULL; r = r->next) {
    memcpy(b->qbuf + off * b->dim, r->q, r->n * b->dim * sizeof(float));
    off += r->n;
  }
  qv_search_params p = {.k = k, .nprobe = list->nprobe};
  qv_error err = {0};
  qv_status st = qv_collection_search(b->col, b->qbuf, nq, &p, b->sbuf, b->ibuf, &err);
  off = 0;
  for (qv__bq *r = list, *next; r != NULL; r = next) {
    next = r->next;
    if (st != QV_OK) { /* find who it was: each alone */
      run_one(b, r);
      continue;
    }
    memcpy(r->scores, b->sbuf + off * k, r->n * k * sizeof(float));
    memcpy(r->ids, b->ibuf + off * k, r->n * k * sizeof(int64_t));
    off += r->n;
    r->batch_queries = (uint32_t)nq;
    qv_error_clear(&r->err);
    finish(r, QV_OK);
  }
}

static void *worker(void *arg) {
  qv__batcher *b = arg;
  omp_set_num_threads(b->o.omp_threads > 0 ? b->o.omp_threads : omp_get_num_procs());
  pthread_mutex_lock(&b->mu);
  for (;;) {
    while (b->head == NULL && !b->stop)
      pthread_cond_wait(&b->cv, &b->mu);
    if (b->head == NULL)
      break; /* stopping, nothing left */
    if (b->o.max_wait_us > 0 && !b->stop && b->queued < b->o.max_queries) {
      /* Linger for more, counted from the oldest request's arrival. */
      const double until = b->head->enqueued + b->o.max_wait_us * 1e-6;
      const struct timespec ts = {(time_t)until, (long)((until - (double)(time_t)until) * 1e9)};
      while (!b->stop && b->queued < b->o.max_queries && mono_s() < until)
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    /* Take the oldest request, then every later one of its key while the batch has room. */
    qv__bq *first = b->head, *list = NULL, **tail = &list, *prev = NULL;
    const uint32_t k = first->k, nprobe = first->nprobe;
    size_t nq = 0;
    for (qv__bq *r = b->head, *next; r != NULL; r = next) {
      next = r->next;
      if (r != first && (r->k != k || r->nprobe != nprobe || nq + r->n > b->o.max_queries)) {
        prev = r;
        continue;
      }
      if (prev)
        prev->next = next;
      else
        b->head = next;
      if (b->tail == r)
        b->tail = prev;
      r->next = NULL;
      *tail = r;
      tail = &r->next;
      nq += r->n;
      b->queued -= r->n;
    }
    pthread_mutex_unlock(&b->mu);
    /* Deadlines: what can no longer be answered in time is not run. */
    const double now = mono_s();
    qv__bq *run = NULL, **rt = &run;
    size_t nrun = 0, expired = 0;
    for (qv__bq *r = list, *next; r != NULL; r = next) {
      next = r->next;
      r->next = NULL;
      if (r->deadline > 0 && now >= r->deadline) {
        qv_error_set(&r->err, QV_EDEADLINE,
                     "the deadline passed while the search was queued (%.1f ms); raise the "
                     "deadline or lower the load",
                     (now - r->enqueued) * 1e3);
        finish(r, QV_EDEADLINE);
        expired++;
        continue;
      }
      *rt = r;
      rt = &r->next;
      nrun += r->n;
    }
    if (run != NULL)
      run_batch(b, run, nrun);
    pthread_mutex_lock(&b->mu);
    b->stats.expired += expired;
    if (nrun > 0) {
      b->stats.batches++;
      b->stats.queries += nrun;
      int bucket = 0;
      while (bucket < 11 && ((size_t)1 << bucket) < nrun)
        bucket++;
      b->stats.size_hist[bucket]++;
    }
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

qv_status qv__batcher_new(qv__batcher **out, qv_collection *col, const qv__batcher_opts *o,
                          qv_error *err) {
  *out = NULL;
  qv__batcher *b = calloc(1, sizeof *b);
  if (b == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory for a batcher");
  qv_collection_stats cs;
  qv_collection_stats_get(col, &cs, NULL);
  b->col = col;
  b->dim = cs.dim;
  b->o = *o;
  if (b->o.max_queries == 0)
    b->o.max_queries = 256;
  pthread_mutex_init(&b->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&b->thread, NULL, worker, b) != 0) {
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return qv_error_set(err, QV_ENOMEM, "cannot start a batcher thread");
  }
  *out = b;
  return QV_OK;
}

void qv__batcher_submit(qv__batcher *b, qv__bq *r) {
  r->next = NULL;
  r->batch_queries = 0;
  pthread_mutex_lock(&b->mu);
  r->enqueued = mono_s();
  if (b->tail)
    b->tail->next = r;
  else
    b->head = r;
  b->tail = r;
  b->queued += r->n;
  b->stats.requests++;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

void qv__batcher_free(qv__batcher *b) {
  if (b == NULL)
    return;
  pthread_mutex_lock(&b->mu);
  b->stop = 1;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  pthread_join(b->thread, NULL);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b->qbuf);
  free(b->sbuf);
  free(b->ibuf);
  free(b);
}

void qv__batcher_stats_get(qv__batcher *b, qv__batcher_stats *s) {
  memset(s, 0, sizeof *s);
  if (b == NULL)
    return;
  pthread_mutex_lock(&b->mu);
  *s = b->stats;
  pthread_mutex_unlock(&b->mu);
}
