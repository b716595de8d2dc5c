/* quiver — the command-line tool.
 *
 *   quiver index build  --input FILE --spec SPEC --metric M --out DIR [--ids FILE] ...
 *   quiver index search --index DIR --queries FILE --k K [--nprobe N] [--groundtruth FILE] [--json]
 *   quiver index info   --index DIR [--json]
 *
 * Offline index work for ML engineers: no server needed. Errors go to stderr as
 * "quiver: <status>: <message>" with exit code 1 (2 for a usage error). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quiver/collection.h"
#include "quiver/fsutil.h"
#include "quiver/shard.h"
#include "quiver/synth.h"
#include "quiver/vecfile.h"

#include "common.h"

/* ---- index build ------------------------------------------------------------------------- */

static const char *kBuildHelp =
    "usage: quiver index build --input FILE --out DIR [options]\n"
    "  --input FILE         embeddings: .fvecs, .bvecs or .npy (float32/float16/uint8, 2-D)\n"
    "  --out DIR            collection directory to write (created; a new version if it exists)\n"
    "  --spec SPEC          Flat | IVF<n>,Flat | IVF<n>,SQ8 | IVF<n>,PQ<m> (default IVF64,Flat)\n"
    "  --metric M           l2 | ip | cosine (default l2)\n"
    "  --ids FILE           ids (.npy int64/int32 or .ivecs), one per row (default: row number)\n"
    "  --default-nprobe N   nprobe used when a search asks for 0 (default 16)\n"
    "  --train-sample N     most vectors used to train (default 256 per list)\n"
    "  --seed N             seed of the training sample (default 1234)\n"
    "  --target-recall R    pick the smallest nprobe whose recall@10 on a sample reaches R\n"
    "                       (0 < R <= 1) and store it as the default nprobe\n"
    "  --recall-floor R     fail (nothing written) when recall@10 on the sample is below R\n"
    "  --shards S           split the rows over S shards by the fleet's id hash: one directory\n"
    "                       per shard, OUT/shard0 .. OUT/shard<S-1> (for quiver rollout)\n";

/* --shards S: the rows split by the fleet's id hash (quiver/shard.h), one collection directory
 * per shard (OUT/shard0 .. OUT/shard<S-1>), each built alone: what `quiver rollout` pushes to
 * each shard's replicas. */
static int build_shards(const char *input, const char *out, const char *ids_path,
                        const qv_collection_opts *co_in, const qv_build_opts *bo, uint32_t S) {
  qv_error e = {0};
  qv_vecfile *in = NULL, *idf = NULL;
  qv_collection **cols = calloc(S, sizeof *cols);
  float *buf = NULL, *part = NULL;
  int64_t *idbuf = NULL, *pid = NULL;
  int rc = 1;
  cli_progress pr;
  cli_progress_init(&pr);
  const double t0 = qv_monotonic_s();
  if (cols == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    goto done;
  }
  if (qv_vecfile_open(&in, input, &e) != QV_OK)
    goto done;
  const size_t n = qv_vecfile_rows(in), d = qv_vecfile_cols(in);
  if (n == 0) {
    qv_error_set(&e, QV_EINVAL, "%s holds no vectors", input);
    goto done;
  }
  if (ids_path != NULL && cli_open_ids(&idf, ids_path, input, n, &e) != QV_OK)
    goto done;
  qv_collection_opts co = *co_in;
  co.dim = d;
  for (uint32_t k = 0; k < S; k++)
    if (qv_collection_create(&cols[k], &co, &e) != QV_OK)
      goto done;
  const size_t chunk = 65536;
  buf = malloc(chunk * d * sizeof(float));
  part = malloc(chunk * d * sizeof(float));
  idbuf = malloc(chunk * sizeof(int64_t));
  pid = malloc(chunk * sizeof(int64_t));
  if (buf == NULL || part == NULL || idbuf == NULL || pid == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t off = 0; off < n; off += chunk) {
    const size_t m = n - off < chunk ? n - off : chunk;
    cli_progress_cb(&pr, "load", off, n);
    if (cli_read_rows(in, idf, off, m, buf, idbuf, &e) != QV_OK)
      goto done;
    for (uint32_t k = 0; k < S; k++) {
      size_t pm = 0;
      for (size_t i = 0; i < m; i++)
        if (qv_shard_of(idbuf[i], S) == k) {
          memcpy(part + pm * d, buf + i * d, d * sizeof(float));
          pid[pm++] = idbuf[i];
        }
      qv_status ast = pm ? qv_collection_add(cols[k], pm, pid, part, &e) : QV_OK;
      if (ast != QV_OK) {
        qv_error_prefix(&e, ast, "%s (rows %zu..%zu, shard %u)", input, off, off + m - 1, k);
        goto done;
      }
    }
  }
  cli_progress_cb(&pr, "load", n, n);
  for (uint32_t k = 0; k < S; k++) {
    char dir[QV_PATH_MAX];
    qv_build_report rep;
    if (qv_path_fmt(dir, &e, "%s/shard%u", out, k) != QV_OK ||
        qv_collection_build_ex(cols[k], bo, cli_progress_cb, &pr, &rep, &e) != QV_OK ||
        qv_collection_save(cols[k], dir, &e) != QV_OK) {
      qv_error_prefix(&e, e.code, "shard %u", k);
      goto done;
    }
    qv_collection_stats st;
    qv_collection_stats_get(cols[k], &st, NULL);
    printf("shard %u: %s (%s) over %" PRIu64 " vectors of dim %zu", k, st.spec,
           qv_metric_name(st.metric), st.count, st.dim);
    if (rep.recall >= 0)
      printf(", recall@%u %.4f at nprobe %u", rep.recall_k, rep.recall, rep.recall_nprobe);
    printf(" -> %s\n", dir);
  }
  printf("built %u shard(s) of %zu vectors in %.2f s -> %s/shard0 .. shard%u (split by the "
         "fleet's id hash: quiver rollout NAME --index %s)\n",
         S, n, qv_monotonic_s() - t0, out, S - 1, out);
  rc = 0;
done:
  if (rc != 0)
    cli_fail(&e);
  for (uint32_t k = 0; cols != NULL && k < S; k++)
    qv_collection_close(cols[k]);
  free(cols);
  free(buf);
  free(part);
  free(idbuf);
  free(pid);
  qv_vecfile_close(in);
  qv_vecfile_close(idf);
  return rc;
}

static int cmd_build(int argc, char **argv) {
  static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                       {"out", required_argument, 0, 'o'},
                                       {"spec", required_argument, 0, 's'},
                                       {"metric", required_argument, 0, 'm'},
                                       {"ids", required_argument, 0, 'I'},
                                       {"default-nprobe", required_argument, 0, 'n'},
                                       {"train-sample", required_argument, 0, 't'},
                                       {"seed", required_argument, 0, 'S'},
                                       {"target-recall", required_argument, 0, 'T'},
                                       {"recall-floor", required_argument, 0, 'F'},
                                       {"shards", required_argument, 0, 'X'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *input = NULL, *out = NULL, *ids_path = NULL;
  uint64_t shards = 1;
  qv_collection_opts co;
  qv_collection_opts_init(&co);
  co.spec = "IVF64,Flat";
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  qv_build_report rep;
  qv_error e = {0};
  uint64_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      input = optarg;
      break;
    case 'o':
      out = optarg;
      break;
    case 's':
      co.spec = optarg;
      break;
    case 'm':
      if (qv_metric_parse(optarg, &co.metric, &e) != QV_OK)
        return cli_fail(&e);
      break;
    case 'I':
      ids_path = optarg;
      break;
    case 'n':
      if (cli_parse_u64(optarg, QV_MAX_NLIST, &v) || v == 0)
        return cli_usage_error("--default-nprobe must be 1..65536, not '%s'", optarg);
      co.default_nprobe = (uint32_t)v;
      break;
    case 't':
      if (cli_parse_u64(optarg, SIZE_MAX, &v))
        return cli_usage_error("--train-sample must be a non-negative integer, not '%s'", optarg);
      co.train_sample = v;
      break;
    case 'S':
      if (cli_parse_u64(optarg, UINT64_MAX, &v))
        return cli_usage_error("--seed must be a non-negative integer, not '%s'", optarg);
      co.seed = v;
      break;
    case 'T':
      if (cli_parse_recall(optarg, &bo.target_recall))
        return cli_usage_error("--target-recall takes a recall in (0, 1], not '%s'", optarg);
      break;
    case 'F':
      if (cli_parse_recall(optarg, &bo.recall_floor))
        return cli_usage_error("--recall-floor takes a recall in (0, 1], not '%s'", optarg);
      break;
    case 'X':
      if (cli_parse_u64(optarg, 256, &shards) || shards == 0)
        return cli_usage_error("--shards must be 1..256, not '%s'", optarg);
      break;
    case 'h':
      fputs(kBuildHelp, stdout);
      return 0;
    default:
      fputs(kBuildHelp, stderr);
      return EXIT_USAGE;
    }
  }
  if (input == NULL || out == NULL)
    return cli_usage_error("index build needs --input and --out%s", "");
  if (shards > 1)
    return build_shards(input, out, ids_path, &co, &bo, (uint32_t)shards);

  qv_vecfile *in = NULL, *idf = NULL;
  qv_collection *col = NULL;
  float *buf = NULL;
  int64_t *idbuf = NULL;
  int rc = 1;
  cli_progress pr;
  cli_progress_init(&pr);
  double t0 = qv_monotonic_s();
  if (qv_vecfile_open(&in, input, &e) != QV_OK)
    goto done;
  size_t n = qv_vecfile_rows(in), d = qv_vecfile_cols(in);
  if (n == 0) {
    qv_error_set(&e, QV_EINVAL, "%s holds no vectors", input);
    goto done;
  }
  if (ids_path != NULL && cli_open_ids(&idf, ids_path, input, n, &e) != QV_OK)
    goto done;
  co.dim = d;
  if (qv_collection_create(&col, &co, &e) != QV_OK)
    goto done;
  const size_t chunk = 65536;
  buf = malloc(chunk * d * sizeof(float));
  idbuf = malloc(chunk * sizeof(int64_t));
  if (buf == NULL || idbuf == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t off = 0; off < n; off += chunk) {
    size_t m = n - off < chunk ? n - off : chunk;
    cli_progress_cb(&pr, "load", off, n);
    if (cli_read_rows(in, idf, off, m, buf, idbuf, &e) != QV_OK)
      goto done;
    qv_status ast = qv_collection_add(col, m, idbuf, buf, &e);
    if (ast != QV_OK) {
      qv_error_prefix(&e, ast, "%s (rows %zu..%zu)", input, off, off + m - 1);
      goto done;
    }
  }
  cli_progress_cb(&pr, "load", n, n);
  double t_build = qv_monotonic_s();
  if (qv_collection_build_ex(col, &bo, cli_progress_cb, &pr, &rep, &e) != QV_OK)
    goto done;
  t_build = qv_monotonic_s() - t_build;
  if (qv_collection_save(col, out, &e) != QV_OK)
    goto done;
  qv_collection_stats st;
  qv_collection_stats_get(col, &st, NULL);
  printf("built %s (%s) over %" PRIu64 " vectors of dim %zu in %.2f s (train+add+evaluate "
         "%.2f s) -> %s\n",
         st.spec, qv_metric_name(st.metric), st.count, st.dim, qv_monotonic_s() - t0, t_build, out);
  if (rep.recall >= 0)
    printf("recall@%u on %u stored vectors as queries: %.4f at nprobe %u%s\n", rep.recall_k,
           rep.eval_queries, rep.recall, rep.recall_nprobe,
           rep.tuned_nprobe ? (rep.target_reached ? " (tuned: the default nprobe)"
                                                  : " (target not reached even at nlist)")
                            : "");
  printf("memory: vectors %.1f MiB, index %.1f MiB\n", st.vector_bytes / 1048576.0,
         st.index_bytes / 1048576.0);
  rc = 0;
done:
  if (rc != 0)
    cli_fail(&e);
  free(buf);
  free(idbuf);
  qv_collection_close(col);
  qv_vecfile_close(in);
  qv_vecfile_close(idf);
  return rc;
}

/* ---- index search ------------------------------------------------------------------------ */

static const char *kSearchHelp =
    "usage: quiver index search --index DIR --queries FILE --k K [options]\n"
    "  --index DIR          collection directory (from 'quiver index build')\n"
    "  --queries FILE       queries: .fvecs, .bvecs or .npy\n"
    "  --k K                results per query (default 10)\n"
    "  --nprobe N           IVF lists to probe (default: the collection's default)\n"
    "  --groundtruth FILE   true neighbours (.ivecs or .npy ints, >= k per row): report recall@k\n"
    "  --exact              brute-force search over the stored vectors instead of the index\n"
    "  --batch B            queries per search call (default: all in one call)\n"
    "  --threads T          OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --repeat R           run the whole query set R times and report the median QPS (default 1)\n"
    "  --output FILE        write result ids (.npy int64 or .ivecs)\n"
    "  --json               print one JSON object instead of text\n";

static int cmd_search(int argc, char **argv) {
  static const struct option opts[] = {{"index", required_argument, 0, 'x'},
                                       {"queries", required_argument, 0, 'q'},
                                       {"k", required_argument, 0, 'k'},
                                       {"nprobe", required_argument, 0, 'n'},
                                       {"groundtruth", required_argument, 0, 'g'},
                                       {"exact", no_argument, 0, 'E'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"threads", required_argument, 0, 't'},
                                       {"repeat", required_argument, 0, 'r'},
                                       {"output", required_argument, 0, 'o'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *index = NULL, *queries = NULL, *gt_path = NULL, *output = NULL;
  uint64_t k = 10, nprobe = 0, batch = 0, threads = 0, repeat = 1;
  int json = 0, exact = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'x':
      index = optarg;
      break;
    case 'q':
      queries = optarg;
      break;
    case 'k':
      if (cli_parse_u64(optarg, QV_MAX_K, &k) || k == 0)
        return cli_usage_error("--k must be 1..65536, not '%s'", optarg);
      break;
    case 'n':
      if (cli_parse_u64(optarg, QV_MAX_NLIST, &nprobe) || nprobe == 0)
        return cli_usage_error("--nprobe must be 1..65536, not '%s'", optarg);
      break;
    case 'g':
      gt_path = optarg;
      break;
    case 'E':
      exact = 1;
      break;
    case 'b':
      if (cli_parse_u64(optarg, SIZE_MAX, &batch) || batch == 0)
        return cli_usage_error("--batch must be a positive integer, not '%s'", optarg);
      break;
    case 't':
      if (cli_parse_u64(optarg, 1024, &threads) || threads == 0)
        return cli_usage_error("--threads must be 1..1024, not '%s'", optarg);
      break;
    case 'r':
      if (cli_parse_u64(optarg, 1000, &repeat) || repeat == 0)
        return cli_usage_error("--repeat must be 1..1000, not '%s'", optarg);
      break;
    case 'o':
      output = optarg;
      break;
    case 'j':
      json = 1;
      break;
    case 'h':
      fputs(kSearchHelp, stdout);
      return 0;
    default:
      fputs(kSearchHelp, stderr);
      return EXIT_USAGE;
    }
  }
  if (index == NULL || queries == NULL)
    return cli_usage_error("index search needs --index and --queries%s", "");
  if (threads > 0)
    omp_set_num_threads((int)threads);

  qv_error e = {0};
  qv_collection *col = NULL;
  qv_vecfile *qf = NULL;
  float *q = NULL, *scores = NULL;
  int64_t *ids = NULL, *gt = NULL;
  size_t gk = 0;
  double *times = NULL;
  int rc = 1;
  if (qv_collection_open(&col, index, &e) != QV_OK)
    goto done;
  qv_collection_stats st;
  qv_collection_stats_get(col, &st, NULL);
  if (qv_vecfile_open(&qf, queries, &e) != QV_OK)
    goto done;
  size_t n = qv_vecfile_rows(qf), d = qv_vecfile_cols(qf);
  if (n == 0) {
    qv_error_set(&e, QV_EINVAL, "%s holds no queries", queries);
    goto done;
  }
  if (d != st.dim) {
    qv_error_set(&e, QV_EINVAL, "%s has dimension %zu but the collection %s has %zu", queries, d,
                 index, st.dim);
    goto done;
  }
  if (st.nlist > 0 && nprobe > st.nlist) {
    qv_error_set(&e, QV_EINVAL, "--nprobe %" PRIu64 " exceeds nlist %u of %s", nprobe, st.nlist,
                 st.spec);
    goto done;
  }
  q = malloc(n * d * sizeof(float));
  scores = malloc(n * k * sizeof(float));
  ids = malloc(n * k * sizeof(int64_t));
  times = malloc(repeat * sizeof(double));
  if (!q || !scores || !ids || !times) {
    qv_error_set(&e, QV_ENOMEM, "out of memory for %zu queries", n);
    goto done;
  }
  if (qv_vecfile_read_f32(qf, 0, n, q, &e) != QV_OK)
    goto done;
  if (gt_path != NULL &&
      cli_read_groundtruth(gt_path, n, k, "need at least %zu x %zu", &gt, &gk, &e) != QV_OK)
    goto done;
  size_t b = batch ? (batch < n ? batch : n) : n;
  qv_search_params sp = {.k = k, .nprobe = (uint32_t)nprobe};
  for (uint64_t r = 0; r < repeat; r++) {
    double t0 = qv_monotonic_s();
    for (size_t off = 0; off < n; off += b) {
      size_t m = n - off < b ? n - off : b;
      qv_status s = exact ? qv_collection_search_exact(col, q + off * d, m, &sp, scores + off * k,
                                                       ids + off * k, &e)
                          : qv_collection_search(col, q + off * d, m, &sp, scores + off * k,
                                                 ids + off * k, &e);
      if (s != QV_OK)
        goto done;
    }
    times[r] = qv_monotonic_s() - t0;
  }
  cli_sort_doubles(times, repeat);
  double med = times[repeat / 2];
  double qps = med > 0 ? (double)n / med : INFINITY;
  double recall = gt != NULL ? qv_recall_at_k(ids, gt, gk, n, k) : -1.0;
  if (output != NULL && cli_write_ids(output, ids, n, k, &e) != QV_OK)
    goto done;
  uint32_t eff_nprobe = st.nlist == 0                  ? 0
                        : nprobe                       ? (uint32_t)nprobe
                        : st.default_nprobe < st.nlist ? st.default_nprobe
                                                       : st.nlist;
  int nthreads = omp_get_max_threads();
  if (json) {
    printf("{\"index\": \"%s\", \"spec\": \"%s\", \"metric\": \"%s\", \"n_queries\": %zu, "
           "\"k\": %" PRIu64 ", \"nprobe\": %u, \"exact\": %s, \"batch\": %zu, \"threads\": %d, "
           "\"repeat\": %" PRIu64 ", \"seconds\": %.6f, \"qps\": %.1f",
           index, st.spec, qv_metric_name(st.metric), n, k, eff_nprobe, exact ? "true" : "false", b,
           nthreads, repeat, med, qps);
    printf(", \"recall_at_k\": ");
    cli_print_json_recall(recall);
    printf("}\n");
  } else {
    printf("%s %s (%s), %zu queries, k=%" PRIu64 ", nprobe=%u, batch=%zu, threads=%d\n",
           exact ? "exact search over" : "searched", st.spec, qv_metric_name(st.metric), n, k,
           eff_nprobe, b, nthreads);
    printf("  %.1f queries/s (median of %" PRIu64 ", %.3f s per pass)\n", qps, repeat, med);
    cli_print_results(recall, k, ids, scores, output == NULL && n > 0);
  }
  rc = 0;
done:
  if (rc != 0)
    cli_fail(&e);
  qv_collection_close(col);
  qv_vecfile_close(qf);
  free(q);
  free(scores);
  free(ids);
  free(gt);
  free(times);
  return rc;
}

/* ---- index info -------------------------------------------------------------------------- */

static int cmd_info(int argc, char **argv) {
  static const struct option opts[] = {{"index", required_argument, 0, 'x'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *index = NULL;
  int json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'x':
      index = optarg;
      break;
    case 'j':
      json = 1;
      break;
    case 'h':
      printf("usage: quiver index info --index DIR [--json]\n");
      return 0;
    default:
      return EXIT_USAGE;
    }
  }
  if (index == NULL)
    return cli_usage_error("index info needs --index DIR%s", "");
  qv_error e = {0};
  qv_collection *col = NULL;
  if (qv_collection_open(&col, index, &e) != QV_OK)
    return cli_fail(&e);
  qv_collection_stats s;
  qv_collection_stats_get(col, &s, NULL);
  if (json) {
    printf("{\"index\": \"%s\", \"spec\": \"%s\", \"metric\": \"%s\", \"dim\": %zu, "
           "\"count\": %" PRIu64 ", \"indexed\": %" PRIu64 ", \"trained\": %s, \"nlist\": %u, "
           "\"default_nprobe\": %u, \"vector_bytes\": %" PRIu64 ", \"index_bytes\": %" PRIu64
           ", \"build_version\": %" PRIu64 "}\n",
           index, s.spec, qv_metric_name(s.metric), s.dim, s.count, s.indexed,
           s.trained ? "true" : "false", s.nlist, s.default_nprobe, s.vector_bytes, s.index_bytes,
           s.version);
  } else {
    printf("collection %s\n  spec %s, metric %s, dim %zu\n  %" PRIu64 " vectors (%" PRIu64
           " indexed, %s)\n  nlist %u, default nprobe %u\n  memory: vectors %.1f MiB, index "
           "%.1f MiB\n  build version %" PRIu64 "\n",
           index, s.spec, qv_metric_name(s.metric), s.dim, s.count, s.indexed,
           s.trained ? "built" : "not built", s.nlist, s.default_nprobe, s.vector_bytes / 1048576.0,
           s.index_bytes / 1048576.0, s.version);
  }
  qv_collection_close(col);
  return 0;
}

/* ---- data synth -------------------------------------------------------------------------- */

static const char *kSynthHelp =
    "usage: quiver data synth --out PREFIX [options]\n"
    "Writes a seeded mixture of Gaussians with exact ground truth:\n"
    "  PREFIX_base.fvecs, PREFIX_query.fvecs, PREFIX_groundtruth.ivecs (100 nearest, L2)\n"
    "  --n N           base vectors (default 100000)\n"
    "  --queries Q     query vectors (default 1000)\n"
    "  --dim D         dimension (default 128)\n"
    "  --clusters C    mixture components (default 256)\n"
    "  --seed S        seed (default 42)\n";

static int cmd_synth(int argc, char **argv) {
  static const struct option opts[] = {
      {"out", required_argument, 0, 'o'},      {"n", required_argument, 0, 'n'},
      {"queries", required_argument, 0, 'q'},  {"dim", required_argument, 0, 'd'},
      {"clusters", required_argument, 0, 'c'}, {"seed", required_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  const char *prefix = NULL;
  uint64_t n = 100000, nq = 1000, d = 128, nc = 256, seed = 42;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    uint64_t *dst = c == 'n' ? &n : c == 'q' ? &nq : c == 'd' ? &d : c == 'c' ? &nc : &seed;
    switch (c) {
    case 'o':
      prefix = optarg;
      break;
    case 'n':
    case 'q':
    case 'd':
    case 'c':
    case 's':
      if (cli_parse_u64(optarg, c == 'd' ? QV_MAX_DIM : (uint64_t)1 << 32, dst) ||
          (c != 's' && *dst == 0))
        return cli_usage_error("data synth: bad number '%s'", optarg);
      break;
    case 'h':
      fputs(kSynthHelp, stdout);
      return 0;
    default:
      fputs(kSynthHelp, stderr);
      return EXIT_USAGE;
    }
  }
  if (prefix == NULL)
    return cli_usage_error("data synth needs --out PREFIX%s", "");
  if (strlen(prefix) > 4000)
    return cli_usage_error("data synth: --out is too long%s", "");
  qv_error e = {0};
  int rc = 1;
  const size_t k = nq ? 100 : 0;
  float *base = malloc(n * d * sizeof(float));
  float *q = malloc(nq * d * sizeof(float));
  float *sc = malloc(nq * k * sizeof(float));
  int64_t *ids = malloc(nq * k * sizeof(int64_t));
  int32_t *gt = malloc(nq * k * sizeof(int32_t));
  qv_collection *col = NULL;
  char path[QV_PATH_MAX];
  if (!base || !q || !sc || !ids || !gt) {
    qv_error_set(&e, QV_ENOMEM, "out of memory for %" PRIu64 " x %" PRIu64, n, d);
    goto done;
  }
  /* Base and queries come from one draw, so they share the mixture's centres. */
  float *all = malloc((n + nq) * d * sizeof(float));
  if (all == NULL || qv_synth_mixture(all, n + nq, d, nc, seed) != 0) {
    free(all);
    qv_error_set(&e, QV_ENOMEM, "out of memory for %" PRIu64 " x %" PRIu64, n + nq, d);
    goto done;
  }
  memcpy(base, all, n * d * sizeof(float));
  memcpy(q, all + n * d, nq * d * sizeof(float));
  free(all);
  qv_path_fmt(path, NULL, "%s_base.fvecs", prefix);
  if (qv_fvecs_write(path, n, d, base, &e) != QV_OK)
    goto done;
  qv_path_fmt(path, NULL, "%s_query.fvecs", prefix);
  if (qv_fvecs_write(path, nq, d, q, &e) != QV_OK)
    goto done;
  /* Exact ground truth through the project's own exact search (ties: smaller id). */
  qv_collection_opts co;
  qv_collection_opts_init(&co);
  co.dim = d;
  co.spec = "Flat";
  int64_t *rowids = (int64_t *)malloc(n * sizeof(int64_t));
  if (rowids == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    rowids[i] = (int64_t)i;
  qv_status st = qv_collection_create(&col, &co, &e);
  if (st == QV_OK)
    st = qv_collection_add(col, n, rowids, base, &e);
  free(rowids);
  if (st != QV_OK)
    goto done;
  size_t kk = k < n ? k : n;
  qv_search_params sp = {.k = kk, .nprobe = 0};
  if (qv_collection_search_exact(col, q, nq, &sp, sc, ids, &e) != QV_OK)
    goto done;
  for (size_t i = 0; i < nq * kk; i++)
    gt[i] = (int32_t)ids[i];
  qv_path_fmt(path, NULL, "%s_groundtruth.ivecs", prefix);
  if (qv_ivecs_write(path, nq, kk, gt, &e) != QV_OK)
    goto done;
  printf("wrote %s_{base,query}.fvecs (%" PRIu64 " + %" PRIu64 " x %" PRIu64 ", %" PRIu64
         " clusters, seed %" PRIu64 ") and %s_groundtruth.ivecs (k=%zu, L2)\n",
         prefix, n, nq, d, nc, seed, prefix, kk);
  rc = 0;
done:
  if (rc != 0)
    cli_fail(&e);
  qv_collection_close(col);
  free(base);
  free(q);
  free(sc);
  free(ids);
  free(gt);
  return rc;
}

static const char *kHelp =
    "usage: quiver <command> [options]\n"
    "\n"
    "Offline index work (no server needed):\n"
    "  quiver index build  --input FILE --spec SPEC --metric M --out DIR [--ids FILE]\n"
    "  quiver index search --index DIR --queries FILE --k K [--nprobe N] [--groundtruth FILE]\n"
    "                      [--json]\n"
    "  quiver index info   --index DIR [--json]\n"
    "\n"
    "Data:\n"
    "  quiver data synth   --out PREFIX [--n N] [--queries Q] [--dim D] [--clusters C]\n"
    "\n"
    "'quiver index <command> --help' lists every option.\n";

int cli_server_main(int argc, char **argv);
void cli_print_server_help(FILE *f);

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fputs(kHelp, f);
    fputc('\n', f);
    cli_print_server_help(f);
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("quiver 0.1.0\n");
    return 0;
  }
  if (!strcmp(argv[1], "index")) {
    if (argc < 3)
      return cli_usage_error("'quiver index' needs build, search or info%s", "");
    if (!strcmp(argv[2], "build"))
      return cmd_build(argc - 2, argv + 2);
    if (!strcmp(argv[2], "search"))
      return cmd_search(argc - 2, argv + 2);
    if (!strcmp(argv[2], "info"))
      return cmd_info(argc - 2, argv + 2);
    return cli_usage_error("unknown index command '%s' (build, search, info)", argv[2]);
  }
  if (!strcmp(argv[1], "data")) {
    if (argc >= 3 && !strcmp(argv[2], "synth"))
      return cmd_synth(argc - 2, argv + 2);
    return cli_usage_error("'quiver data' knows: synth%s", "");
  }
  return cli_server_main(argc, argv);
}
