/* The Prometheus collector: per-collection gauges, read at scrape time. */
#include <stdlib.h>

#include "metrics.h"
#include "quiver/gpu.h"
#include "server_internal.h"

/* ---- metrics collected at scrape time ---------------------------------------------------- */

void qv__metrics_collect(void *user, qv__mbuf *o) {
  qv__server *s = user;
  qv__entry **es = NULL;
  size_t n = 0;
  if (qv__registry_list(s->reg, &es, &n, NULL) != QV_OK)
    return;
  static const struct {
    const char *name, *type, *help;
  } kG[] = {
      {"quiver_collection_vectors", "gauge", "Stored vectors."},
      {"quiver_collection_vector_bytes", "gauge", "Bytes of the full-precision store and ids."},
      {"quiver_collection_index_bytes", "gauge", "Bytes of the index (estimate), by device."},
      {"quiver_collection_tombstones", "gauge", "Stale index entries hidden until a save/build."},
      {"quiver_collection_build_recall", "gauge", "The last build's recall@k on its sample."},
      {"quiver_wal_bytes", "gauge", "Write-ahead log since the last snapshot."},
      {"quiver_wal_records", "gauge", "Records in the write-ahead log."},
      {"quiver_batch_expired_total", "counter", "Searches whose deadline passed in the queue."},
  };
  qv_collection_stats *st = calloc(n ? n : 1, sizeof *st);
  qv__batcher_stats *bs = calloc(n ? n : 1, sizeof *bs);
  if (st == NULL || bs == NULL)
    o->failed = 1;
  for (size_t i = 0; st && bs && i < n; i++) {
    qv_collection_stats_get(qv__entry_col(es[i]), &st[i], NULL);
    qv__batcher_stats_get(qv__entry_batcher(es[i]), &bs[i]);
  }
  for (size_t g = 0; st && bs && g < sizeof kG / sizeof kG[0]; g++) {
    qv__mbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", kG[g].name, kG[g].help, kG[g].name,
                    kG[g].type);
    for (size_t i = 0; i < n; i++) {
      const qv_collection_stats *c = &st[i];
      const char *name = qv__entry_name(es[i]);
      switch (g) {
      case 0:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->count);
        break;
      case 1:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->vector_bytes);
        break;
      case 2:
        qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"cpu\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->index_bytes);
        if (c->gpu >= 0)
          qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"gpu%d\"} %llu\n", kG[g].name, name,
                          c->gpu, (unsigned long long)c->device_bytes);
        break;
      case 3:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->tombstones);
        break;
      case 4:
        if (c->build_recall >= 0)
          qv__mbuf_printf(o, "%s{collection=\"%s\",k=\"%u\"} %.4f\n", kG[g].name, name,
                          c->build_recall_k, c->build_recall);
        break;
      case 5:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->wal_bytes);
        break;
      case 6:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->wal_records);
        break;
      case 7:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)bs[i].expired);
        break;
      }
    }
  }
  /* Batch sizes: queries per coalesced index search. */
  qv__mbuf_printf(o, "# HELP quiver_batch_queries Queries per index search of the batcher.\n"
                     "# TYPE quiver_batch_queries histogram\n");
  for (size_t i = 0; st && bs && i < n; i++) {
    uint64_t cum = 0;
    for (int b = 0; b < 12; b++) {
      cum += bs[i].size_hist[b];
      if (b < 11)
        qv__mbuf_printf(o, "quiver_batch_queries_bucket{collection=\"%s\",le=\"%d\"} %llu\n",
                        qv__entry_name(es[i]), 1 << b, (unsigned long long)cum);
    }
    qv__mbuf_printf(o,
                    "quiver_batch_queries_bucket{collection=\"%s\",le=\"+Inf\"} %llu\n"
                    "quiver_batch_queries_sum{collection=\"%s\"} %llu\n"
                    "quiver_batch_queries_count{collection=\"%s\"} %llu\n",
                    qv__entry_name(es[i]), (unsigned long long)cum, qv__entry_name(es[i]),
                    (unsigned long long)bs[i].queries, qv__entry_name(es[i]),
                    (unsigned long long)bs[i].batches);
  }
  for (size_t i = 0; i < n; i++)
    qv__registry_put(s->reg, es[i]);
  free(es);
  free(st);
  free(bs);
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
