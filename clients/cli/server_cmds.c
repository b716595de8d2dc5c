/* quiver's server commands: talk to a running quiverd through libquiver_client.
 *
 *   quiver [--server HOST:PORT] [--timeout S] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
 *          [--token TOKEN] create|drop|list|describe|upsert|delete|build|push|search|get|bench|
 *          health|cluster status
 * ... The server comes from --server, else $QUIVER_SERVER, else 127.0.0.1:7070; the token from
 * --token, else $QUIVER_TOKEN; TLS files from the flags, else $QUIVER_TLS_CA/_CERT/_KEY. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attrs_file.h"
#include "common.h"
#include "quiver/client.h"
#include "quiver/fsutil.h"

typedef struct global {
  const char *server;
  uint64_t timeout_s;
  int timeout_given; /* --timeout was on the command line */
  const char *tls_ca, *tls_cert, *tls_key, *token;
} global;

static const char *kServerHelp =
    "Server commands (--server HOST:PORT or $QUIVER_SERVER, default 127.0.0.1:7070;\n"
    "                 --timeout SECONDS per call, default 30; --tls-ca FILE for a TLS server,\n"
    "                 with --tls-cert FILE --tls-key FILE for mutual TLS ($QUIVER_TLS_CA, ...);\n"
    "                 --token TOKEN or $QUIVER_TOKEN for a server with --auth-tokens):\n"
    "  quiver create NAME --dim D [--metric l2|ip|cosine] [--spec SPEC] [--nprobe N | --ef N]\n"
    "                [--train-sample N] [--features F] [--device auto|cpu|gpu]\n"
    "                [--deferred-deletes] [--shards S] [--replicas R]   (S, R > 1: a router)\n"
    "                [--attr NAME:TYPE ...]   (item attributes for filters; TYPE int64, float,\n"
    "                bool, keyword or tags; repeat the flag, at most 32)\n"
    "  quiver drop NAME\n"
    "  quiver list [--json]\n"
    "  quiver describe NAME [--json]\n"
    "  quiver upsert NAME --input FILE [--ids FILE] [--features FILE] [--chunk-mb N]\n"
    "                [--attrs FILE]   (JSON Lines, one object per vector in order, e.g.\n"
    "                {\"category\": 3, \"price\": 9.5, \"tags\": [\"summer\"]}; absent keys:\n"
    "                the attribute's default)\n"
    "  quiver delete NAME (--ids 1,2,3 | --ids-file FILE)\n"
    "  quiver build NAME [--recall-floor R] [--target-recall R] [--eval-queries N]\n"
    "                [--eval-k K] [--timeout SECONDS]\n"
    "  quiver push NAME (--index DIR | --server-path DIR) [--create] [--recall-floor R]\n"
    "                [--target-recall R] [--eval-queries N] [--eval-k K] [--chunk-mb N]\n"
    "                [--stage [--version N]]   (held beside the serving version: rollout)\n"
    "  quiver rollout NAME (--index DIR | --server-path DIR) [--version N] [--recall-floor R]\n"
    "                [--target-recall R] [...push options]   (stage, then flip to it)\n"
    "  quiver rollout NAME (--flip [--version N] | --abort | --release | --status)\n"
    "  quiver rollback NAME              (serve the previous version again)\n"
    "  quiver search NAME (--queries FILE | --ids 1,2,3 | --ids-file FILE [--include-self])\n"
    "                [--k K] [--nprobe N | --ef N] [--exact] [--batch B]   (--ef: HNSW efSearch)\n"
    "                [--groundtruth FILE] [--json] [--output FILE] [--allow-partial]\n"
    "                [--version N]                 (a data version held beside the serving one)\n"
    "                [--candidates K'] [--refine] [--mmr LAMBDA] [--weights W0,W1,..]\n"
    "                [--allow 1,2,...] [--deny 1,2,...]      (the rerank stage)\n"
    "                [--filter EXPR [--filter-path auto|exact|index]]   (only items whose\n"
    "                attributes match, e.g. 'category in (3, 7) and price < 20 and not\n"
    "                sold_out and tags has \"summer\"')\n"
    "  quiver get NAME (--ids 1,2,3 | --ids-file FILE) [--fields vector,features,attributes]\n"
    "                [--json]\n"
    "  quiver health [--service NAME]\n"
    "  quiver health --watch [--service NAME] [--timeout S]   (a line per status change, until\n"
    "                the server ends the stream or S seconds pass; no --timeout: no deadline)\n"
    "  quiver cluster status [--json]      (a router: nodes, and every shard's replicas)\n"
    "  quiver bench NAME --queries FILE [--groundtruth FILE] [--k K] [--nprobe N]\n"
    "                [--concurrency C] [--batch B] [--duration S] [--rate R] [--warmup S]\n"
    "                [--threads T] [--json]               (load generator: quiver bench --help)\n";

int cli_bench_main(int argc, char **argv, const qv_client_opts *conn);

void cli_print_server_help(FILE *f) {
  fputs(kServerHelp, f);
}

/* Options every server command accepts, besides its own. */
enum { OPT_SERVER = 1000, OPT_TIMEOUT, OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TOKEN };

/* --timeout SECONDS: 0, or EXIT_USAGE after the message. */
static int set_timeout(global *g, const char *s) {
  if (cli_parse_u64(s, 86400, &g->timeout_s) || g->timeout_s == 0)
    return cli_usage_error("--timeout must be 1..86400 seconds, not '%s'", s);
  g->timeout_given = 1;
  return 0;
}

static int take_recall(int c, qv_client_build_opts *o);

/* Takes c when it is a global option, or with recall set one of build's and push's recall
 * options. Returns 1 when it took c, 0 when not, -1 after a usage message. */
static int take_global(int c, global *g, qv_client_build_opts *recall) {
  switch (c) {
  case OPT_SERVER:
    g->server = optarg;
    return 1;
  case OPT_TLS_CA:
    g->tls_ca = optarg;
    return 1;
  case OPT_TLS_CERT:
    g->tls_cert = optarg;
    return 1;
  case OPT_TLS_KEY:
    g->tls_key = optarg;
    return 1;
  case OPT_TOKEN:
    g->token = optarg;
    return 1;
  case OPT_TIMEOUT:
    return set_timeout(g, optarg) ? -1 : 1;
  }
  return recall != NULL ? take_recall(c, recall) : 0;
}

/* The connection the global options name (no --server: the client's default target). */
static void client_opts(const global *g, qv_client_opts *o) {
  qv_client_opts_init(o);
  if (g->server)
    o->target = g->server;
  o->timeout_ms = (int64_t)g->timeout_s * 1000;
  o->tls_ca = g->tls_ca;
  o->tls_cert = g->tls_cert;
  o->tls_key = g->tls_key;
  o->token = g->token;
}

static int connect_to(const global *g, qv_client **c) {
  qv_client_opts o;
  client_opts(g, &o);
  qv_error e = {0};
  if (qv_client_connect(c, &o, &e) != QV_OK)
    return cli_fail_remote(&e);
  return 0;
}

static void print_version(const qv_version_info *v) {
  printf("  %s version %" PRIu64 ": %" PRIu64 " vectors, %.1f MiB", v->state, v->version, v->count,
         v->memory_bytes / 1048576.0);
  if (v->recall >= 0)
    printf(", recall@%u %.4f at nprobe %u", v->recall_k, v->recall, v->recall_nprobe);
  printf("\n");
}

static void print_info(const qv_collection_info *i, int json) {
  if (json) {
    printf("{\"name\": \"%s\", \"dim\": %u, \"metric\": \"%s\", \"spec\": \"%s\", \"state\": "
           "\"%s\", \"count\": %" PRIu64 ", \"indexed\": %" PRIu64 ", \"nlist\": %u, "
           "\"default_nprobe\": %u, \"default_ef_search\": %u, \"memory_bytes\": %" PRIu64
           ", \"vector_bytes\": %" PRIu64 ", \"index_bytes\": %" PRIu64
           ", \"index_version\": %" PRIu64 ", \"n_features\": %u, "
           "\"device\": \"%s\", \"gpu\": %d, \"device_bytes\": %" PRIu64
           ", \"placement\": \"%s\", \"tombstones\": %" PRIu64 ", \"gpu_fallbacks\": %" PRIu64
           ", \"deferred_deletes\": %s, \"build_recall\": %.4f, \"build_recall_k\": %u, "
           "\"build_recall_nprobe\": %u, \"snapshot_version\": %" PRIu64 ", \"wal_bytes\": %" PRIu64
           ", \"wal_records\": %" PRIu64 ", \"batched_requests\": %" PRIu64
           ", \"batches\": %" PRIu64 ", \"batched_queries\": %" PRIu64
           ", \"batch_expired\": %" PRIu64 ", \"shards\": %u, \"replicas\": %u, "
           "\"version\": %" PRIu64 ", \"versions\": [",
           i->name, i->dim, qv_metric_name(i->metric), i->index_spec,
           qv_collection_state_name(i->state), i->count, i->indexed, i->nlist, i->default_nprobe,
           i->default_ef_search, i->memory_bytes, i->vector_bytes, i->index_bytes, i->index_version,
           i->n_features, qv_device_name(i->device), i->gpu, i->device_bytes, i->placement,
           i->tombstones, i->gpu_fallbacks, i->deferred_deletes ? "true" : "false", i->build_recall,
           i->build_recall_k, i->build_recall_nprobe, i->snapshot_version, i->wal_bytes,
           i->wal_records, i->batched_requests, i->batches, i->batched_queries, i->batch_expired,
           i->shards, i->replicas, i->version);
    if (i->beside.version != 0)
      printf("{\"version\": %" PRIu64 ", \"state\": \"%s\", \"count\": %" PRIu64
             ", \"memory_bytes\": %" PRIu64 ", \"recall\": %.4f, \"recall_k\": %u, "
             "\"recall_nprobe\": %u}",
             i->beside.version, i->beside.state, i->beside.count, i->beside.memory_bytes,
             i->beside.recall, i->beside.recall_k, i->beside.recall_nprobe);
    printf("], \"attributes\": [");
    for (size_t a = 0; a < i->n_attrs; a++) {
      const char *t = qv_client_attr_type_name(i->attrs[a].type);
      printf("%s{\"name\": \"", a ? ", " : "");
      cli_print_json_str(i->attrs[a].name);
      printf("\", \"type\": \"%s\"}", t ? t : "unknown");
    }
    printf("], \"attribute_bytes\": %" PRIu64 ", \"storage_note\": \"", i->attribute_bytes);
    cli_print_json_str(i->storage_note);
    printf("\"}");
    return;
  }
  char breadth[64];
  if (i->default_ef_search > 0)
    snprintf(breadth, sizeof breadth, "graph, default efSearch %u", i->default_ef_search);
  else
    snprintf(breadth, sizeof breadth, "nlist %u, default nprobe %u", i->nlist, i->default_nprobe);
  printf("%s: %s, %s, dim %u, %s\n  %" PRIu64 " vectors (%" PRIu64
         " indexed), %s\n  memory %.1f MiB (vectors %.1f, index %.1f), "
         "index version %" PRIu64 ", %u item feature(s)\n",
         i->name, i->index_spec, qv_metric_name(i->metric), i->dim,
         qv_collection_state_name(i->state), i->count, i->indexed, breadth,
         i->memory_bytes / 1048576.0, i->vector_bytes / 1048576.0, i->index_bytes / 1048576.0,
         i->index_version, i->n_features);
  if (i->shards > 1 || i->replicas > 1)
    printf("  fleet: %u shard(s) x %u replica(s) (quiver cluster status)\n", i->shards,
           i->replicas);
  if (i->n_attrs > 0) {
    printf("  attributes: ");
    cli_attrs_print_schema(i->attrs, i->n_attrs);
    printf(" (%.1f MiB)\n", i->attribute_bytes / 1048576.0);
  }
  printf("  data version %" PRIu64 "\n", i->version);
  if (i->beside.version != 0)
    print_version(&i->beside);
  printf("  device %s, serving from %s", qv_device_name(i->device), i->placement);
  if (i->gpu >= 0)
    printf(" (%.1f MiB of GPU memory)", i->device_bytes / 1048576.0);
  printf("\n");
  if (i->tombstones > 0 || i->deferred_deletes)
    printf("  %" PRIu64 " tombstone(s)%s\n", i->tombstones,
           i->deferred_deletes ? " (deferred deletes)" : "");
  if (i->build_recall >= 0)
    printf("  last build: recall@%u %.4f at %s %u\n", i->build_recall_k, i->build_recall,
           i->default_ef_search > 0 ? "efSearch" : "nprobe", i->build_recall_nprobe);
  printf("  snapshot v%06" PRIu64 ", write-ahead log %.1f MiB (%" PRIu64 " records)\n",
         i->snapshot_version, i->wal_bytes / 1048576.0, i->wal_records);
  if (i->batched_requests > 0)
    printf("  searches: %" PRIu64 " request(s) answered by %" PRIu64 " index search(es) of %" PRIu64
           " queries (%.1f per search), %" PRIu64 " expired while queued\n",
           i->batched_requests, i->batches, i->batched_queries,
           i->batches ? (double)i->batched_queries / (double)i->batches : 0.0, i->batch_expired);
  if (i->storage_note[0] != '\0')
    printf("  WARNING: %s\n", i->storage_note);
}

/* The recall options of build and push. Returns 1 when c was one of them, 0 when not, -1 after a
 * usage message. */
enum { OPT_FLOOR = 2000, OPT_TARGET, OPT_EVALQ, OPT_EVALK };
#define RECALL_OPTS                                                                                \
  {"recall-floor", required_argument, 0, OPT_FLOOR},                                               \
      {"target-recall", required_argument, 0, OPT_TARGET},                                         \
      {"eval-queries", required_argument, 0, OPT_EVALQ}, {                                         \
    "eval-k", required_argument, 0, OPT_EVALK                                                      \
  }

static int take_recall(int c, qv_client_build_opts *o) {
  uint64_t v;
  switch (c) {
  case OPT_FLOOR:
    if (cli_parse_recall(optarg, &o->recall_floor)) {
      cli_usage_error("--recall-floor takes a recall in (0, 1], not '%s'", optarg);
      return -1;
    }
    return 1;
  case OPT_TARGET:
    if (cli_parse_recall(optarg, &o->target_recall)) {
      cli_usage_error("--target-recall takes a recall in (0, 1], not '%s'", optarg);
      return -1;
    }
    return 1;
  case OPT_EVALQ:
  case OPT_EVALK:
    if (cli_parse_u64(optarg, c == OPT_EVALQ ? 100000 : 1024, &v) || v == 0) {
      cli_usage_error(c == OPT_EVALQ ? "--eval-queries must be 1..100000, not '%s'"
                                     : "--eval-k must be 1..1024, not '%s'",
                      optarg);
      return -1;
    }
    if (c == OPT_EVALQ)
      o->eval_queries = (uint32_t)v;
    else
      o->eval_k = (uint32_t)v;
    return 1;
  }
  return 0;
}

static void print_result(const char *what, double seconds, const qv_client_build_result *r) {
  printf("%s in %.2f s", what, seconds);
  if (r->recall >= 0)
    printf(": recall@%u %.4f at nprobe %u%s", r->recall_k, r->recall, r->recall_nprobe,
           r->tuned_nprobe ? " (tuned: the new default nprobe)" : "");
  if (r->caught_up > 0)
    printf(", %" PRIu64 " write(s) made during the build caught up", r->caught_up);
  printf("\n");
}

/* Parses the command's options (with recall, a qv_client_build_opts * or NULL, also the recall
 * options); the command's own cases go between PARSE_BEGIN and PARSE_END. */
#define PARSE_BEGIN(optstruct, recall)                                                             \
  int c;                                                                                           \
  optind = 1;                                                                                      \
  while ((c = getopt_long(argc, argv, "h", optstruct, NULL)) != -1) {                              \
    int t = take_global(c, g, recall);                                                             \
    if (t < 0)                                                                                     \
      return EXIT_USAGE;                                                                           \
    if (t > 0)                                                                                     \
      continue;                                                                                    \
    switch (c) {
#define PARSE_END                                                                                  \
  case 'h':                                                                                        \
    fputs(kServerHelp, stdout);                                                                    \
    return 0;                                                                                      \
  default:                                                                                         \
    fputs(kServerHelp, stderr);                                                                    \
    return EXIT_USAGE;                                                                             \
    }                                                                                              \
    }

#define GLOBAL_OPTS                                                                                \
  {"server", required_argument, 0, OPT_SERVER}, {"timeout", required_argument, 0, OPT_TIMEOUT},    \
      {"tls-ca", required_argument, 0, OPT_TLS_CA},                                                \
      {"tls-cert", required_argument, 0, OPT_TLS_CERT},                                            \
      {"tls-key", required_argument, 0, OPT_TLS_KEY}, {"token", required_argument, 0, OPT_TOKEN},  \
      {"help", no_argument, 0, 'h'}, {                                                             \
    0, 0, 0, 0                                                                                     \
  }

/* The NAME positional argument (after options were parsed, getopt permutes it to the end); NULL
 * after a usage message when it is missing or followed by more. */
static const char *positional(int argc, char **argv, const char *cmd) {
  if (optind >= argc) {
    cli_usage_error("'quiver %s' needs a collection NAME", cmd);
    return NULL;
  }
  if (optind + 1 < argc) {
    cli_usage_error("unexpected argument '%s' after the collection NAME", argv[optind + 1]);
    return NULL;
  }
  return argv[optind];
}

/* 0 when nothing follows the options, else a usage message and EXIT_USAGE. */
static int no_positional(int argc, char **argv) {
  return optind < argc ? cli_usage_error("unexpected argument '%s'", argv[optind]) : 0;
}

static int cmd_create(int argc, char **argv, global *g) {
  static const struct option opts[] = {{"dim", required_argument, 0, 'd'},
                                       {"metric", required_argument, 0, 'm'},
                                       {"spec", required_argument, 0, 's'},
                                       {"nprobe", required_argument, 0, 'n'},
                                       {"ef", required_argument, 0, 'e'},
                                       {"train-sample", required_argument, 0, 't'},
                                       {"features", required_argument, 0, 'F'},
                                       {"device", required_argument, 0, 'D'},
                                       {"deferred-deletes", no_argument, 0, 'X'},
                                       {"shards", required_argument, 0, 'S'},
                                       {"replicas", required_argument, 0, 'r'},
                                       {"attr", required_argument, 0, 'a'},
                                       GLOBAL_OPTS};
  qv_create_opts o = {0};
  qv_client_attr_field attrs[QV_CLIENT_MAX_ATTRS];
  o.metric = QV_METRIC_L2;
  uint64_t v;
  qv_error e = {0};
  PARSE_BEGIN(opts, NULL)
case 'd':
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--dim must be 1..65536, not '%s'", optarg);
  o.dim = (uint32_t)v;
  break;
case 'm':
  if (qv_metric_parse(optarg, &o.metric, &e) != QV_OK)
    return cli_usage_error("%s", e.msg);
  break;
case 's':
  o.index_spec = optarg;
  break;
case 'n':
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--nprobe must be 1..65536, not '%s'", optarg);
  o.default_nprobe = (uint32_t)v;
  break;
case 'e':
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--ef must be 1..65536, not '%s'", optarg);
  o.default_ef_search = (uint32_t)v;
  break;
case 't':
  if (cli_parse_u64(optarg, UINT64_MAX, &v))
    return cli_usage_error("--train-sample must be a non-negative integer, not '%s'", optarg);
  o.train_sample = v;
  break;
case 'F':
  if (cli_parse_u64(optarg, 64, &v))
    return cli_usage_error("--features must be 0..64, not '%s'", optarg);
  o.n_features = (uint32_t)v;
  break;
case 'D': {
  qv_device d;
  if (qv_device_parse(optarg, &d, &e) != QV_OK)
    return cli_usage_error("--device: %s", e.msg);
  o.device = optarg;
  break;
}
case 'X':
  o.deferred_deletes = 1;
  break;
case 'S': /* the router checks the fleet's limits; here only what is never right */
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--shards must be 1 or more, not '%s'", optarg);
  o.shards = (uint32_t)v;
  break;
case 'r':
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--replicas must be 1 or more, not '%s'", optarg);
  o.replicas = (uint32_t)v;
  break;
case 'a':
  if (o.n_attrs == QV_CLIENT_MAX_ATTRS)
    return cli_usage_error("at most 32 --attr flags: '%s' is one too many", optarg);
  if (cli_attr_field_parse(optarg, &attrs[o.n_attrs], &e) != 0)
    return cli_usage_error("%s", e.msg);
  o.attrs = attrs;
  o.n_attrs++;
  break;
  PARSE_END
  if ((o.name = positional(argc, argv, "create")) == NULL)
    return EXIT_USAGE;
  if (o.dim == 0)
    return cli_usage_error("'quiver create' needs --dim%s", "");
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  qv_collection_info info;
  if (qv_client_create(cl, &o, &info, &e) != QV_OK) {
    rc = cli_fail_remote(&e);
  } else {
    printf("created ");
    print_info(&info, 0);
  }
  qv_client_close(cl);
  return rc;
}

/* What `quiver health --watch` saw: the last status, for the exit code. */
typedef struct watch_seen {
  int any;
  qv_health_status last;
} watch_seen;

/* Prints "2024-05-01T12:00:00.123Z SERVING" (UTC) for each status the server sends. */
static int on_watch_status(void *user, qv_health_status hs) {
  watch_seen *w = user;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  printf("%s.%03ldZ %s\n", when, ts.tv_nsec / 1000000, qv_health_status_name(hs));
  fflush(stdout);
  w->any = 1;
  w->last = hs;
  return 0;
}

/* quiver health --watch: exit 0 when the watch ran its course (--timeout passed, or the server
 * ended the stream after NOT_SERVING: a stop), 1 when it failed (no server, no Watch, the
 * stream lost while SERVING). */
static int cmd_health_watch(const global *g, const char *service) {
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  watch_seen w = {0, QV_HEALTH_UNKNOWN};
  qv_error e = {0};
  const qv_status st = qv_client_health_watch(
      cl, service, g->timeout_given ? (double)g->timeout_s : 0, on_watch_status, &w, &e);
  if ((st == QV_EDEADLINE && w.any) ||
      ((st == QV_OK || st == QV_EUNAVAILABLE) && w.any && w.last == QV_HEALTH_NOT_SERVING)) {
    fprintf(stderr, "the watch ended: %s\n",
            st == QV_EDEADLINE ? "--timeout passed"
            : st == QV_OK      ? "OK"
                               : e.msg);
    rc = 0;
  } else {
    rc = cli_fail_remote(&e);
  }
  qv_client_close(cl);
  return rc;
}

static int cmd_simple(int argc, char **argv, global *g, const char *cmd) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                       {"service", required_argument, 0, 's'},
                                       {"watch", no_argument, 0, 'w'},
                                       GLOBAL_OPTS};
  int json = 0, watch = 0;
  const char *service = "";
  PARSE_BEGIN(opts, NULL)
case 'j':
  json = 1;
  break;
case 's':
  service = optarg;
  break;
case 'w':
  watch = 1;
  break;
  PARSE_END
  const char *name = NULL;
  int is_list = !strcmp(cmd, "list"), is_health = !strcmp(cmd, "health");
  if (!is_list && !is_health && (name = positional(argc, argv, cmd)) == NULL)
    return EXIT_USAGE;
  if ((is_list || is_health) && no_positional(argc, argv))
    return EXIT_USAGE;
  if (watch && !is_health)
    return cli_usage_error("--watch goes with 'quiver health', not '%s'", cmd);
  if (watch)
    return cmd_health_watch(g, service);
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  qv_error e = {0};
  if (is_health) {
    int serving = 0;
    if (qv_client_health(cl, service, &serving, &e) != QV_OK)
      rc = cli_fail_remote(&e);
    else {
      printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
      rc = serving ? 0 : 1;
    }
  } else if (is_list) {
    qv_collection_info *all = NULL;
    size_t n = 0;
    if (qv_client_list(cl, &all, &n, &e) != QV_OK) {
      rc = cli_fail_remote(&e);
    } else {
      if (json)
        printf("[");
      for (size_t i = 0; i < n; i++) {
        if (json && i > 0)
          printf(", ");
        print_info(&all[i], json);
      }
      if (json)
        printf("]\n");
      else if (n == 0)
        printf("no collections\n");
      free(all);
    }
  } else if (!strcmp(cmd, "drop")) {
    if (qv_client_drop(cl, name, &e) != QV_OK)
      rc = cli_fail_remote(&e);
    else
      printf("dropped %s\n", name);
  } else { /* describe */
    qv_collection_info info;
    if (qv_client_describe(cl, name, &info, &e) != QV_OK) {
      rc = cli_fail_remote(&e);
    } else {
      print_info(&info, json);
      if (json)
        printf("\n");
    }
  }
  qv_client_close(cl);
  return rc;
}

static int cmd_upsert(int argc, char **argv, global *g) {
  static const struct option opts[] = {
      {"input", required_argument, 0, 'i'},    {"ids", required_argument, 0, 'I'},
      {"chunk-mb", required_argument, 0, 'c'}, {"features", required_argument, 0, 'F'},
      {"attrs", required_argument, 0, 'a'},    GLOBAL_OPTS};
  const char *input = NULL, *ids_path = NULL, *feat_path = NULL, *attrs_path = NULL;
  uint64_t chunk_mb = 4;
  PARSE_BEGIN(opts, NULL)
case 'i':
  input = optarg;
  break;
case 'I':
  ids_path = optarg;
  break;
case 'F':
  feat_path = optarg;
  break;
case 'a':
  attrs_path = optarg;
  break;
case 'c':
  if (cli_parse_u64(optarg, 1024, &chunk_mb) || chunk_mb == 0)
    return cli_usage_error("--chunk-mb must be 1..1024, not '%s'", optarg);
  break;
  PARSE_END
  const char *name = positional(argc, argv, "upsert");
  if (name == NULL)
    return EXIT_USAGE;
  if (input == NULL)
    return cli_usage_error("'quiver upsert' needs --input FILE%s", "");
  qv_error e = {0};
  qv_vecfile *in = NULL, *idf = NULL, *ff = NULL;
  float *fbuf = NULL;
  size_t nf = 0;
  qv_client *cl = NULL;
  float *buf = NULL;
  int64_t *idbuf = NULL;
  int rc = 1;
  cli_attrs attrs;
  memset(&attrs, 0, sizeof attrs);
  if (qv_vecfile_open(&in, input, &e) != QV_OK)
    goto done;
  size_t n = qv_vecfile_rows(in), d = qv_vecfile_cols(in);
  if (ids_path != NULL && cli_open_ids(&idf, ids_path, input, n, &e) != QV_OK)
    goto done;
  const size_t piece = 65536; /* rows read and sent per call: large files never sit in memory */
  if (feat_path != NULL) {
    if (qv_vecfile_open(&ff, feat_path, &e) != QV_OK)
      goto done;
    nf = qv_vecfile_cols(ff);
    if (qv_vecfile_rows(ff) != n || nf == 0) {
      qv_error_set(&e, QV_EINVAL, "%s has %zu x %zu features; %s has %zu rows", feat_path,
                   qv_vecfile_rows(ff), nf, input, n);
      goto done;
    }
    if ((fbuf = malloc(piece * nf * sizeof(float))) == NULL) {
      qv_error_set(&e, QV_ENOMEM, "out of memory");
      goto done;
    }
  }
  if ((rc = connect_to(g, &cl)) != 0)
    goto out;
  rc = 1;
  if (attrs_path != NULL) { /* the types come from the collection's schema */
    qv_collection_info info;
    if (qv_client_describe(cl, name, &info, &e) != QV_OK) {
      cli_fail_remote(&e);
      goto out;
    }
    if (cli_attrs_load(attrs_path, &info, input, n, &attrs, &e) != QV_OK)
      goto done;
  }
  buf = malloc(piece * (d ? d : 1) * sizeof(float));
  idbuf = malloc(piece * sizeof(int64_t));
  if (buf == NULL || idbuf == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    goto done;
  }
  cli_progress pr;
  cli_progress_init(&pr);
  uint64_t count = 0;
  for (size_t off = 0; off < n || (n == 0 && off == 0); off += piece) {
    size_t m = n - off < piece ? n - off : piece;
    cli_progress_cb(&pr, "upsert", off, n);
    if (cli_read_rows(in, idf, off, m, buf, idbuf, &e) != QV_OK)
      goto done;
    if (ff != NULL && m > 0 && qv_vecfile_read_f32(ff, off, m, fbuf, &e) != QV_OK)
      goto done;
    qv_client_attr_column cols[QV_CLIENT_MAX_ATTRS];
    cli_attrs_view(&attrs, off, cols);
    qv_client_upsert_opts uo;
    qv_client_upsert_opts_init(&uo);
    uo.features = fbuf;
    uo.n_features = nf;
    uo.attrs = attrs.n_cols ? cols : NULL;
    uo.n_attrs = attrs.n_cols;
    uo.chunk_bytes = (size_t)chunk_mb << 20;
    if (qv_client_upsert_ex(cl, name, m, d, idbuf, buf, &uo, &count, &e) != QV_OK) {
      cli_fail_remote(&e);
      rc = 1;
      goto out;
    }
    if (n == 0)
      break;
  }
  cli_progress_cb(&pr, "upsert", n, n);
  printf("upserted %zu vectors%s into %s (count now %" PRIu64 ")\n", n,
         attrs.n_cols ? " with their attributes" : "", name, count);
  rc = 0;
done:
  if (rc != 0)
    cli_fail(&e);
out:
  cli_attrs_free(&attrs);
  qv_client_close(cl);
  qv_vecfile_close(in);
  qv_vecfile_close(idf);
  qv_vecfile_close(ff);
  free(fbuf);
  free(buf);
  free(idbuf);
  return rc;
}

/* Parses "1,2,3" into a malloc'd array. Returns 0, or a usage error's exit code. */
static int parse_id_list(const char *list, const char *flag, int64_t **out, size_t *n) {
  size_t cap = 1;
  for (const char *p = list; *p; p++)
    cap += *p == ',';
  *n = 0;
  *out = malloc(cap * sizeof **out);
  char *copy = strdup(list);
  if (*out == NULL || copy == NULL) {
    free(*out);
    free(copy);
    *out = NULL;
    return cli_usage_error("out of memory%s", "");
  }
  for (char *sv = NULL, *tok = strtok_r(copy, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
    uint64_t v;
    if (cli_parse_u64(tok, INT64_MAX, &v)) {
      fprintf(stderr,
              "quiver: usage error: %s takes non-negative integers separated by commas, "
              "not '%s'\n",
              flag, tok);
      free(copy);
      free(*out);
      *out = NULL;
      return EXIT_USAGE;
    }
    (*out)[(*n)++] = (int64_t)v;
  }
  free(copy);
  return 0;
}

/* The ids of --ids 1,2,3 or --ids-file FILE (one of them; `cmd` names the command): 0, or the
 * exit status after the message. */
static int load_ids(const char *list, const char *file, const char *cmd, int64_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  if ((list == NULL) == (file == NULL))
    return cli_usage_error("'quiver %s' needs exactly one of --ids 1,2,3 or --ids-file FILE", cmd);
  if (list != NULL)
    return parse_id_list(list, "--ids", ids, n);
  qv_error e = {0};
  qv_vecfile *f;
  if (cli_open_int_file(&f, file, "--ids-file", &e) != QV_OK)
    return cli_fail(&e);
  *n = qv_vecfile_rows(f) * qv_vecfile_cols(f);
  qv_status st = cli_read_i64(f, qv_vecfile_rows(f), ids, &e);
  qv_vecfile_close(f);
  return st != QV_OK ? cli_fail(&e) : 0;
}

/* ---- quiver get ----------------------------------------------------------------------------- */

static void print_floats(const float *v, size_t n) {
  printf("[");
  for (size_t i = 0; i < n; i++)
    printf("%s%.9g", i ? ", " : "", (double)v[i]);
  printf("]");
}

static int cmd_get(int argc, char **argv, global *g) {
  static const struct option opts[] = {{"ids", required_argument, 0, 'I'},
                                       {"ids-file", required_argument, 0, 'f'},
                                       {"fields", required_argument, 0, 'F'},
                                       {"json", no_argument, 0, 'j'},
                                       GLOBAL_OPTS};
  const char *list = NULL, *file = NULL;
  unsigned fields = 0;
  int json = 0;
  PARSE_BEGIN(opts, NULL)
case 'I':
  list = optarg;
  break;
case 'f':
  file = optarg;
  break;
case 'F': {
  fields = 0;
  for (const char *p = optarg; *p;) {
    const size_t len = strcspn(p, ",");
    if (len == 6 && !strncmp(p, "vector", 6))
      fields |= QV_CLIENT_GET_VECTOR;
    else if (len == 8 && !strncmp(p, "features", 8))
      fields |= QV_CLIENT_GET_FEATURES;
    else if (len == 10 && !strncmp(p, "attributes", 10))
      fields |= QV_CLIENT_GET_ATTRIBUTES;
    else
      return cli_usage_error("--fields takes vector, features and/or attributes "
                             "(comma-separated), not '%s'",
                             optarg);
    p += len + (p[len] == ',');
  }
  break;
}
case 'j':
  json = 1;
  break;
  PARSE_END
  const char *name = positional(argc, argv, "get");
  if (name == NULL)
    return EXIT_USAGE;
  int64_t *ids = NULL;
  size_t n = 0;
  int rc = load_ids(list, file, "get", &ids, &n);
  if (rc != 0)
    return rc;
  qv_client *cl;
  if ((rc = connect_to(g, &cl)) != 0) {
    free(ids);
    return rc;
  }
  qv_error e = {0};
  qv_client_items it;
  if (qv_client_get(cl, name, n, ids, fields, &it, &e) != QV_OK) {
    rc = cli_fail_remote(&e);
  } else if (json) {
    printf("{\"collection\": \"%s\", \"dim\": %zu, \"n_features\": %zu, \"items\": [", name, it.dim,
           it.n_features);
    for (size_t i = 0; i < it.n; i++) {
      printf("%s{\"id\": %" PRId64, i ? ", " : "", it.ids[i]);
      if (it.vectors) {
        printf(", \"vector\": ");
        print_floats(it.vectors + i * it.dim, it.dim);
      }
      if (it.features) {
        printf(", \"features\": ");
        print_floats(it.features + i * it.n_features, it.n_features);
      }
      if (it.n_attrs > 0) {
        printf(", \"attributes\": ");
        cli_attrs_print_json(it.attrs, it.n_attrs, i);
      }
      printf("}");
    }
    printf("], \"missing_ids\": [");
    for (size_t i = 0; i < it.n_missing; i++)
      printf("%s%" PRId64, i ? ", " : "", it.missing_ids[i]);
    printf("]}\n");
  } else {
    printf("%zu of %zu ids found in %s (dim %zu, %zu features)\n", it.n, n, name, it.dim,
           it.n_features);
    for (size_t i = 0; i < it.n; i++) {
      printf("  %" PRId64, it.ids[i]);
      if (it.vectors) {
        printf("  vector ");
        print_floats(it.vectors + i * it.dim, it.dim);
      }
      if (it.features) {
        printf("  features ");
        print_floats(it.features + i * it.n_features, it.n_features);
      }
      if (it.n_attrs > 0) {
        printf("  attributes ");
        cli_attrs_print_json(it.attrs, it.n_attrs, i);
      }
      printf("\n");
    }
    if (it.n_missing > 0) {
      printf("  not in the collection:");
      for (size_t i = 0; i < it.n_missing; i++)
        printf(" %" PRId64, it.missing_ids[i]);
      printf("\n");
    }
  }
  qv_client_items_free(&it);
  qv_client_close(cl);
  free(ids);
  return rc;
}

static int cmd_delete(int argc, char **argv, global *g) {
  static const struct option opts[] = {
      {"ids", required_argument, 0, 'I'}, {"ids-file", required_argument, 0, 'f'}, GLOBAL_OPTS};
  const char *list = NULL, *file = NULL;
  PARSE_BEGIN(opts, NULL)
case 'I':
  list = optarg;
  break;
case 'f':
  file = optarg;
  break;
  PARSE_END
  const char *name = positional(argc, argv, "delete");
  if (name == NULL)
    return EXIT_USAGE;
  qv_error e = {0};
  int64_t *ids = NULL;
  size_t n = 0;
  int r = load_ids(list, file, "delete", &ids, &n);
  if (r != 0)
    return r;
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc == 0) {
    uint64_t deleted = 0, count = 0;
    if (qv_client_delete(cl, name, n, ids, &deleted, &count, &e) != QV_OK)
      rc = cli_fail_remote(&e);
    else
      printf("deleted %" PRIu64 " of %zu ids from %s (count now %" PRIu64 ")\n", deleted, n, name,
             count);
    qv_client_close(cl);
  }
  free(ids);
  return rc;
}

/* One Rollout call and where the collection stands after it. */
static int run_rollout(global *g, const char *name, qv_rollout_action a, uint64_t version) {
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  qv_rollout_status rs;
  qv_error e = {0};
  if (qv_client_rollout(cl, name, a, version, &rs, &e) != QV_OK) {
    rc = cli_fail_remote(&e);
  } else {
    printf("%s: %s\n  data version %" PRIu64 " serving\n", name, rs.message, rs.version);
    if (rs.beside.version != 0)
      print_version(&rs.beside);
    qv_fleet_rollout *f = NULL;
    if (rs.shards > 0 &&
        qv_client_fleet_rollout(cl, name, QV_ROLLOUT_STATUS, NULL, &f, &e) == QV_OK) {
      printf("  fleet rollout: %s%s", f->state[0] ? f->state : "none",
             f->state[0] ? " (version " : "");
      if (f->state[0])
        printf("%" PRIu64 ", previous %" PRIu64 ")", f->rollout_version, f->previous_version);
      printf("\n");
      for (size_t i = 0; i < f->n_replicas; i++) {
        const qv_rollout_replica *x = &f->replicas[i];
        printf("    shard %u on %s (%s): version %" PRIu64, x->shard, x->node, x->state,
               x->version);
        if (x->beside_version)
          printf(", %s version %" PRIu64 " (recall %.4f)", x->beside_state, x->beside_version,
                 x->beside_recall);
        printf("\n");
      }
      qv_fleet_rollout_free(f);
    }
  }
  qv_client_close(cl);
  return rc;
}

/* A build or a push (io NULL: a build with bo; else the import io): a call that may run for
 * minutes, with a progress bar, under --timeout when it was given, else a day (connecting keeps
 * 30 s); then what it did and the collection. */
static int run_build(global *g, const char *name, const qv_client_build_opts *bo,
                     qv_client_import_opts *io) {
  int64_t timeout_ms = g->timeout_given ? (int64_t)g->timeout_s * 1000 : 86400000;
  g->timeout_s = 30;
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  cli_progress pr;
  cli_progress_init(&pr);
  qv_collection_info info;
  qv_client_build_result res;
  qv_error e = {0};
  double t0 = qv_monotonic_s();
  qv_status st;
  if (io != NULL) {
    io->timeout_ms = timeout_ms;
    st = qv_client_import(cl, name, io, cli_progress_cb, &pr, &info, &res, &e);
  } else {
    st = qv_client_build_ex(cl, name, bo, timeout_ms, cli_progress_cb, &pr, &info, &res, &e);
  }
  if (st != QV_OK) {
    rc = cli_fail_remote(&e);
  } else {
    char what[96] = "built";
    if (io != NULL)
      snprintf(what, sizeof what, "pushed %.1f MiB in %u file(s), %s version %" PRIu64,
               res.bytes_sent / 1048576.0, res.files, io->stage ? "staged as" : "swapped in as",
               res.version);
    print_result(what, qv_monotonic_s() - t0, &res);
    print_info(&info, 0);
  }
  qv_client_close(cl);
  return rc;
}

static int cmd_build(int argc, char **argv, global *g) {
  static const struct option opts[] = {RECALL_OPTS, GLOBAL_OPTS};
  qv_client_build_opts bo;
  memset(&bo, 0, sizeof bo);
  PARSE_BEGIN(opts, &bo)
  PARSE_END
  const char *name = positional(argc, argv, "build");
  if (name == NULL)
    return EXIT_USAGE;
  return run_build(g, name, &bo, NULL);
}

/* A fleet rollout through a router: BEGIN, push each shard's directory (DIR/shardK, from
 * `quiver index build --shards S`) to every replica of the shard as the staged version, then wait
 * for the controller's flip, pushing to replicas that appear meanwhile (a replica moved after a
 * kill). *fleet = 0 (and 0 returned) when the server is a single node. */
static int fleet_rollout(global *g, const char *name, qv_client_import_opts *io,
                         const qv_rollout_opts *ro, uint64_t wait_s, int *fleet) {
  *fleet = 0;
  const int64_t push_ms = g->timeout_given ? (int64_t)g->timeout_s * 1000 : 86400000;
  g->timeout_s = 30;
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  qv_error e = {0};
  qv_fleet_rollout *st = NULL;
  const double t0 = qv_monotonic_s();
  qv_rollout_opts bo = *ro;
  bo.recall_floor = io->check.recall_floor; /* the controller checks every replica's recall */
  qv_status s = qv_client_fleet_rollout(cl, name, QV_ROLLOUT_BEGIN, &bo, &st, &e);
  if (s == QV_EUNSUPPORTED) { /* a single node */
    qv_client_close(cl);
    return 0;
  }
  *fleet = 1;
  if (s != QV_OK) {
    qv_client_close(cl);
    return cli_fail_remote(&e);
  }
  const uint64_t V = st->rollout_version;
  const uint32_t S = st->shards;
  printf("%s: rollout of version %" PRIu64 " begun over %u shard(s) (serving %" PRIu64 ")\n", name,
         V, S, st->version);
  /* Which replicas got their shard's directory (node + shard). */
  char(*done)[80] = calloc(64, sizeof *done);
  size_t ndone = 0;
  io->stage = 1;
  io->version = V;
  io->check.recall_floor = 0;
  io->timeout_ms = push_ms;
  double t_pushed = 0, bytes = 0;
  int failed = 0;
  for (;;) {
    for (size_t i = 0; st && i < st->n_replicas && !failed; i++) {
      const qv_rollout_replica *x = &st->replicas[i];
      char id[80];
      snprintf(id, sizeof id, "%.63s/%u", x->node, x->shard);
      int seen = 0;
      for (size_t j = 0; j < ndone && !seen; j++)
        seen = !strcmp(done[j], id);
      if (seen || strcmp(x->state, "in-sync") != 0 || x->version == V ||
          (x->beside_version == V && x->beside_state[0] != '\0') || ndone == 64)
        continue;
      char dir[QV_PATH_MAX], local[96];
      const char *base = io->index_dir ? io->index_dir : io->server_path;
      snprintf(local, sizeof local, "%s.shard%u", name, x->shard);
      qv_client_import_opts one = *io;
      if (qv_path_fmt(dir, &e, "%s/shard%u", base, x->shard) != QV_OK) {
        failed = 1;
        break;
      }
      if (io->index_dir)
        one.index_dir = dir;
      else
        one.server_path = dir;
      global ng = *g;
      ng.server = x->addr;
      qv_client *nc;
      qv_client_build_result res;
      if ((rc = connect_to(&ng, &nc)) != 0) {
        failed = 1;
        break;
      }
      const double tp = qv_monotonic_s();
      s = qv_client_import(nc, local, &one, NULL, NULL, NULL, &res, &e);
      qv_client_close(nc);
      if (s != QV_OK) {
        qv_error_prefix(&e, s, "pushing %s to %s (%s)", dir, x->node, x->addr);
        failed = 1;
        break;
      }
      bytes += (double)res.bytes_sent;
      printf("  shard %u -> %s: staged version %" PRIu64 " (%.1f MiB, %.2f s, recall@%u %.4f)\n",
             x->shard, x->node, res.version, res.bytes_sent / 1048576.0, qv_monotonic_s() - tp,
             res.recall_k, res.recall);
      snprintf(done[ndone++], sizeof done[0], "%s", id);
      t_pushed = qv_monotonic_s();
    }
    if (failed)
      break;
    /* Flipped, and every router already pins its queries to the new version (one map poll). */
    const int over = (!strcmp(st->state, "flipped") || !strcmp(st->state, "done")) &&
                     (st->version != V || st->routers_on_version >= st->routers ||
                      qv_monotonic_s() - t0 > (double)wait_s);
    if (over || !strcmp(st->state, "aborted") || !strcmp(st->state, "rolled-back") ||
        qv_monotonic_s() - t0 > (double)wait_s)
      break;
    nanosleep(&(struct timespec){.tv_nsec = 200000000L}, NULL);
    qv_fleet_rollout_free(st);
    st = NULL;
    if ((s = qv_client_fleet_rollout(cl, name, QV_ROLLOUT_STATUS, NULL, &st, &e)) != QV_OK) {
      failed = 1;
      break;
    }
  }
  if (failed) {
    rc = cli_fail_remote(&e);
    qv_error ae = {0};
    if (qv_client_fleet_rollout(cl, name, QV_ROLLOUT_ABORT, NULL, NULL, &ae) == QV_OK)
      fprintf(stderr, "quiver: rollout of version %" PRIu64 " aborted\n", V);
  } else if (!strcmp(st->state, "flipped") || !strcmp(st->state, "done")) {
    const double t = qv_monotonic_s() - t0;
    printf("%s: flipped to version %" PRIu64 " %.2f s after the rollout began (pushed %.1f MiB to "
           "%zu replica(s) by %.2f s; %u of %u router(s) on it); %s\n",
           name, V, t, bytes / 1048576.0, ndone, t_pushed > 0 ? t_pushed - t0 : 0.0,
           st->routers_on_version, st->routers, st->message);
  } else if (!strcmp(st->state, "staging")) {
    rc = 1;
    fprintf(stderr,
            "quiver: version %" PRIu64 " was not ready on every shard within --wait %" PRIu64
            " s: still staging (quiver rollout %s --status; --abort to drop it)\n",
            V, wait_s, name);
  } else {
    rc = 1;
    fprintf(stderr, "quiver: rollout of version %" PRIu64 " %s: %s\n", V, st->state, st->message);
  }
  qv_fleet_rollout_free(st);
  free(done);
  qv_client_close(cl);
  return rc;
}

static int cmd_push(int argc, char **argv, global *g) {
  static const struct option opts[] = {{"index", required_argument, 0, 'i'},
                                       {"server-path", required_argument, 0, 'p'},
                                       {"create", no_argument, 0, 'c'},
                                       {"chunk-mb", required_argument, 0, 'm'},
                                       {"stage", no_argument, 0, 'S'},
                                       {"version", required_argument, 0, 'V'},
                                       {"flip", no_argument, 0, 'F'},
                                       {"abort", no_argument, 0, 'A'},
                                       {"release", no_argument, 0, 'L'},
                                       {"status", no_argument, 0, 'T'},
                                       {"min-ready", required_argument, 0, 'R'},
                                       {"hold", required_argument, 0, 'H'},
                                       {"wait", required_argument, 0, 'W'},
                                       RECALL_OPTS,
                                       GLOBAL_OPTS};
  qv_client_import_opts io;
  memset(&io, 0, sizeof io);
  uint64_t mb = 4;
  const int rollout = !strcmp(argv[0], "rollout");
  int action = 0; /* rollout without files: one qv_rollout_action */
  qv_rollout_opts ro = {0};
  uint64_t wait_s = 600;
  PARSE_BEGIN(opts, &io.check)
case 'R': {
  uint64_t v;
  if (!rollout || cli_parse_u64(optarg, 5, &v))
    return cli_usage_error("--min-ready (a 'quiver rollout' option) must be 0..5, not '%s'",
                           optarg);
  ro.min_ready = (uint32_t)v;
  break;
}
case 'H': {
  uint64_t v;
  if (!rollout || cli_parse_u64(optarg, 86400, &v))
    return cli_usage_error("--hold (a 'quiver rollout' option) must be 0..86400 seconds, not '%s'",
                           optarg);
  ro.hold_s = (double)v;
  break;
}
case 'W':
  if (!rollout || cli_parse_u64(optarg, 86400, &wait_s) || wait_s == 0)
    return cli_usage_error("--wait (a 'quiver rollout' option) must be 1..86400 seconds, not '%s'",
                           optarg);
  break;
case 'S':
  io.stage = 1;
  break;
case 'V':
  if (cli_parse_u64(optarg, INT64_MAX, &io.version) || io.version == 0)
    return cli_usage_error("--version must be 1..2^63-1, not '%s'", optarg);
  break;
case 'F':
case 'A':
case 'L':
case 'T':
  if (!rollout)
    return cli_usage_error("--flip, --abort, --release and --status are 'quiver rollout' options%s",
                           "");
  if (action)
    return cli_usage_error("give one of --flip, --abort, --release, --status%s", "");
  action = c == 'F'   ? QV_ROLLOUT_FLIP
           : c == 'A' ? QV_ROLLOUT_ABORT
           : c == 'L' ? QV_ROLLOUT_RELEASE
                      : QV_ROLLOUT_STATUS;
  break;
case 'i':
  io.index_dir = optarg;
  break;
case 'p':
  io.server_path = optarg;
  break;
case 'c':
  io.create = 1;
  break;
case 'm':
  if (cli_parse_u64(optarg, 1024, &mb) || mb == 0)
    return cli_usage_error("--chunk-mb must be 1..1024, not '%s'", optarg);
  break;
  PARSE_END
  const char *name = positional(argc, argv, rollout ? "rollout" : "push");
  if (name == NULL)
    return EXIT_USAGE;
  if (rollout && action)
    return (io.index_dir || io.server_path)
               ? cli_usage_error("--flip, --abort, --release and --status take no --index or "
                                 "--server-path (rollout NAME --index DIR stages and flips)%s",
                                 "")
               : run_rollout(g, name, (qv_rollout_action)action, io.version);
  if (rollout && io.stage)
    return cli_usage_error("'quiver rollout' always stages: use 'quiver push --stage' to stage "
                           "without flipping%s",
                           "");
  if (!rollout && io.version && !io.stage)
    return cli_usage_error("--version goes with --stage%s", "");
  if ((io.index_dir == NULL) == (io.server_path == NULL))
    return rollout ? cli_usage_error("'quiver rollout' needs one of --flip, --abort, --release, "
                                     "--status, or exactly one of --index DIR and --server-path "
                                     "DIR (stage and flip)%s",
                                     "")
                   : cli_usage_error("'quiver push' needs exactly one of --index DIR (streamed) "
                                     "and --server-path DIR (on the server)%s",
                                     "");
  io.chunk_bytes = (size_t)mb << 20;
  if (!rollout)
    return run_build(g, name, NULL, &io);
  ro.version = io.version;
  int fleet = 0;
  int rc = fleet_rollout(g, name, &io, &ro, wait_s, &fleet);
  if (fleet || rc)
    return rc;
  /* A single node: stage, then flip. */
  io.stage = 1;
  rc = run_build(g, name, NULL, &io);
  return rc ? rc : run_rollout(g, name, QV_ROLLOUT_FLIP, io.version);
}

static int cmd_rollback(int argc, char **argv, global *g) {
  static const struct option opts[] = {GLOBAL_OPTS};
  PARSE_BEGIN(opts, NULL)
  PARSE_END
  const char *name = positional(argc, argv, "rollback");
  if (name == NULL)
    return EXIT_USAGE;
  return run_rollout(g, name, QV_ROLLOUT_ROLLBACK, 0);
}

/* The shards a search's calls came back without (--allow-partial through a router): sorted,
 * each once. A router has at most 256 shards; kMissingMax bounds what one call reports. */
enum { kMissingMax = 1024 };
typedef struct missing_set {
  uint32_t *v;
  size_t n, cap;
} missing_set;

static void missing_add(missing_set *s, const uint32_t *got, size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t at = 0;
    while (at < s->n && s->v[at] < got[i])
      at++;
    if (at < s->n && s->v[at] == got[i])
      continue;
    if (s->n == s->cap) {
      size_t cap = s->cap ? 2 * s->cap : 16;
      uint32_t *v = realloc(s->v, cap * sizeof *v);
      if (v == NULL)
        return; /* the note then names fewer shards; the answer itself is whole */
      s->v = v;
      s->cap = cap;
    }
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof *s->v);
    s->v[at] = got[i];
    s->n++;
  }
}

static int cmd_search(int argc, char **argv, global *g) {
  static const struct option opts[] = {{"queries", required_argument, 0, 'q'},
                                       {"k", required_argument, 0, 'k'},
                                       {"nprobe", required_argument, 0, 'n'},
                                       {"ef", required_argument, 0, 'e'},
                                       {"exact", no_argument, 0, 'E'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"groundtruth", required_argument, 0, 'g'},
                                       {"json", no_argument, 0, 'j'},
                                       {"output", required_argument, 0, 'o'},
                                       {"candidates", required_argument, 0, 'C'},
                                       {"refine", no_argument, 0, 'R'},
                                       {"mmr", required_argument, 0, 'M'},
                                       {"weights", required_argument, 0, 'W'},
                                       {"allow", required_argument, 0, 'A'},
                                       {"deny", required_argument, 0, 'D'},
                                       {"allow-partial", no_argument, 0, 'P'},
                                       {"version", required_argument, 0, 'V'},
                                       {"ids", required_argument, 0, 'I'},
                                       {"ids-file", required_argument, 0, 'f'},
                                       {"include-self", no_argument, 0, 'S'},
                                       {"filter", required_argument, 0, 'L'},
                                       {"filter-path", required_argument, 0, 'T'},
                                       GLOBAL_OPTS};
  const char *filter = NULL;
  qv_client_filter_path filter_path = QV_CLIENT_FILTER_AUTO;
  int filter_path_given = 0;
  const char *queries = NULL, *gt_path = NULL, *output = NULL, *id_list = NULL, *id_file = NULL;
  int include_self = 0;
  qv_client_rerank rr = {0};
  int use_rerank = 0;
  float weights[65];
  int64_t *allow = NULL, *deny = NULL;
  char *end = NULL;
  uint64_t k = 10, nprobe = 0, batch = 100, ef = 0;
  int exact = 0, json = 0, allow_partial = 0;
  uint64_t version = 0, answered = 0;
  PARSE_BEGIN(opts, NULL)
case 'q':
  queries = optarg;
  break;
case 'k':
  if (cli_parse_u64(optarg, 65536, &k) || k == 0)
    return cli_usage_error("--k must be 1..65536, not '%s'", optarg);
  break;
case 'n':
  if (cli_parse_u64(optarg, 65536, &nprobe) || nprobe == 0)
    return cli_usage_error("--nprobe must be 1..65536, not '%s'", optarg);
  break;
case 'e':
  if (cli_parse_u64(optarg, 65536, &ef) || ef == 0)
    return cli_usage_error("--ef must be 1..65536, not '%s'", optarg);
  break;
case 'E':
  exact = 1;
  break;
case 'b':
  if (cli_parse_u64(optarg, 1000000, &batch) || batch == 0)
    return cli_usage_error("--batch must be 1..1000000, not '%s'", optarg);
  break;
case 'g':
  gt_path = optarg;
  break;
case 'j':
  json = 1;
  break;
case 'o':
  output = optarg;
  break;
case 'C': {
  uint64_t v;
  if (cli_parse_u64(optarg, 65536, &v) || v == 0)
    return cli_usage_error("--candidates must be 1..65536, not '%s'", optarg);
  rr.candidates = (uint32_t)v;
  use_rerank = 1;
  break;
}
case 'R':
  rr.refine = 1;
  use_rerank = 1;
  break;
case 'M':
  rr.mmr_lambda = strtof(optarg, &end);
  if (end == optarg || *end != '\0' || !(rr.mmr_lambda > 0 && rr.mmr_lambda <= 1))
    return cli_usage_error("--mmr takes lambda in (0, 1], not '%s'", optarg);
  use_rerank = 1;
  break;
case 'W': {
  /* --weights w0[,w1,...]: the similarity's weight, then one per item feature. */
  rr.n_weights = 0;
  char *p = optarg;
  while (*p && rr.n_weights < 65) {
    weights[rr.n_weights++] = strtof(p, &end);
    if (end == p || (*end != ',' && *end != '\0'))
      return cli_usage_error("--weights takes numbers separated by commas, not '%s'", optarg);
    p = *end == ',' ? end + 1 : end;
  }
  rr.weights = weights;
  use_rerank = 1;
  break;
}
case 'A':
  free(allow);
  if (parse_id_list(optarg, "--allow", &allow, &rr.n_allow) != 0)
    return EXIT_USAGE;
  rr.allow_ids = allow;
  use_rerank = 1;
  break;
case 'D':
  free(deny);
  if (parse_id_list(optarg, "--deny", &deny, &rr.n_deny) != 0)
    return EXIT_USAGE;
  rr.deny_ids = deny;
  use_rerank = 1;
  break;
case 'P':
  allow_partial = 1;
  break;
case 'V':
  if (cli_parse_u64(optarg, INT64_MAX, &version) || version == 0)
    return cli_usage_error("--version must be 1..2^63-1, not '%s'", optarg);
  break;
case 'I':
  id_list = optarg;
  break;
case 'f':
  id_file = optarg;
  break;
case 'S':
  include_self = 1;
  break;
case 'L':
  filter = optarg;
  break;
case 'T': {
  qv_error pe = {0};
  if (qv_client_filter_path_parse(optarg, &filter_path, &pe) != QV_OK)
    return cli_usage_error("--filter-path takes auto, exact or index, not '%s'", optarg);
  filter_path_given = 1;
  break;
}
  PARSE_END
  const char *name = positional(argc, argv, "search");
  if (name == NULL)
    return EXIT_USAGE;
  const int by_id = id_list != NULL || id_file != NULL;
  if ((queries == NULL) == !by_id)
    return cli_usage_error("'quiver search' needs --queries FILE, or --ids / --ids-file for "
                           "item-to-item search (one of them)%s",
                           "");
  if (include_self && !by_id)
    return cli_usage_error("--include-self goes with --ids or --ids-file%s", "");
  if (filter_path_given && filter == NULL)
    return cli_usage_error("--filter-path goes with --filter EXPR%s", "");
  if (exact && use_rerank)
    return cli_usage_error("--exact and the rerank flags exclude each other: exact search is "
                           "already exact%s",
                           "");
  qv_error e = {0};
  missing_set miss = {0};
  float *q = NULL, *scores = NULL;
  int64_t *ids = NULL, *gt = NULL;
  qv_client *cl = NULL;
  size_t n = 0, d = 0, gk = 0, n_unknown = 0;
  int rc = 1, remote_err = 0;
  int64_t *qids = NULL;
  uint8_t *unknown = NULL;
  if (by_id) {
    if ((rc = load_ids(id_list, id_file, "search", &qids, &n)) != 0)
      goto out;
    rc = 1;
    if ((unknown = calloc(n ? n : 1, 1)) == NULL) {
      qv_error_set(&e, QV_ENOMEM, "out of memory");
      goto done;
    }
  } else if (cli_read_f32(queries, &q, &n, &d, &e) != QV_OK) {
    goto done;
  }
  if (n == 0) {
    qv_error_set(&e, QV_EINVAL, "%s holds no queries", by_id ? "the id list" : queries);
    goto done;
  }
  if (gt_path != NULL &&
      cli_read_groundtruth(gt_path, n, k, "need at least %zu x %zu", &gt, &gk, &e) != QV_OK)
    goto done;
  scores = malloc(n * k * sizeof *scores);
  ids = malloc(n * k * sizeof *ids);
  if (scores == NULL || ids == NULL) {
    qv_error_set(&e, QV_ENOMEM, "out of memory for %zu x %" PRIu64 " results", n, k);
    goto done;
  }
  if ((rc = connect_to(g, &cl)) != 0)
    goto out;
  rc = 1;
  size_t b = batch < n ? batch : n;
  qv_client_search_opts so;
  qv_client_search_opts_init(&so);
  so.nprobe = (uint32_t)nprobe;
  so.ef_search = (uint32_t)ef;
  so.exact = exact;
  so.rerank = use_rerank ? &rr : NULL;
  so.allow_partial = allow_partial;
  so.version = version;
  so.answered_version = &answered;
  so.filter = filter;
  so.filter_path = filter_path;
  size_t partial_rpcs = 0;
  double t0 = qv_monotonic_s();
  for (size_t off = 0; off < n; off += b) {
    size_t m = n - off < b ? n - off : b, nm = 0;
    uint32_t got[kMissingMax];
    if (by_id) {
      so.query_ids = qids + off;
      so.n_query_ids = m;
      so.include_self = include_self;
      so.unknown = unknown + off;
    }
    if (qv_client_search_ex(cl, name, by_id ? NULL : q + off * d, m, d, k, &so, scores + off * k,
                            ids + off * k, got, kMissingMax, &nm, &e) != QV_OK) {
      remote_err = 1;
      goto done;
    }
    partial_rpcs += nm > 0;
    missing_add(&miss, got, nm < kMissingMax ? nm : kMissingMax);
  }
  double secs = qv_monotonic_s() - t0, qps = secs > 0 ? n / secs : 0;
  double recall = gt ? qv_recall_at_k(ids, gt, gk, n, k) : -1;
  if (output != NULL && cli_write_ids(output, ids, n, k, &e) != QV_OK)
    goto done;
  const char *server = g->server ? g->server : "127.0.0.1:7070";
  if (json) {
    printf("{\"server\": \"%s\", \"collection\": \"%s\", \"n_queries\": %zu, \"k\": %" PRIu64
           ", \"nprobe\": %" PRIu64 ", \"ef_search\": %" PRIu64
           ", \"exact\": %s, \"batch\": %zu, \"seconds\": %.6f, "
           "\"qps\": %.1f, \"rpcs_per_s\": %.1f, \"version\": %" PRIu64 ", \"recall_at_k\": ",
           server, name, n, k, nprobe, ef, exact ? "true" : "false", b, secs, qps,
           secs > 0 ? ((n + b - 1) / b) / secs : 0.0, answered);
    cli_print_json_recall(recall);
    printf(", \"missing_shards\": [");
    for (size_t i = 0; i < miss.n; i++)
      printf("%s%u", i ? ", " : "", miss.v[i]);
    printf("], \"filter\": ");
    if (filter != NULL) {
      printf("\"");
      cli_print_json_str(filter);
      printf("\", \"filter_path\": \"%s\"}\n", qv_client_filter_path_name(filter_path));
    } else {
      printf("null}\n");
    }
  } else {
    printf("searched %s on %s, %zu queries, k=%" PRIu64 ", %s=%s%" PRIu64
           ", batch=%zu, data version %" PRIu64 "\n",
           name, server, n, k, ef ? "efSearch" : "nprobe", (ef ? ef : nprobe) ? "" : "default/",
           ef ? ef : nprobe, b, answered);
    if (filter != NULL)
      printf("  filter (%s path): %s\n", qv_client_filter_path_name(filter_path), filter);
    printf("  %.1f queries/s over gRPC (%.3f s)\n", qps, secs);
    cli_print_results(recall, k, ids, scores, output == NULL);
  }
  if (miss.n > 0) {
    fprintf(stderr,
            "quiver: note: partial answer (--allow-partial): %zu of %zu call(s) lacked "
            "shard(s)",
            partial_rpcs, (n + b - 1) / b);
    for (size_t i = 0; i < miss.n; i++)
      fprintf(stderr, "%s%u", i ? ", " : " ", miss.v[i]);
    fprintf(stderr, ": no replica of them answered in time (quiver cluster status)\n");
  }
  for (size_t i = 0; by_id && i < n; i++)
    n_unknown += unknown[i];
  if (n_unknown > 0) {
    fprintf(stderr, "quiver: note: %zu of %zu ids are not in %s (their rows are empty):", n_unknown,
            n, name);
    for (size_t i = 0, shown = 0; i < n && shown < 20; i++)
      if (unknown[i]) {
        fprintf(stderr, " %" PRId64, qids[i]);
        shown++;
      }
    fprintf(stderr, "%s\n", n_unknown > 20 ? " ..." : "");
  }
  rc = 0;
done:
  if (rc != 0)
    remote_err ? cli_fail_remote(&e) : cli_fail(&e);
out:
  qv_client_close(cl);
  free(qids);
  free(unknown);
  free(q);
  free(scores);
  free(ids);
  free(gt);
  free(allow);
  free(deny);
  free(miss.v);
  return rc;
}

/* ---- quiver cluster status ---------------------------------------------------------------- */

static uint64_t replica_lag(const qv_replica_info *r) {
  return r->log_seq > r->applied_seq ? r->log_seq - r->applied_seq : 0;
}

/* In sync of the replicas of shard k of collection ci; *n gets how many replicas it has. */
static uint32_t shard_in_sync(const qv_cluster_status *s, size_t ci, uint32_t k, uint32_t *n) {
  uint32_t in_sync = 0;
  *n = 0;
  for (size_t i = 0; i < s->n_replicas; i++) {
    const qv_replica_info *r = &s->replicas[i];
    if (r->collection == ci && r->shard == k) {
      (*n)++;
      in_sync += !strcmp(r->state, "in-sync");
    }
  }
  return in_sync;
}

static void print_cluster_json(const qv_cluster_status *s, int fleet) {
  printf("{\"fleet\": %s, \"nodes\": [", fleet ? "true" : "false");
  for (size_t i = 0; i < s->n_nodes; i++) {
    printf("%s{\"id\": \"", i ? ", " : "");
    cli_print_json_str(s->nodes[i].id);
    printf("\", \"addr\": \"");
    cli_print_json_str(s->nodes[i].addr);
    printf("\", \"replicas\": %u}", s->nodes[i].replicas);
  }
  printf("], \"collections\": [");
  for (size_t ci = 0; ci < s->n_collections; ci++) {
    const qv_collection_info *c = &s->collections[ci];
    printf("%s{\"name\": \"", ci ? ", " : "");
    cli_print_json_str(c->name);
    printf("\", \"state\": \"%s\", \"count\": %" PRIu64 ", \"shards\": %u, \"replicas\": %u, "
           "\"shard_status\": [",
           qv_collection_state_name(c->state), c->count, c->shards, c->replicas);
    for (uint32_t k = 0; fleet && k < c->shards; k++) {
      uint32_t have, in_sync = shard_in_sync(s, ci, k, &have);
      printf("%s{\"shard\": %u, \"in_sync\": %u, \"wanted\": %u, \"replicas\": [", k ? ", " : "", k,
             in_sync, c->replicas);
      int first = 1;
      for (size_t i = 0; i < s->n_replicas; i++) {
        const qv_replica_info *r = &s->replicas[i];
        if (r->collection != ci || r->shard != k)
          continue;
        printf("%s{\"node\": \"", first ? "" : ", ");
        first = 0;
        cli_print_json_str(r->node);
        printf("\", \"addr\": \"");
        cli_print_json_str(r->addr);
        printf("\", \"state\": \"");
        cli_print_json_str(r->state);
        printf("\", \"applied_seq\": %" PRIu64 ", \"log_seq\": %" PRIu64 ", \"lag\": %" PRIu64
               ", \"count\": %" PRIu64 ", \"index_version\": %" PRIu64 "}",
               r->applied_seq, r->log_seq, replica_lag(r), r->count, r->index_version);
      }
      printf("]}");
    }
    printf("]}");
  }
  printf("]}\n");
}

static void print_cluster_text(const qv_cluster_status *s, int fleet) {
  int wid = 4, wad = 4; /* "NODE"/"ADDR" */
  for (size_t i = 0; i < s->n_nodes; i++) {
    int a = (int)strlen(s->nodes[i].id), b = (int)strlen(s->nodes[i].addr);
    wid = a > wid ? a : wid;
    wad = b > wad ? b : wad;
  }
  for (size_t i = 0; i < s->n_replicas; i++) {
    int a = (int)strlen(s->replicas[i].node);
    wid = a > wid ? a : wid;
  }
  if (!fleet) {
    printf("not a fleet: no shard servers (a single node, or a router that sees none); each "
           "collection is served whole by the node itself\n");
  } else {
    printf("%zu node(s)\n  %-*s  %-*s  REPLICAS\n", s->n_nodes, wid, "NODE", wad, "ADDR");
    for (size_t i = 0; i < s->n_nodes; i++)
      printf("  %-*s  %-*s  %u\n", wid, s->nodes[i].id, wad, s->nodes[i].addr,
             s->nodes[i].replicas);
  }
  if (s->n_collections == 0)
    printf("no collections\n");
  for (size_t ci = 0; ci < s->n_collections; ci++) {
    const qv_collection_info *c = &s->collections[ci];
    printf("%s: %u shard(s) x %u replica(s), %s, %" PRIu64 " vectors\n", c->name, c->shards,
           c->replicas, qv_collection_state_name(c->state), c->count);
    for (uint32_t k = 0; fleet && k < c->shards; k++) {
      uint32_t have, in_sync = shard_in_sync(s, ci, k, &have);
      printf("  shard %u: %u of %u in sync%s\n", k, in_sync, c->replicas,
             in_sync == 0            ? " (NOT SERVING)"
             : in_sync < c->replicas ? " (degraded)"
                                     : "");
      if (have == 0)
        continue;
      printf("    %-*s  %-11s  %10s  %10s  %8s  %10s  %5s\n", wid, "NODE", "STATE", "APPLIED",
             "LOG", "LAG", "COUNT", "INDEX");
      for (size_t i = 0; i < s->n_replicas; i++) {
        const qv_replica_info *r = &s->replicas[i];
        if (r->collection == ci && r->shard == k)
          printf("    %-*s  %-11s  %10" PRIu64 "  %10" PRIu64 "  %8" PRIu64 "  %10" PRIu64
                 "  %5" PRIu64 "\n",
                 wid, r->node, r->state, r->applied_seq, r->log_seq, replica_lag(r), r->count,
                 r->index_version);
      }
    }
  }
}

static int cmd_cluster_status(int argc, char **argv, global *g) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'}, GLOBAL_OPTS};
  int json = 0;
  PARSE_BEGIN(opts, NULL)
case 'j':
  json = 1;
  break;
  PARSE_END
  if (no_positional(argc, argv))
    return EXIT_USAGE;
  qv_client *cl;
  int rc = connect_to(g, &cl);
  if (rc)
    return rc;
  qv_error e = {0};
  qv_cluster_status *s = NULL;
  if (qv_client_cluster_status(cl, &s, &e) != QV_OK) {
    rc = cli_fail_remote(&e);
  } else {
    /* A router lists its shard servers and the replicas; a single node neither. */
    int fleet = s->n_nodes > 0 || s->n_replicas > 0;
    for (size_t i = 0; i < s->n_collections; i++)
      fleet |= s->collections[i].shards > 1 || s->collections[i].replicas > 1;
    if (json)
      print_cluster_json(s, fleet);
    else
      print_cluster_text(s, fleet);
    qv_cluster_status_free(s);
  }
  qv_client_close(cl);
  return rc;
}

static int cmd_cluster(int argc, char **argv, global *g) {
  if (argc < 2 || argv[1][0] == '-')
    return cli_usage_error("'quiver cluster' needs a subcommand: status%s", "");
  if (strcmp(argv[1], "status") != 0)
    return cli_usage_error("unknown cluster command '%s' (status)", argv[1]);
  return cmd_cluster_status(argc - 1, argv + 1, g);
}

/* $NAME, or NULL when unset or empty. */
static const char *env_or_null(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

/* "--flag VALUE" or "--flag=VALUE" at argv[*i]: the value, with *i moved past it; else NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag) {
  size_t fl = strlen(flag);
  if (!strcmp(argv[*i], flag) && *i + 1 < argc) {
    *i += 2;
    return argv[*i - 1];
  }
  if (!strncmp(argv[*i], flag, fl) && argv[*i][fl] == '=')
    return argv[(*i)++] + fl + 1;
  return NULL;
}

int cli_server_main(int argc, char **argv) {
  global g = {env_or_null("QUIVER_SERVER"),
              30,
              0,
              env_or_null("QUIVER_TLS_CA"),
              env_or_null("QUIVER_TLS_CERT"),
              env_or_null("QUIVER_TLS_KEY"),
              env_or_null("QUIVER_TOKEN")};
  /* Global options before the command. */
  const char *timeout = NULL;
  static const char *const kFlags[] = {"--server",  "--tls-ca", "--tls-cert",
                                       "--tls-key", "--token",  "--timeout"};
  const char **slots[] = {&g.server, &g.tls_ca, &g.tls_cert, &g.tls_key, &g.token, &timeout};
  const size_t nflags = sizeof kFlags / sizeof kFlags[0];
  int i = 1;
  while (i < argc && argv[i][0] == '-') {
    size_t f = 0;
    const char *v = NULL;
    while (f < nflags && (v = flag_value(argc, argv, &i, kFlags[f])) == NULL)
      f++;
    if (v == NULL)
      return cli_usage_error("unknown option '%s'", argv[i]);
    *slots[f] = v;
    if (slots[f] == &timeout && set_timeout(&g, v) != 0)
      return EXIT_USAGE;
  }
  if (i >= argc)
    return cli_usage_error("missing command%s", "");
  const char *cmd = argv[i];
  int sub_argc = argc - i;
  char **sub_argv = argv + i;
  if (!strcmp(cmd, "create"))
    return cmd_create(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "drop") || !strcmp(cmd, "list") || !strcmp(cmd, "describe") ||
      !strcmp(cmd, "health"))
    return cmd_simple(sub_argc, sub_argv, &g, cmd);
  if (!strcmp(cmd, "upsert"))
    return cmd_upsert(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "delete"))
    return cmd_delete(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "build"))
    return cmd_build(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "push") || !strcmp(cmd, "rollout"))
    return cmd_push(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "rollback"))
    return cmd_rollback(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "bench")) {
    qv_client_opts bo;
    client_opts(&g, &bo); /* bench sets its own deadline (--timeout after 'bench') */
    return cli_bench_main(sub_argc, sub_argv, &bo);
  }
  if (!strcmp(cmd, "search"))
    return cmd_search(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "get"))
    return cmd_get(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "cluster"))
    return cmd_cluster(sub_argc, sub_argv, &g);
  if (!strcmp(cmd, "index") || !strcmp(cmd, "data")) /* offline: no server options */
    return cli_usage_error("'%s' commands work offline and take no server options: put the "
                           "command first ('quiver index ...', 'quiver data ...')",
                           cmd);
  return cli_usage_error("unknown command '%s'", cmd);
}
