/* Cross-request dynamic batching of searches (one batcher per collection).
 *
 * Concurrent plain searches of one collection are coalesced into one index search, by flat
 * combining rather than a hand-off to a worker thread: a submitter that finds fewer than
 * max_active batches running becomes a leader and runs, on its own thread, what is queued (its
 * own request first in line when the queue was empty: no waiting when nothing else runs); a
 * submitter that finds max_active leaders busy only queues its request and returns, so its
 * thread goes back to accepting calls, and a leader takes the request in its next batch. A batch
 * holds up to max_queries queries of one (k, nprobe, data version) key. With max_wait_us > 0 a
 * submitter leads only a full batch; a timer thread of the batcher leads the others once the oldest
 * request has waited max_wait_us (a polling thread never waits). Each batch is one
 * qv_collection_search; the answers are split back and each request's done() is called on the
 * leader's thread. Requests whose deadline passed while queued are answered QV_EDEADLINE without
 * running. Requests of other keys stay queued in order (the oldest request always goes in the next
 * batch: nothing starves). If a combined search fails, each request is run alone so that an error
 * reaches only the request that caused it. */
#ifndef QUIVER_SERVER_BATCHER_H
#define QUIVER_SERVER_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/collection.h"

typedef struct qv__bq qv__bq;
struct qv__bq {
  qv__bq *next;            /* the batcher's */
  const float *q;          /* n x dim queries, valid until done() */
  size_t n;                /* queries */
  uint32_t k;              /* results per query */
  uint32_t nprobe;         /* 0 = the collection's default */
  uint64_t generation;     /* 0 = any; else qv_search_params.generation */
  double deadline;         /* CLOCK_MONOTONIC seconds; 0 = none */
  double enqueued;         /* set by the batcher */
  float *scores;           /* n x k, the caller's */
  int64_t *ids;            /* n x k, the caller's */
  qv_status st;            /* set before done() */
  qv_error err;            /* message when st != QV_OK */
  uint32_t batch_queries;  /* how many queries the index search that answered it held */
  void (*done)(qv__bq *r); /* called once, on the batcher's thread (or the submitter's) */
};

typedef struct qv__batcher_opts {
  size_t max_queries;   /* most queries in one index search (default 256) */
  uint32_t max_wait_us; /* how long the worker may wait to fill a batch once a request is queued
                           (0 = never: take what is there) */
  int max_active;       /* batches running at once (default 1; the server uses its polling
                           threads' count) */
  int omp_threads;      /* OpenMP threads of the timer thread's searches (0 = 1) */
} qv__batcher_opts;

typedef struct qv__batcher_stats {
  uint64_t requests, queries, batches, expired;
  uint64_t size_hist[12]; /* batches whose query count is <= 1, 2, 4, ..., 1024, > 1024 */
} qv__batcher_stats;

typedef struct qv__batcher qv__batcher;

qv_status qv__batcher_new(qv__batcher **out, qv_collection *col, const qv__batcher_opts *o,
                          qv_error *err);
/* Queues r; r->done is called exactly once, maybe before this returns (this thread may lead). */
void qv__batcher_submit(qv__batcher *b, qv__bq *r);
/* Frees; nothing may be queued (queued requests hold the collection). NULL allowed. */
void qv__batcher_free(qv__batcher *b);
void qv__batcher_stats_get(qv__batcher *b, qv__batcher_stats *s);

#endif
