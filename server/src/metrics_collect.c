/* The Prometheus collector: per-collection gauges, read at scrape time. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "quiver/gpu.h"
#include "router_internal.h"
#include "server_internal.h"

/* ---- metrics collected at scrape time ---------------------------------------------------- */

/* One collection's numbers at a scrape. */
typedef struct sample {
  const char *name;
  qv_collection_stats c;
  qv__batcher_stats b;
} sample;

/* Series with more labels than the collection's. */
static void print_index_bytes(qv__mbuf *o, const char *metric, const sample *x) {
  qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"cpu\"} %llu\n", metric, x->name,
                  (unsigned long long)x->c.index_bytes);
  if (x->c.gpu >= 0)
    qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"gpu%d\"} %llu\n", metric, x->name, x->c.gpu,
                    (unsigned long long)x->c.device_bytes);
}

/* Filtered queries by the path that answered them (docs/filters.md). */
static void print_filtered(qv__mbuf *o, const char *metric, const sample *x) {
  qv__mbuf_printf(o,
                  "%s{collection=\"%s\",path=\"exact\"} %llu\n"
                  "%s{collection=\"%s\",path=\"index\"} %llu\n",
                  metric, x->name, (unsigned long long)x->c.filtered_exact, metric, x->name,
                  (unsigned long long)x->c.filtered_index);
}

static void print_build_recall(qv__mbuf *o, const char *metric, const sample *x) {
  if (x->c.build_recall >= 0)
    qv__mbuf_printf(o, "%s{collection=\"%s\",k=\"%u\"} %.4f\n", metric, x->name,
                    x->c.build_recall_k, x->c.build_recall);
}

/* The per-collection series: a uint64_t field of the sample (at `off`), or a printer. */
static const struct gauge {
  const char *name, *type, *help;
  size_t off;
  void (*print)(qv__mbuf *o, const char *metric, const sample *x);
} kGauges[] = {
    {"quiver_collection_vectors", "gauge", "Stored vectors.", offsetof(sample, c.count), NULL},
    {"quiver_collection_vector_bytes", "gauge", "Bytes of the full-precision store and ids.",
     offsetof(sample, c.vector_bytes), NULL},
    {"quiver_collection_index_bytes", "gauge", "Bytes of the index (estimate), by device.", 0,
     print_index_bytes},
    {"quiver_collection_attribute_bytes", "gauge",
     "Bytes of the item attributes (columns, tag sets, dictionaries, postings).",
     offsetof(sample, c.attr_bytes), NULL},
    {"quiver_filtered_queries_total", "counter",
     "Filtered queries since start, by the path that answered them.", 0, print_filtered},
    {"quiver_filter_overfetch_retries_total", "counter",
     "Over-fetching filtered queries asked again with a larger k'.",
     offsetof(sample, c.filtered_overfetch_retries), NULL},
    {"quiver_collection_tombstones", "gauge", "Stale index entries hidden until a save/build.",
     offsetof(sample, c.tombstones), NULL},
    {"quiver_collection_build_recall", "gauge", "The last build's recall@k on its sample.", 0,
     print_build_recall},
    {"quiver_wal_bytes", "gauge", "Write-ahead log since the last snapshot.",
     offsetof(sample, c.wal_bytes), NULL},
    {"quiver_wal_records", "gauge", "Records in the write-ahead log.",
     offsetof(sample, c.wal_records), NULL},
    {"quiver_batch_expired_total", "counter", "Searches whose deadline passed in the queue.",
     offsetof(sample, b.expired), NULL},
};

void qv__metrics_collect(void *user, qv__mbuf *o) {
  qv__server *s = user;
  if (s->router != NULL)
    qv__router_metrics(s->router, o);
  qv__entry **es = NULL;
  size_t n = 0;
  if (qv__registry_list(s->reg, &es, &n, NULL) != QV_OK)
    return;
  sample *xs = calloc(n ? n : 1, sizeof *xs);
  if (xs == NULL)
    o->failed = 1;
  for (size_t i = 0; xs && i < n; i++) {
    xs[i].name = qv__entry_name(es[i]);
    qv_collection_stats_get(qv__entry_col(es[i]), &xs[i].c, NULL);
    qv__batcher_stats_get(qv__entry_batcher(es[i]), &xs[i].b);
  }
  for (size_t g = 0; xs && g < sizeof kGauges / sizeof kGauges[0]; g++) {
    const struct gauge *G = &kGauges[g];
    qv__mbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", G->name, G->help, G->name, G->type);
    for (size_t i = 0; i < n; i++) {
      if (G->print != NULL) {
        G->print(o, G->name, &xs[i]);
      } else {
        uint64_t v;
        memcpy(&v, (const char *)&xs[i] + G->off, sizeof v);
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", G->name, xs[i].name,
                        (unsigned long long)v);
      }
    }
  }
  /* Batch sizes: queries per coalesced index search. */
  qv__mbuf_printf(o, "# HELP quiver_batch_queries Queries per index search of the batcher.\n"
                     "# TYPE quiver_batch_queries histogram\n");
  for (size_t i = 0; xs && i < n; i++) {
    const qv__batcher_stats *bs = &xs[i].b;
    uint64_t cum = 0;
    for (int b = 0; b < 12; b++) {
      cum += bs->size_hist[b];
      if (b < 11)
        qv__mbuf_printf(o, "quiver_batch_queries_bucket{collection=\"%s\",le=\"%d\"} %llu\n",
                        xs[i].name, 1 << b, (unsigned long long)cum);
    }
    qv__mbuf_printf(o,
                    "quiver_batch_queries_bucket{collection=\"%s\",le=\"+Inf\"} %llu\n"
                    "quiver_batch_queries_sum{collection=\"%s\"} %llu\n"
                    "quiver_batch_queries_count{collection=\"%s\"} %llu\n",
                    xs[i].name, (unsigned long long)cum, xs[i].name,
                    (unsigned long long)bs->queries, xs[i].name, (unsigned long long)bs->batches);
  }
  for (size_t i = 0; i < n; i++)
    qv__registry_put(s->reg, es[i]);
  free(es);
  free(xs);
  qv__mbuf_printf(o, "# HELP quiver_gpu_memory_bytes GPU memory: the device's, the budget for "
                     "collections, and what their copies reserve.\n"
                     "# TYPE quiver_gpu_memory_bytes gauge\n");
  for (int g = 0; g < qv_gpu_devices(); g++) {
    qv_gpu_info gi;
    if (qv_gpu_info_get(g, &gi, NULL) == QV_OK)
      qv__mbuf_printf(o,
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"total\"} %zu\n"
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"budget\"} %zu\n"
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"used\"} %zu\n",
                      g, gi.total_bytes, g, gi.budget_bytes, g, gi.used_bytes);
  }
  qv__mbuf_printf(o,
                  "# HELP quiver_collections Collections served.\n"
                  "# TYPE quiver_collections gauge\nquiver_collections %zu\n",
                  n);
}
