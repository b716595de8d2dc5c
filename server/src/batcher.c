/* Cross-request dynamic batching (batcher.h). */
#include "batcher.h"

#include "quiver/clock.h"
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
  int active;    /* leaders running batches */
  int stop;
  int have_timer;
  int free_on_exit; /* freed by the timer thread itself (see qv__batcher_free) */
  pthread_t timer;  /* with max_wait_us: leads a batch once its oldest request has waited enough */
  qv__batcher_stats stats;
  /* Reused buffers, one set per leader slot: queries of a batch, its results. */
  struct bufs {
    float *q, *s;
    int64_t *i;
    size_t qcap, rcap;
    int used;
  } * bufs;
};

static void finish(qv__bq *r, qv_status st) {
  r->st = st;
  r->done(r);
}

/* Runs r alone (directly into its buffers). */
static void run_one(qv__batcher *b, qv__bq *r) {
  qv_search_params p = {.k = r->k, .nprobe = r->nprobe, .generation = r->generation};
  qv_error_clear(&r->err);
  r->batch_queries = (uint32_t)r->n;
  finish(r, qv_collection_search(b->col, r->q, r->n, &p, r->scores, r->ids, &r->err));
}

static int grow(struct bufs *f, size_t dim, size_t nq, size_t nr) {
  if (nq > f->qcap) {
    float *q = realloc(f->q, nq * dim * sizeof(float));
    if (q == NULL)
      return -1;
    f->q = q;
    f->qcap = nq;
  }
  if (nr > f->rcap) {
    float *s = realloc(f->s, nr * sizeof(float));
    if (s == NULL)
      return -1;
    f->s = s;
    int64_t *i = realloc(f->i, nr * sizeof(int64_t));
    if (i == NULL)
      return -1;
    f->i = i;
    f->rcap = nr;
  }
  return 0;
}

/* One batch: requests in list (same k, nprobe and data version), nq queries in all. */
static void run_batch(qv__batcher *b, struct bufs *f, qv__bq *list, size_t nq) {
  if (list->next == NULL) { /* alone: no copies at all */
    run_one(b, list);
    return;
  }
  const uint32_t k = list->k;
  if (grow(f, b->dim, nq, nq * k) != 0) { /* cannot pack: run them one by one */
    for (qv__bq *r = list, *next; r != NULL; r = next) {
      next = r->next;
      run_one(b, r);
    }
    return;
  }
  size_t off = 0;
  for (qv__bq *r = list; r != NULL; r = r->next) {
    memcpy(f->q + off * b->dim, r->q, r->n * b->dim * sizeof(float));
    off += r->n;
  }
  qv_search_params p = {.k = k, .nprobe = list->nprobe, .generation = list->generation};
  qv_error err = {0};
  qv_status st = qv_collection_search(b->col, f->q, nq, &p, f->s, f->i, &err);
  off = 0;
  for (qv__bq *r = list, *next; r != NULL; r = next) {
    next = r->next;
    if (st != QV_OK) { /* find who it was: each alone */
      run_one(b, r);
      continue;
    }
    memcpy(r->scores, f->s + off * k, r->n * k * sizeof(float));
    memcpy(r->ids, f->i + off * k, r->n * k * sizeof(int64_t));
    off += r->n;
    r->batch_queries = (uint32_t)nq;
    qv_error_clear(&r->err);
    finish(r, QV_OK);
  }
}

/* The leader loop, entered with b->mu held by a submitter that found a free leader slot: it runs
 * batches (its own request first among them) until the queue is empty, then leaves. */
static void lead(qv__batcher *b) {
  struct bufs *f = NULL;
  for (int i = 0; i < b->o.max_active; i++)
    if (!b->bufs[i].used) {
      f = &b->bufs[i];
      f->used = 1;
      break;
    }
  while (b->head != NULL) {
    /* Take the oldest request, then every later one of its key while the batch has room. */
    qv__bq *first = b->head, *list = NULL, **tail = &list, *prev = NULL;
    const uint32_t k = first->k, nprobe = first->nprobe;
    const uint64_t gen = first->generation;
    size_t nq = 0;
    for (qv__bq *r = b->head, *next; r != NULL; r = next) {
      next = r->next;
      if (r != first && (r->k != k || r->nprobe != nprobe || r->generation != gen ||
                         nq + r->n > b->o.max_queries)) {
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
    const double now = qv_monotonic_s();
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
      run_batch(b, f, run, nrun);
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
  if (f)
    f->used = 0;
  b->active--;
  pthread_cond_broadcast(&b->cv); /* a leader slot is free: the timer may take what waits */
}

static void destroy(qv__batcher *b);

/* With max_wait_us > 0 submitters lead only full batches; this thread leads the others once the
 * oldest queued request has waited max_wait_us (polling threads never wait). */
static void *timer_main(void *arg) {
  qv__batcher *b = arg;
  omp_set_num_threads(b->o.omp_threads > 0 ? b->o.omp_threads : 1);
  pthread_mutex_lock(&b->mu);
  while (!b->stop) {
    if (b->head == NULL) {
      pthread_cond_wait(&b->cv, &b->mu);
      continue;
    }
    const double until = b->head->enqueued + b->o.max_wait_us * 1e-6;
    if (qv_monotonic_s() < until && b->queued < b->o.max_queries) {
      const struct timespec ts = {(time_t)until, (long)((until - (double)(time_t)until) * 1e9)};
      pthread_cond_timedwait(&b->cv, &b->mu, &ts);
      continue;
    }
    if (b->active >= b->o.max_active) { /* the running leaders will take it */
      pthread_cond_wait(&b->cv, &b->mu);
      continue;
    }
    b->active++;
    lead(b);
  }
  int self_free = b->free_on_exit;
  pthread_mutex_unlock(&b->mu);
  if (self_free)
    destroy(b);
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
  if (b->o.max_active < 1)
    b->o.max_active = 1;
  b->bufs = calloc((size_t)b->o.max_active, sizeof *b->bufs);
  if (b->bufs == NULL) {
    free(b);
    return qv_error_set(err, QV_ENOMEM, "out of memory for a batcher");
  }
  pthread_mutex_init(&b->mu, NULL);
  qv_cond_init_monotonic(&b->cv);
  if (b->o.max_wait_us > 0) {
    if (pthread_create(&b->timer, NULL, timer_main, b) != 0) {
      pthread_cond_destroy(&b->cv);
      pthread_mutex_destroy(&b->mu);
      free(b->bufs);
      free(b);
      return qv_error_set(err, QV_ENOMEM, "cannot start a batcher thread");
    }
    b->have_timer = 1;
  }
  *out = b;
  return QV_OK;
}

void qv__batcher_submit(qv__batcher *b, qv__bq *r) {
  r->next = NULL;
  r->batch_queries = 0;
  pthread_mutex_lock(&b->mu);
  r->enqueued = qv_monotonic_s();
  if (b->tail)
    b->tail->next = r;
  else
    b->head = r;
  b->tail = r;
  b->queued += r->n;
  b->stats.requests++;
  if (b->active < b->o.max_active && (b->o.max_wait_us == 0 || b->queued >= b->o.max_queries)) {
    b->active++;
    lead(b); /* returns with b->mu held */
  } else {
    pthread_cond_broadcast(&b->cv); /* the timer thread */
  }
  pthread_mutex_unlock(&b->mu);
}

void qv__batcher_free(qv__batcher *b) {
  if (b == NULL)
    return;
  if (b->have_timer) {
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    if (pthread_equal(pthread_self(), b->timer)) {
      /* The last search of a dropped collection was answered by the timer thread itself (its
       * done() released the collection): the thread frees the batcher when its loop ends. */
      b->free_on_exit = 1;
      pthread_detach(b->timer);
      pthread_mutex_unlock(&b->mu);
      return;
    }
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->timer, NULL);
  }
  destroy(b);
}

static void destroy(qv__batcher *b) {
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  for (int i = 0; i < b->o.max_active; i++) {
    free(b->bufs[i].q);
    free(b->bufs[i].s);
    free(b->bufs[i].i);
  }
  free(b->bufs);
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
