/* Upsert acknowledgement latency over gRPC, against one or more servers in one run, side by side
 * (BENCHMARKING.md): a single quiverd acknowledges after its write-ahead log (--wal-sync), a fleet
 * router after JetStream stored the records on a quorum of its servers.
 *
 *   upsert_ack --dim D --batch B --calls N TARGET=COLLECTION [TARGET=COLLECTION ...]
 *
 * Each target's collection must exist with dimension D. The calls alternate between the targets
 * (A B A B ...), so that both see the same machine; each call upserts B fresh ids (random vectors)
 * and waits for its answer. Prints per target: calls, p50 / p99 / mean ms, rows/s. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quiver/client.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  size_t dim = 128, batch = 1, calls = 500;
  int first = 1;
  for (; first + 1 < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
    const size_t v = strtoull(argv[first + 1], NULL, 10);
    if (!strcmp(argv[first], "--dim"))
      dim = v;
    else if (!strcmp(argv[first], "--batch"))
      batch = v;
    else if (!strcmp(argv[first], "--calls"))
      calls = v;
    else
      first = argc;
  }
  const int nt = argc - first;
  if (nt < 1 || dim == 0 || batch == 0 || calls == 0) {
    fprintf(stderr, "usage: upsert_ack [--dim D] [--batch B] [--calls N] TARGET=COLLECTION...\n");
    return 2;
  }
  qv_client **cl = calloc((size_t)nt, sizeof *cl);
  char **coll = calloc((size_t)nt, sizeof *coll);
  double **lat = calloc((size_t)nt, sizeof *lat);
  float *v = malloc(batch * dim * sizeof *v);
  int64_t *ids = malloc(batch * sizeof *ids);
  if (!cl || !coll || !lat || !v || !ids)
    return 1;
  for (int t = 0; t < nt; t++) {
    char *arg = strdup(argv[first + t]), *eq = strchr(arg, '=');
    if (eq == NULL) {
      fprintf(stderr, "upsert_ack: '%s' is not TARGET=COLLECTION\n", arg);
      return 2;
    }
    *eq = '\0';
    coll[t] = eq + 1;
    qv_client_opts o;
    qv_client_opts_init(&o);
    o.target = arg;
    o.timeout_ms = 30000;
    qv_error e = {0};
    if (qv_client_connect(&cl[t], &o, &e) != QV_OK) {
      fprintf(stderr, "upsert_ack: %s: %s\n", arg, e.msg);
      return 1;
    }
    lat[t] = calloc(calls, sizeof **lat);
  }
  srand(7);
  int64_t next = 10000000;
  for (size_t i = 0; i < calls; i++)
    for (int t = 0; t < nt; t++) {
      for (size_t j = 0; j < batch * dim; j++)
        v[j] = (float)rand() / (float)RAND_MAX;
      for (size_t j = 0; j < batch; j++)
        ids[j] = next++;
      qv_error e = {0};
      const double t0 = now_s();
      if (qv_client_upsert(cl[t], coll[t], batch, dim, ids, v, 0, NULL, NULL, NULL, &e) != QV_OK) {
        fprintf(stderr, "upsert_ack: %s: %s\n", argv[first + t], e.msg);
        return 1;
      }
      lat[t][i] = (now_s() - t0) * 1e3;
    }
  printf("upsert_ack: dim %zu, batch %zu rows per call, %zu calls per target, one call in flight, "
         "targets alternating\n",
         dim, batch, calls);
  printf("%-40s %10s %10s %10s %12s\n", "target=collection", "p50 ms", "p99 ms", "mean ms",
         "rows/s");
  for (int t = 0; t < nt; t++) {
    double sum = 0;
    for (size_t i = 0; i < calls; i++)
      sum += lat[t][i];
    qsort(lat[t], calls, sizeof **lat, cmp_d);
    printf("%-40s %10.3f %10.3f %10.3f %12.0f\n", argv[first + t], lat[t][calls / 2],
           lat[t][calls * 99 / 100], sum / (double)calls, (double)(calls * batch) / (sum / 1e3));
    qv_client_close(cl[t]);
  }
  return 0;
}
