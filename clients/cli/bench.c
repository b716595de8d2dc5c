/* quiver bench: a load generator on gRPC's async C core API.
 *
 *   quiver bench NAME --queries FILE [--groundtruth FILE] [--k K] [--nprobe N]
 *                [--concurrency C] [--batch B] [--duration S] [--rate R] [--warmup S]
 *                [--threads T] [--timeout S] [--json]
 *
 * Closed loop (default): C calls in flight, each answered call starts the next at once: peak
 * throughput. Open loop (--rate R): calls start on a fixed schedule of R calls/s whatever the
 * answers do (at most C in flight; a call that cannot start on time counts as late), and each
 * latency is measured from the call's scheduled start, so queueing in the client is not hidden.
 * Each call carries B queries (consecutive rows of the query file, cycling). T client threads
 * each own a completion queue and a channel (separate connections) and 1/T of the concurrency.
 * Reports queries/s, calls/s, latency percentiles from every call, errors by status, and
 * recall@k of the answers against --groundtruth. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "../c/channel.h"
#include "common.h"
#include "quiver/client.h"
#include "quiver/clock.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "quiver_wire.h"

typedef struct bench_cfg {
  const char *server, *name;
  qv_client_opts conn; /* TLS files and token */
  grpc_metadata md[1];
  size_t n_md;
  float *queries;
  size_t nq, dim;
  int64_t *gt;
  size_t gk;
  uint32_t k, nprobe, ef; /* ef: an HNSW collection's efSearch (0 = its default) */
  size_t conc, batch, threads;
  double duration, warmup, rate, timeout;
  int json;
  grpc_slice *payloads; /* one per batch start (nq / batch rounded up) */
  size_t npayloads;
} bench_cfg;

typedef struct call_slot {
  grpc_call *call;
  grpc_metadata_array im, tm;
  grpc_byte_buffer *send, *recv;
  grpc_status_code status;
  grpc_slice details;
  double t_start; /* scheduled start (open loop) or actual start */
  size_t payload;
  int busy;
} call_slot;

typedef struct worker {
  const bench_cfg *cfg;
  int id;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  call_slot *slots;
  size_t nslots;
  /* results (measured phase only) */
  double *lat; /* ms */
  size_t nlat, lcap;
  uint64_t calls_ok, queries_ok, errors[17], late;
  uint64_t recall_hits, recall_total;
  double t_measure, t_end;
} worker;

static gpr_timespec at_mono(double t) {
  double left = t - qv_monotonic_s();
  if (left < 0)
    left = 0;
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_micros((int64_t)(left * 1e6), GPR_TIMESPAN));
}

static int start_call(worker *w, call_slot *s, size_t payload, double t_sched) {
  const bench_cfg *c = w->cfg;
  gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                 gpr_time_from_millis((int64_t)(c->timeout * 1e3), GPR_TIMESPAN));
  s->call = grpc_channel_create_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                     grpc_slice_from_static_string("/quiver.v1.Retrieval/Search"),
                                     NULL, dl, NULL);
  grpc_metadata_array_init(&s->im);
  grpc_metadata_array_init(&s->tm);
  s->send = grpc_raw_byte_buffer_create(&c->payloads[payload], 1);
  s->recv = NULL;
  s->details = grpc_empty_slice();
  s->payload = payload;
  s->t_start = t_sched;
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = c->n_md;
  ops[0].data.send_initial_metadata.metadata = (grpc_metadata *)c->md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->im;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->tm;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  s->busy = 1;
  if (grpc_call_start_batch(s->call, ops, 6, s, NULL) == GRPC_CALL_OK)
    return 0;
  /* Not started: nothing will complete; undo and count it as an error. */
  grpc_byte_buffer_destroy(s->send);
  grpc_metadata_array_destroy(&s->im);
  grpc_metadata_array_destroy(&s->tm);
  grpc_call_unref(s->call);
  s->busy = 0;
  w->errors[GRPC_STATUS_INTERNAL]++;
  return -1;
}

static void record(worker *w, call_slot *s, double now) {
  const bench_cfg *c = w->cfg;
  int measured = s->t_start >= w->t_measure && now <= w->t_end;
  if (measured) {
    if (s->status != GRPC_STATUS_OK) {
      w->errors[s->status < 17 ? s->status : 2]++;
    } else {
      if (w->nlat == w->lcap) {
        w->lcap = w->lcap ? 2 * w->lcap : 65536;
        w->lat = realloc(w->lat, w->lcap * sizeof *w->lat);
      }
      if (w->lat)
        w->lat[w->nlat++] = (now - s->t_start) * 1e3;
      w->calls_ok++;
      w->queries_ok += c->batch;
      if (c->gt != NULL && s->recv != NULL) {
        grpc_byte_buffer_reader r;
        if (grpc_byte_buffer_reader_init(&r, s->recv)) {
          grpc_slice all = grpc_byte_buffer_reader_readall(&r);
          grpc_byte_buffer_reader_destroy(&r);
          Quiver__V1__SearchResponse *m = quiver__v1__search_response__unpack(
              NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
          grpc_slice_unref(all);
          if (m != NULL && m->n_ids == c->batch * c->k) {
            size_t first = s->payload * c->batch;
            for (size_t i = 0; i < c->batch; i++) {
              size_t qi = (first + i) % c->nq;
              w->recall_hits +=
                  (uint64_t)(qv_recall_at_k(m->ids + i * c->k, c->gt + qi * c->gk, c->gk, 1, c->k) *
                                 c->k +
                             0.5);
              w->recall_total += c->k;
            }
          }
          if (m != NULL)
            quiver__v1__search_response__free_unpacked(m, NULL);
        }
      }
    }
  }
  if (s->recv)
    grpc_byte_buffer_destroy(s->recv);
  grpc_byte_buffer_destroy(s->send);
  grpc_metadata_array_destroy(&s->im);
  grpc_metadata_array_destroy(&s->tm);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  s->busy = 0;
}

static void *run_worker(void *arg) {
  worker *w = arg;
  const bench_cfg *c = w->cfg;
  const double t0 = qv_monotonic_s();
  w->t_measure = t0 + c->warmup;
  w->t_end = w->t_measure + c->duration;
  size_t next_payload = (size_t)w->id * 7919;
  size_t inflight = 0;
  /* Open loop: this worker's share of the rate, offset so workers interleave. */
  const double period = c->rate > 0 ? (double)c->threads / c->rate : 0;
  double next_start = t0 + (c->rate > 0 ? period * w->id / (double)c->threads : 0);
  if (c->rate <= 0) {
    for (size_t i = 0; i < w->nslots; i++)
      if (start_call(w, &w->slots[i], next_payload++ % c->npayloads, qv_monotonic_s()) == 0)
        inflight++;
  }
  for (;;) {
    double now = qv_monotonic_s();
    if (c->rate > 0) {
      while (now >= next_start && next_start < w->t_end) {
        call_slot *free_slot = NULL;
        for (size_t i = 0; i < w->nslots && free_slot == NULL; i++)
          if (!w->slots[i].busy)
            free_slot = &w->slots[i];
        if (free_slot == NULL) { /* all C in flight: this start is late (counted, skipped) */
          if (next_start >= w->t_measure)
            w->late++;
        } else if (start_call(w, free_slot, next_payload++ % c->npayloads, next_start) == 0) {
          inflight++;
        }
        next_start += period;
      }
      if (next_start >= w->t_end && inflight == 0)
        break;
    } else if (now >= w->t_end && inflight == 0) {
      break;
    }
    gpr_timespec until =
        c->rate > 0 && next_start < w->t_end ? at_mono(next_start) : at_mono(now + 0.1);
    grpc_event ev = grpc_completion_queue_next(w->cq, until, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT)
      continue;
    if (ev.type != GRPC_OP_COMPLETE)
      break;
    call_slot *s = ev.tag;
    now = qv_monotonic_s();
    record(w, s, now);
    inflight--;
    if (c->rate <= 0 && now < w->t_end && start_call(w, s, next_payload++ % c->npayloads, now) == 0)
      inflight++;
  }
  return NULL;
}

/* The encoded requests, queries and ground truth. */
static void cfg_free(bench_cfg *c) {
  for (size_t p = 0; c->payloads != NULL && p < c->npayloads; p++)
    grpc_slice_unref(c->payloads[p]);
  free(c->payloads);
  free(c->queries);
  free(c->gt);
}

static double pct(const double *v, size_t n, double p) {
  if (n == 0)
    return 0;
  size_t i = (size_t)ceil(p / 100.0 * (double)n);
  if (i > 0)
    i--;
  if (i >= n)
    i = n - 1;
  return v[i];
}

static const char *kBenchHelp =
    "usage: quiver bench NAME --queries FILE [--groundtruth FILE] [--k K] [--nprobe N | --ef N]\n"
    "                    [--concurrency C] [--batch B] [--duration S] [--rate R] [--warmup S]\n"
    "                    [--threads T] [--timeout S] [--json] [--server HOST:PORT]\n"
    "  (TLS and token: the global --tls-ca/--tls-cert/--tls-key/--token before 'bench')\n"
    "  closed loop (default): C calls in flight; open loop (--rate R calls/s): fixed schedule,\n"
    "  latency from each call's scheduled start. B queries per call. T client threads.\n"
    "  Defaults: k 10, nprobe 0 (collection default), C 16, B 1, duration 10, warmup 2, T 1.\n";

int cli_bench_main(int argc, char **argv, const qv_client_opts *conn) {
  static const struct option opts[] = {
      {"queries", required_argument, 0, 'q'}, {"groundtruth", required_argument, 0, 'g'},
      {"k", required_argument, 0, 'k'},       {"nprobe", required_argument, 0, 'n'},
      {"ef", required_argument, 0, 'e'},      {"concurrency", required_argument, 0, 'c'},
      {"batch", required_argument, 0, 'b'},   {"duration", required_argument, 0, 'd'},
      {"rate", required_argument, 0, 'r'},    {"warmup", required_argument, 0, 'w'},
      {"threads", required_argument, 0, 't'}, {"timeout", required_argument, 0, 'T'},
      {"server", required_argument, 0, 's'},  {"json", no_argument, 0, 'j'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  bench_cfg c;
  memset(&c, 0, sizeof c);
  c.conn = *conn;
  c.server = conn->target;
  c.k = 10;
  c.conc = 16;
  c.batch = 1;
  c.threads = 1;
  c.duration = 10;
  c.warmup = 2;
  c.timeout = 10;
  const char *qpath = NULL, *gpath = NULL;
  uint64_t v;
  char *end;
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    double x = 0;
    if (ch == 'd' || ch == 'r' || ch == 'w' || ch == 'T') {
      x = strtod(optarg, &end);
      if (end == optarg || *end != '\0' || !(x >= 0) || x > 86400)
        return cli_usage_error("bench: a duration or rate must be a number >= 0, not '%s'", optarg);
    }
    switch (ch) {
    case 'q':
      qpath = optarg;
      break;
    case 'g':
      gpath = optarg;
      break;
    case 'k':
      if (cli_parse_u64(optarg, 65536, &v) || v == 0)
        return cli_usage_error("--k must be 1..65536, not '%s'", optarg);
      c.k = (uint32_t)v;
      break;
    case 'n':
      if (cli_parse_u64(optarg, 65536, &v))
        return cli_usage_error("--nprobe must be 0..65536, not '%s'", optarg);
      c.nprobe = (uint32_t)v;
      break;
    case 'e':
      if (cli_parse_u64(optarg, 65536, &v))
        return cli_usage_error("--ef must be 0..65536, not '%s'", optarg);
      c.ef = (uint32_t)v;
      break;
    case 'c':
      if (cli_parse_u64(optarg, 100000, &v) || v == 0)
        return cli_usage_error("--concurrency must be 1..100000, not '%s'", optarg);
      c.conc = v;
      break;
    case 'b':
      if (cli_parse_u64(optarg, 1000000, &v) || v == 0)
        return cli_usage_error("--batch must be 1..1000000, not '%s'", optarg);
      c.batch = v;
      break;
    case 't':
      if (cli_parse_u64(optarg, 64, &v) || v == 0)
        return cli_usage_error("--threads must be 1..64, not '%s'", optarg);
      c.threads = v;
      break;
    case 'd':
      if (x <= 0)
        return cli_usage_error("--duration must be > 0 seconds, not '%s'", optarg);
      c.duration = x;
      break;
    case 'r':
      c.rate = x;
      break;
    case 'w':
      c.warmup = x;
      break;
    case 'T':
      if (x <= 0)
        return cli_usage_error("--timeout must be > 0 seconds, not '%s'", optarg);
      c.timeout = x;
      break;
    case 's':
      c.server = optarg;
      break;
    case 'j':
      c.json = 1;
      break;
    case 'h':
      fputs(kBenchHelp, stdout);
      return 0;
    default:
      fputs(kBenchHelp, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind + 1 != argc)
    return cli_usage_error("'quiver bench' needs exactly one collection NAME%s", "");
  c.name = argv[optind];
  if (qpath == NULL)
    return cli_usage_error("'quiver bench' needs --queries FILE%s", "");
  if (c.threads > c.conc)
    c.threads = c.conc;
  qv_error e = {0};
  if (cli_read_f32(qpath, &c.queries, &c.nq, &c.dim, &e) != QV_OK)
    return cli_fail(&e);
  if (gpath != NULL &&
      cli_read_groundtruth(gpath, c.nq, c.k, "need %zu rows (the queries) of at least k = %zu",
                           &c.gt, &c.gk, &e) != QV_OK) {
    free(c.queries);
    return cli_fail(&e);
  }
  /* One encoded request per batch start, made once: the load loop only sends. nq / gcd(nq, B)
   * batches cover every query equally often (so recall is over the whole set). */
  size_t g = c.nq, r = c.batch % c.nq;
  while (r != 0) {
    size_t t = g % r;
    g = r;
    r = t;
  }
  c.npayloads = c.nq / g;
  if (c.npayloads > 4096)
    c.npayloads = 4096;
  c.payloads = calloc(c.npayloads, sizeof *c.payloads);
  float *buf = malloc(c.batch * c.dim * sizeof(float));
  if (c.payloads == NULL || buf == NULL) {
    free(buf);
    cfg_free(&c); /* calloc'd slices are empty: unref is a no-op */
    qv_error_set(&e, QV_ENOMEM, "out of memory");
    return cli_fail(&e);
  }
  for (size_t p = 0; p < c.npayloads; p++) {
    for (size_t i = 0; i < c.batch; i++)
      memcpy(buf + i * c.dim, c.queries + ((p * c.batch + i) % c.nq) * c.dim,
             c.dim * sizeof(float));
    Quiver__V1__SearchRequest req = QUIVER__V1__SEARCH_REQUEST__INIT;
    req.collection = (char *)c.name;
    req.queries = buf;
    req.n_queries = c.batch * c.dim;
    req.dim = (uint32_t)c.dim;
    req.k = c.k;
    req.nprobe = c.nprobe;
    req.ef_search = c.ef;
    size_t len = quiver__v1__search_request__get_packed_size(&req);
    c.payloads[p] = grpc_slice_malloc(len);
    quiver__v1__search_request__pack(&req, GRPC_SLICE_START_PTR(c.payloads[p]));
  }

  grpc_init();
  c.conn.target = c.server;
  c.conn.timeout_ms = (int64_t)(c.timeout * 1e3);
  /* One search first, through the client library: a wrong name, dimension, k or token ends the
   * run at once with the server's message instead of a table of identical errors. */
  {
    qv_client *probe = NULL;
    float *sc = malloc(c.batch * c.k * sizeof *sc);
    int64_t *ids = malloc(c.batch * c.k * sizeof *ids);
    qv_status st = sc && ids ? qv_client_connect(&probe, &c.conn, &e)
                             : qv_error_set(&e, QV_ENOMEM, "out of memory");
    qv_client_search_opts so;
    qv_client_search_opts_init(&so);
    so.nprobe = c.nprobe;
    so.ef_search = c.ef;
    if (st == QV_OK) /* the last request built, as the load sends it (batch B) */
      st = qv_client_search_ex(probe, c.name, buf, c.batch, c.dim, c.k, &so, sc, ids, NULL, 0, NULL,
                               &e);
    qv_client_close(probe);
    free(sc);
    free(ids);
    free(buf);
    if (st != QV_OK) {
      cfg_free(&c);
      grpc_shutdown();
      return cli_fail(&e);
    }
  }
  qv__client_md(c.conn.token, c.md, &c.n_md);
  worker *ws = calloc(c.threads, sizeof *ws);
  pthread_t *th = calloc(c.threads, sizeof *th);
  for (size_t t = 0; t < c.threads; t++) {
    worker *w = &ws[t];
    w->cfg = &c;
    w->id = (int)t;
    grpc_arg arg = {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}};
    grpc_channel_args args = {1, &arg};
    grpc_channel_credentials *cr = qv__client_creds(&c.conn, &e);
    if (cr == NULL)
      return cli_fail(&e);
    w->ch = grpc_channel_create(c.server, cr, &args);
    grpc_channel_credentials_release(cr);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->nslots = c.conc / c.threads + (t < c.conc % c.threads);
    w->slots = calloc(w->nslots, sizeof *w->slots);
  }
  const double t0 = qv_monotonic_s();
  for (size_t t = 0; t < c.threads; t++)
    pthread_create(&th[t], NULL, run_worker, &ws[t]);
  for (size_t t = 0; t < c.threads; t++)
    pthread_join(th[t], NULL);
  const double wall = qv_monotonic_s() - t0;
  /* Merge. */
  size_t nlat = 0;
  uint64_t calls = 0, queries = 0, errors[17] = {0}, nerr = 0, late = 0, rh = 0, rt = 0;
  for (size_t t = 0; t < c.threads; t++)
    nlat += ws[t].nlat;
  double *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
  nlat = 0;
  for (size_t t = 0; t < c.threads; t++) {
    worker *w = &ws[t];
    if (lat && w->nlat > 0)
      memcpy(lat + nlat, w->lat, w->nlat * sizeof *lat);
    nlat += w->nlat;
    calls += w->calls_ok;
    queries += w->queries_ok;
    late += w->late;
    rh += w->recall_hits;
    rt += w->recall_total;
    for (int i = 0; i < 17; i++) {
      errors[i] += w->errors[i];
      nerr += w->errors[i];
    }
    free(w->lat);
    free(w->slots);
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w->cq);
    grpc_channel_destroy(w->ch);
  }
  cli_sort_doubles(lat, nlat);
  const double secs = c.duration;
  const double qps = (double)queries / secs, cps = (double)calls / secs;
  const double p50 = pct(lat, nlat, 50), p90 = pct(lat, nlat, 90), p99 = pct(lat, nlat, 99),
               p999 = pct(lat, nlat, 99.9), mx = nlat ? lat[nlat - 1] : 0;
  const double recall = rt ? (double)rh / (double)rt : -1;
  if (c.json) {
    printf("{\"collection\": \"%s\", \"server\": \"%s\", \"mode\": \"%s\", \"concurrency\": %zu, "
           "\"batch\": %zu, \"rate\": %.1f, \"threads\": %zu, \"k\": %u, \"nprobe\": %u, "
           "\"ef_search\": %u, "
           "\"duration_s\": %.2f, \"warmup_s\": %.2f, \"queries_per_s\": %.1f, "
           "\"calls_per_s\": %.1f, \"calls\": %" PRIu64 ", \"queries\": %" PRIu64
           ", \"latency_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, "
           "\"max\": %.3f}, \"errors\": %" PRIu64 ", \"late\": %" PRIu64 ", \"recall_at_k\": ",
           c.name, c.server, c.rate > 0 ? "open" : "closed", c.conc, c.batch, c.rate, c.threads,
           c.k, c.nprobe, c.ef, c.duration, c.warmup, qps, cps, calls, queries, p50, p90, p99, p999,
           mx, nerr, late);
    cli_print_json_recall(recall);
    printf(", \"error_codes\": {");
    int first = 1;
    for (int i = 0; i < 17; i++)
      if (errors[i]) {
        printf("%s\"%s\": %" PRIu64, first ? "" : ", ", qv__grpc_name((grpc_status_code)i),
               errors[i]);
        first = 0;
      }
    printf("}}\n");
  } else {
    printf("quiver bench %s @ %s: %s loop, concurrency %zu, batch %zu, %zu client thread(s), "
           "k %u, %s %u, %.1f s (+%.1f s warm-up), wall %.1f s\n",
           c.name, c.server, c.rate > 0 ? "open" : "closed", c.conc, c.batch, c.threads, c.k,
           c.ef ? "efSearch" : "nprobe", c.ef ? c.ef : c.nprobe, c.duration, c.warmup, wall);
    if (c.rate > 0)
      printf("  target rate %.0f calls/s, %" PRIu64 " start(s) late (all %zu in flight)\n", c.rate,
             late, c.conc);
    printf("  %.0f queries/s, %.0f calls/s (%" PRIu64 " calls ok, %" PRIu64 " errors)\n", qps, cps,
           calls, nerr);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", p50, p90, p99,
           p999, mx);
    if (recall >= 0)
      printf("  recall@%u %.4f (vs %s)\n", c.k, recall, gpath);
    for (int i = 0; i < 17; i++)
      if (errors[i])
        printf("  %s: %" PRIu64 "\n", qv__grpc_name((grpc_status_code)i), errors[i]);
  }
  free(lat);
  free(ws);
  free(th);
  cfg_free(&c);
  qv__client_md_free(c.md, c.n_md);
  grpc_shutdown();
  return nerr > 0 && calls == 0 ? 1 : 0;
}
