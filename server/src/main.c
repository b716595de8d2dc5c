/* quiverd — Quiver's gRPC retrieval server.
 *
 *   quiverd [--listen 127.0.0.1:7070] [--data-dir ./quiver-data] [--demo] ...   (--help lists all)
 *
 * Start-up: read options, open every collection under the data dir, optionally create the demo
 * collection, serve. SIGTERM/SIGINT: stop accepting, let in-flight calls finish (grace period),
 * save what is unsaved, exit 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fleet.h"
#include "log.h"
#include "member.h"
#include "quiver/clock.h"
#include "quiver/fsutil.h"
#include "quiver/gpu.h"
#include "quiver/synth.h"
#include "quiver/vecfile.h"
#include "registry.h"
#include "replica.h"
#include "router.h"
#include "server.h"

/* The stop signals are turned into a byte on this pipe, which main reads. A handler (not just a
 * blocked mask and sigwait) because threads that libraries start before main (OpenBLAS's pool,
 * from its constructor) do not block them: a process-directed SIGTERM the kernel hands to one of
 * those would otherwise kill the process with the default action, skipping the graceful stop. */
static int g_stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
  const int saved = errno;
  const unsigned char b = (unsigned char)sig;
  ssize_t w = write(g_stop_pipe[1], &b, 1); /* async-signal-safe; a full pipe has a byte already */
  (void)w;
  errno = saved;
}

/* Cluster mode: this node's id (--node-id, default: the host name) and the address others reach
 * it at (--advertise, default: --listen's host with the bound port; the host name for a
 * wildcard). */
static qv_status cluster_names(const qv__config *cfg, int port, char *id, size_t id_cap, char *addr,
                               size_t addr_cap, qv_error *err) {
  if (cfg->node_id[0] != '\0') {
    snprintf(id, id_cap, "%s", cfg->node_id);
  } else if (gethostname(id, id_cap) != 0) {
    return qv_error_set(err, QV_EINVAL, "cluster: no host name: give --node-id");
  }
  id[id_cap - 1] = '\0';
  if (cfg->advertise[0] != '\0') {
    snprintf(addr, addr_cap, "%s", cfg->advertise);
  } else {
    char host[256];
    snprintf(host, sizeof host, "%s", cfg->listen);
    char *colon = strrchr(host, ':');
    if (colon != NULL)
      *colon = '\0';
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0)
      gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(addr, addr_cap, "%s:%d", host, port);
  }
  return QV_OK;
}

/* Creates and builds the collection "demo" on first start: sift5k when it is there (IVF64,Flat,
 * l2, nprobe 32), else 5000 generated 128-d vectors. */
static qv_status make_demo(qv__registry *reg, const char *prefix, qv_error *err) {
  qv__entry *e;
  if (qv__registry_get(reg, "demo", &e, NULL) == QV_OK) {
    qv__registry_put(reg, e);
    return QV_OK;
  }
  double t0 = qv_monotonic_s();
  char path[QV_PATH_MAX];
  qv_path_fmt(path, NULL, "%s_base.fvecs", prefix);
  qv_vecfile *vf = NULL;
  float *x = NULL;
  int64_t *ids = NULL;
  size_t n = 5000, d = 128;
  const char *source = path;
  if (qv_vecfile_open(&vf, path, NULL) == QV_OK) {
    n = qv_vecfile_rows(vf);
    d = qv_vecfile_cols(vf);
  } else {
    source = "generated vectors (mixture of 64 Gaussians, seed 42)";
  }
  qv_status st = QV_OK;
  x = malloc(n * d * sizeof(float));
  ids = malloc(n * sizeof(int64_t));
  if (x == NULL || ids == NULL || n == 0) {
    st = qv_error_set(err, QV_ENOMEM, "demo: out of memory");
    goto out;
  }
  if (vf != NULL)
    st = qv_vecfile_read_f32(vf, 0, n, x, err);
  else if (qv_synth_mixture(x, n, d, 64, 42) != 0)
    st = qv_error_set(err, QV_ENOMEM, "demo: out of memory");
  if (st != QV_OK)
    goto out;
  for (size_t i = 0; i < n; i++)
    ids[i] = (int64_t)i;
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = d;
  o.metric = QV_METRIC_L2;
  o.spec = "IVF64,Flat";
  o.default_nprobe = 32;
  if ((st = qv__registry_create(reg, "demo", &o, &e, err)) != QV_OK)
    goto out;
  if ((st = qv_collection_add(qv__entry_col(e), n, ids, x, err)) == QV_OK &&
      (st = qv_collection_build(qv__entry_col(e), NULL, NULL, err)) == QV_OK)
    st = qv__entry_save(e, err);
  qv__registry_put(reg, e);
  if (st == QV_OK)
    QV_LOG_I("demo collection 'demo' built from %s: %zu x %zu, IVF64,Flat, l2, nprobe 32, %.2f s",
             source, n, d, qv_monotonic_s() - t0);
out:
  qv_vecfile_close(vf);
  free(x);
  free(ids);
  return st;
}

int main(int argc, char **argv) {
  qv__config cfg;
  int rc = qv__config_load(&cfg, argc, argv);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  int lvl = qv__log_parse_level(cfg.log_level);
  if (lvl < 0) {
    fprintf(stderr, "quiverd: --log-level must be debug, info, warn or error, not '%s'\n",
            cfg.log_level);
    return 2;
  }
  qv__log_min_level = lvl;
  int fmt = qv__log_parse_format(cfg.log_format);
  if (fmt < 0) {
    fprintf(stderr, "quiverd: --log-format must be text, json or logfmt, not '%s'\n",
            cfg.log_format);
    return 2;
  }
  qv__log_fmt = (qv__log_format)fmt;

  /* glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so the
   * buffers a server allocates and frees over and over (4 MiB upsert chunks, a save's copy of a
   * collection, import staging) move from mmap into the heaps of many threads' arenas, which
   * fragment and never shrink: in the 10-minute soak RSS grew from 87 to 175 MiB. A fixed
   * threshold keeps them mmap'd and handed back on free (soak: 41 -> 49 MiB, flat;
   * docs/performance.md). glibc's own tunable (MALLOC_MMAP_THRESHOLD_ in the environment) still
   * wins. */
  if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL && getenv("GLIBC_TUNABLES") == NULL)
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  /* Every connection is a descriptor: raise the soft limit to the hard one (often 1024 against
   * 524288), so that a burst of clients does not run accept() out of descriptors (after which
   * gRPC 1.51 stopped accepting for good, grpc/grpc#20418). */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    const rlim_t was = nofile.rlim_cur;
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) == 0)
      QV_LOG_I("open-file limit raised from %llu to %llu", (unsigned long long)was,
               (unsigned long long)nofile.rlim_max);
    else
      QV_LOG_W("open-file limit stays at %llu: %s", (unsigned long long)was, strerror(errno));
  }

  /* Stop signals: a handler on every thread (see on_stop_signal); the threads started from here
   * on (gRPC's, ours) inherit a mask that blocks them, so their system calls are not interrupted;
   * main unblocks them again once it waits. */
  if (pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "quiverd: pipe: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  qv_error err = {0};
  qv_device dev;
  if (qv_device_parse(cfg.device, &dev, &err) != QV_OK) {
    fprintf(stderr, "quiverd: --device: %s\n", err.msg);
    return 2;
  }
  if (strcmp(cfg.gpu_fallback, "cpu") != 0 && strcmp(cfg.gpu_fallback, "error") != 0) {
    fprintf(stderr, "quiverd: --gpu-fallback must be cpu or error, not '%s'\n", cfg.gpu_fallback);
    return 2;
  }
  qv_wal_opts wal;
  qv_wal_opts_init(&wal);
  unsigned ms = 0;
  char extra;
  if (strcmp(cfg.wal_sync, "always") == 0) {
    wal.sync_always = 1;
  } else if (sscanf(cfg.wal_sync, "interval=%u%c", &ms, &extra) == 1 && ms >= 1 && ms <= 60000) {
    wal.sync_always = 0;
    wal.interval_ms = ms;
  } else {
    fprintf(stderr, "quiverd: --wal-sync must be always or interval=MS (1..60000), not '%s'\n",
            cfg.wal_sync);
    return 2;
  }
  if (strcmp(cfg.batch, "on") != 0 && strcmp(cfg.batch, "off") != 0) {
    fprintf(stderr, "quiverd: --batch must be on or off, not '%s'\n", cfg.batch);
    return 2;
  }
  if (strcmp(cfg.role, "node") != 0 && strcmp(cfg.role, "router") != 0) {
    fprintf(stderr, "quiverd: --role must be node or router, not '%s'\n", cfg.role);
    return 2;
  }
  if (strcmp(cfg.role, "router") == 0 && cfg.cluster[0] == '\0') {
    fprintf(stderr, "quiverd: --role router needs --cluster etcd=...,nats=... (the fleet it "
                    "routes to)\n");
    return 2;
  }
  qv_blas_threads_init((int)cfg.omp_threads);
  /* GPU contexts first: reopened collections are placed as they open. */
  qv_gpu_opts go;
  qv_gpu_opts_init(&go);
  go.budget_bytes = (size_t)cfg.gpu_memory_mb << 20;
  go.temp_bytes = (size_t)cfg.gpu_temp_mb << 20;
  go.fallback_cpu = strcmp(cfg.gpu_fallback, "cpu") == 0;
  if (qv_gpu_init(&go, &err) != QV_OK) {
    QV_LOG_E("GPU: %s", err.msg);
    return 1;
  }
  for (int i = 0; i < qv_gpu_devices(); i++) {
    qv_gpu_info gi;
    qv_gpu_info_get(i, &gi, NULL);
    QV_LOG_I("GPU %d: %zu MiB, budget for collections %zu MiB", i, gi.total_bytes >> 20,
             gi.budget_bytes >> 20);
  }
  if (qv_gpu_devices() == 0)
    QV_LOG_I("no GPU in use (%s): collections serve from the CPU",
             qv_gpu_compiled() ? "none present" : "this build links the CPU-only FAISS");
  if (qv_mkdirs(cfg.data_dir, &err) != QV_OK) {
    QV_LOG_E("data dir: %s", err.msg);
    return 1;
  }
  qv__registry reg;
  qv__registry_cfg regcfg = {
      .wal = wal,
      .snapshot_bytes = (uint64_t)cfg.wal_snapshot_mb << 20,
      .keep_versions = (uint32_t)cfg.keep_versions,
      .memory_budget = (uint64_t)cfg.memory_budget_mb << 20,
      .batching = strcmp(cfg.batch, "on") == 0,
      .batch = {.max_queries = (size_t)cfg.batch_max_queries,
                .max_wait_us = (uint32_t)cfg.batch_wait_us,
                .omp_threads = (int)cfg.omp_threads,
                .max_active = (int)(cfg.batch_leaders > 0 ? cfg.batch_leaders
                                    : cfg.threads > 0     ? cfg.threads
                                                          : sysconf(_SC_NPROCESSORS_ONLN))}};
  if (qv__registry_open(&reg, cfg.data_dir, &regcfg, &err) != QV_OK) {
    QV_LOG_E("opening %s: %s", cfg.data_dir, err.msg);
    return 1;
  }
  if (cfg.demo && make_demo(&reg, cfg.demo_data, &err) != QV_OK) {
    QV_LOG_E("demo collection: %s", err.msg);
    qv__registry_close(&reg);
    return 1;
  }
  grpc_init();
  /* The fleet: a router answers through the map it reads from etcd (router.h); a node joins and
   * serves the replicas assigned to it (replica.h). */
  const int router_role = strcmp(cfg.role, "router") == 0;
  char etcd[1024] = "", nats[1024] = "", node_id[64] = "", addr[320] = "";
  qv__router *router = NULL;
  if (cfg.cluster[0] != '\0' &&
      (qv__cluster_parse(cfg.cluster, etcd, sizeof etcd, nats, sizeof nats, &err) != QV_OK ||
       cluster_names(&cfg, 0, node_id, sizeof node_id, addr, sizeof addr, &err) != QV_OK ||
       (router_role && qv__router_new(&router, &cfg, etcd, nats, node_id, &err) != QV_OK))) {
    QV_LOG_E("%s", err.msg);
    qv__registry_close(&reg);
    grpc_shutdown();
    return 1;
  }
  qv__server *srv;
  int port = 0;
  if (qv__server_start(&srv, &cfg, &reg, router, &port, &err) != QV_OK) {
    QV_LOG_E("%s", err.msg);
    qv__router_free(router);
    qv__registry_close(&reg);
    grpc_shutdown();
    return 1;
  }
  QV_LOG_I("quiverd serving on %s (port %d), data dir %s, %lld polling thread(s), %zu "
           "collection(s)%s",
           cfg.listen, port, cfg.data_dir, (long long)qv__server_pollers(srv), reg.n,
           router_role ? ", fleet router" : "");
  if (cfg.port_file[0] != '\0') {
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", port);
    if (qv_file_write_atomic(cfg.port_file, buf, (size_t)len, &err) != QV_OK)
      QV_LOG_W("--port-file: %s", err.msg);
  }
  qv__member *member = NULL;
  qv__replicas *replicas = NULL;
  if (cfg.cluster[0] != '\0') {
    qv_status st = cluster_names(&cfg, port, node_id, sizeof node_id, addr, sizeof addr, &err);
    if (st == QV_OK && router_role)
      st = qv__router_join(router, addr, &err);
    if (st == QV_OK && !router_role)
      st = qv__member_join(&member, etcd, QV__FLEET_NODES, node_id, addr, cfg.lease_s, &err);
    if (st == QV_OK && !router_role && nats[0] != '\0')
      st = qv__replicas_start(&replicas, srv, &cfg, member, etcd, nats, node_id, addr, &err);
    if (st != QV_OK) {
      QV_LOG_E("%s", err.msg);
      qv__member_leave(member);
      qv__server_stop(srv);
      qv__router_free(router);
      qv__registry_close(&reg);
      grpc_shutdown();
      return 1;
    }
  }
  pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
  struct pollfd pfd = {.fd = g_stop_pipe[0], .events = POLLIN};
  unsigned char got = 0;
  while (read(g_stop_pipe[0], &got, 1) != 1)
    (void)poll(&pfd, 1, -1); /* EINTR (the handler ran on this thread) or nothing yet: wait */
  const int sig = got;
  QV_LOG_I("received %s: shutting down (grace %lld ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
           (long long)cfg.shutdown_grace_ms);
  double t0 = qv_monotonic_s();
  qv__member_leave(member); /* first: routers stop sending here before it stops answering */
  qv__replicas_stop(replicas);
  const int deaf = qv__server_accept_dead(srv);
  qv__server_stop(srv);
  qv__router_free(router); /* after the calls that use it */
  const size_t unsaved = qv__registry_close(&reg);
  qv_gpu_shutdown();
  grpc_shutdown();
  if (deaf) {
    QV_LOG_E("stopped in %.2f s because the listener stopped accepting (see above): exit 1",
             qv_monotonic_s() - t0);
    return 1;
  }
  if (unsaved > 0) {
    /* Nothing acknowledged is lost (it is in the logs), but a supervisor should know. */
    QV_LOG_E("stopped in %.2f s, but %zu collection(s) could not be saved (see above): exit 1",
             qv_monotonic_s() - t0, unsaved);
    return 1;
  }
  QV_LOG_I("stopped in %.2f s", qv_monotonic_s() - t0);
  return 0;
}
