/* ImportIndex (client streaming): the stream's chunks, and the apply at its end. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "quiver/fsutil.h"
#include "server_internal.h"

/* ---- import stream ---------------------------------------------------------------------- */

static void import_end(import_call *u, qv_status st, const char *msg, grpc_byte_buffer *resp) {
  if (st != QV_OK)
    qv__log_failure("ImportIndex", u->name[0] ? u->name : NULL, st, msg);
  qv_stage_free(u->stage); /* before the answer: a client that sees it sees no staging left */
  qv__metrics_call_end(M_IMPORT, st, u->st.t0);
  if (u->have_header)
    qv__metrics_build("import", qv__build_outcome(st), qv_monotonic_s() - u->st.t0);
  qv__finish_call(u->st.call, &u->st.md, 0, resp, st, msg);
  free(u);
}

static void import_post_recv(import_call *u) {
  if (!qv__stream_recv_next(&u->st))
    import_end(u, QV_EINTERNAL, "cannot read the next import message", NULL);
}

static qv_status import_chunk(import_call *u, const Quiver__V1__ImportIndexRequest *r,
                              qv_error *err) {
  const char *f = r->file ? r->file : "";
  if (f[0] == '\0') {
    if (r->data.len > 0)
      return qv_error_set(err, QV_EINVAL, "an import chunk carries data but names no file");
    return QV_OK;
  }
  if (u->server_path[0] != '\0')
    return qv_error_set(err, QV_EINVAL,
                        "an import from a server_path carries no files (send one or the other)");
  return qv_stage_write(u->stage, f, r->offset, r->data.data, r->data.len, r->crc32, err);
}

/* The answer of a successful import, and its log line. staged: the version it staged (0: it
 * swapped in, and serves). */
static void import_answer(import_call *u, qv__entry *e, const qv_build_report *rep, uint64_t staged,
                          grpc_byte_buffer **resp) {
  Quiver__V1__ImportIndexResponse out = QUIVER__V1__IMPORT_INDEX_RESPONSE__INIT;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  qv__fill_info(e, &info, spec);
  out.info = &info;
  out.bytes_received = u->stage ? qv_stage_bytes(u->stage) : 0;
  out.files = u->stage ? qv_stage_files(u->stage) : 0;
  out.recall = rep->recall;
  out.recall_k = rep->recall_k;
  out.recall_nprobe = rep->recall_nprobe;
  out.elapsed_seconds = qv_monotonic_s() - u->st.t0;
  out.version = staged ? staged : info.version;
  *resp = qv__wire_pack(&out.base);
  const char *from = u->server_path[0] ? u->server_path : "streamed";
  if (staged)
    QV_LOG_I("ImportIndex collection=%s %s: staged version %llu (serving %llu): recall@%u=%.4f "
             "at nprobe %u, %.2f s",
             u->name, from, (unsigned long long)staged, (unsigned long long)info.version,
             rep->recall_k, rep->recall, rep->recall_nprobe, out.elapsed_seconds);
  else
    QV_LOG_I("ImportIndex collection=%s %s: %llu vectors, %s, recall@%u=%.4f at nprobe %u, "
             "%.2f s",
             u->name, from, (unsigned long long)info.count, info.index_spec, rep->recall_k,
             rep->recall, rep->recall_nprobe, out.elapsed_seconds);
}

/* The end of an import stream: opens the directory (the staging one, or server_path), checks
 * it, swaps it in and saves; *resp gets the answer. */
qv_status qv__import_apply(import_call *u, grpc_byte_buffer **resp, qv_error *errp) {
  qv__server *s = u->s;
  qv__registry *reg = s->reg;
  qv_error err = {0};
  qv_status st = QV_OK;
  qv_collection *src = NULL;
  qv__entry *e = NULL;
  int created = 0, claimed = 0;
  char dir[QV_PATH_MAX];
  qv_build_report rep;
  memset(&rep, 0, sizeof rep);
  rep.recall = -1;
  if (u->server_path[0] != '\0') {
    char root[QV_PATH_MAX];
    size_t rl;
    if (s->cfg->import_root[0] == '\0') {
      st = qv_error_set(&err, QV_EPRECONDITION,
                        "server-side import is off: start quiverd with --import-root DIR, or "
                        "stream the directory (quiver push)");
    } else if (realpath(s->cfg->import_root, root) == NULL) {
      st = qv_error_set(&err, QV_EPRECONDITION, "--import-root %s: %s", s->cfg->import_root,
                        strerror(errno));
    } else if (realpath(u->server_path, dir) == NULL) {
      st = qv_error_set(&err, QV_ENOTFOUND, "server_path %s: %s", u->server_path, strerror(errno));
    } else if (rl = strlen(root),
               strncmp(dir, root, rl) != 0 || (dir[rl] != '/' && dir[rl] != '\0')) {
      st = qv_error_set(&err, QV_EPRECONDITION, "server_path %s is outside --import-root %s",
                        u->server_path, s->cfg->import_root);
    }
  } else {
    qv_path_fmt(dir, NULL, "%s", qv_stage_dir(u->stage));
  }
  if (st == QV_OK && (st = qv_collection_open(&src, dir, &err)) != QV_OK)
    qv_error_prefix(&err, st, "the imported index");
  if (st == QV_OK) {
    qv_collection_stats ns;
    qv_collection_stats_get(src, &ns, NULL);
    if (ns.open_note[0] != '\0')
      st = qv_error_set(&err, QV_ECORRUPT, "the imported index: %.400s", ns.open_note);
  }
  if (st == QV_OK && u->staged) {
    /* A staged version: held beside the serving one, nothing swapped (rpc_rollout.c). */
    uint64_t version = 0;
    if ((st = qv__registry_get(reg, u->name, &e, &err)) == QV_OK &&
        (st = qv__registry_claim_build(reg, e, &err)) == QV_OK) {
      if (atomic_load(&s->stopping))
        st =
            qv_error_set(&err, QV_EUNAVAILABLE, "the server is shutting down: stage after restart");
      else
        st = qv__import_stage(u, e, src, &rep, &version, &err);
      qv__entry_end_build(e);
    }
    qv_collection_close(src);
    if (st == QV_OK)
      import_answer(u, e, &rep, version, resp);
    qv__registry_put(reg, e);
    *errp = err;
    return st;
  }
  if (st == QV_OK && (st = qv__registry_get(reg, u->name, &e, &err)) == QV_ENOTFOUND && u->create) {
    qv_collection_stats ns;
    qv_collection_stats_get(src, &ns, NULL);
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = ns.dim;
    o.metric = ns.metric;
    o.spec = ns.spec;
    o.default_nprobe = ns.default_nprobe;
    o.n_features = ns.n_features;
    o.n_attrs = ns.n_attrs; /* an index saved with attributes keeps its schema */
    o.attrs = ns.attrs;
    o.device = s->default_device;
    if ((st = qv__registry_create(reg, u->name, &o, &e, &err)) == QV_OK)
      created = 1;
  }
  if (st == QV_OK && (st = qv__registry_claim_build(reg, e, &err)) == QV_OK)
    claimed = 1;
  if (st == QV_OK && reg->cfg.memory_budget > 0) {
    qv_collection_stats ns, cs;
    qv_collection_stats_get(src, &ns, NULL);
    qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
    uint64_t need = qv__registry_memory(reg, e) + ns.vector_bytes + ns.index_bytes + ns.attr_bytes +
                    cs.vector_bytes + cs.index_bytes + cs.attr_bytes;
    if (need > reg->cfg.memory_budget)
      st = qv_error_set(&err, QV_ENOMEM,
                        "import needs about %llu MiB with the index it replaces and the other "
                        "collections, over --memory-budget-mb %llu",
                        (unsigned long long)(need >> 20),
                        (unsigned long long)(reg->cfg.memory_budget >> 20));
  }
  if (st == QV_OK && atomic_load(&s->stopping)) /* a stop waits for imports: do not start one */
    st = qv_error_set(&err, QV_EUNAVAILABLE, "the server is shutting down: import after restart");
  if (st == QV_OK) {
    /* It replaces the serving data: a new data version. Beside a staged one it would leave a
     * newer-numbered version that is older data: refused; a previous one is dropped. */
    int kind = QV__SLOT_NONE;
    qv_collection *beside = qv__entry_slot_get(e, 0, &kind);
    uint64_t bv = beside ? qv_collection_generation(beside) : 0;
    if (beside)
      qv__entry_slot_put(e);
    if (kind == QV__SLOT_STAGED)
      st = qv_error_set(&err, QV_EPRECONDITION,
                        "collection '%s' holds staged version %llu: flip to it or abort it first "
                        "(quiver rollout), or stage this import too (--stage)",
                        u->name, (unsigned long long)bv);
    else if (kind == QV__SLOT_PREVIOUS)
      qv__entry_slot_drop(e, QV__SLOT_PREVIOUS, NULL, NULL);
    if (st == QV_OK)
      st = qv_collection_set_generation(
          src, created ? 1 : qv_collection_generation(qv__entry_col(e)) + 1, &err);
  }
  if (st == QV_OK)
    st = qv_collection_replace(qv__entry_col(e), src, &u->opts, &rep, &err);
  if (st == QV_OK && (st = qv__entry_save(e, &err)) != QV_OK) {
    /* Not durable: put the previous state back rather than serve what a restart would lose. */
    qv_error re = {0};
    qv_build_opts quick;
    qv_build_opts_init(&quick);
    quick.eval_queries = 1;
    if (created || qv_collection_replace(qv__entry_col(e), src, &quick, NULL, &re) == QV_OK)
      qv_error_prefix(&err, st, "import not applied (the snapshot could not be saved)");
    else
      qv_error_prefix(&err, st,
                      "imported and serving, but NOT saved: a restart serves the previous "
                      "state (%.60s)",
                      re.msg);
  }
  if (st != QV_OK && created && claimed) /* while claimed: nobody re-created the name meanwhile */
    qv__registry_drop_claimed(reg, e);
  if (claimed)
    qv__entry_end_build(e);
  qv_collection_close(src); /* the old state after a swap */
  if (st == QV_OK)
    import_answer(u, e, &rep, 0, resp);
  qv__registry_put(reg, e);
  *errp = err;
  return st;
}

static void *import_thread(void *arg) {
  import_call *u = arg;
  qv__server *s = u->s;
  omp_set_num_threads(omp_get_num_procs());
  qv_error err = {0};
  grpc_byte_buffer *resp = NULL;
  const qv_status st = qv__import_apply(u, &resp, &err);
  import_end(u, st, err.msg, resp);
  qv__long_work_end(s);
  return NULL;
}

/* One import message: the first names the collection and the options (and makes the staging
 * directory), every one may carry a chunk of a file. */
qv_status qv__import_message(import_call *u, const Quiver__V1__ImportIndexRequest *r,
                             qv_error *errp) {
  qv_error err = {0};
  qv_status st = QV_OK;
  if (!u->have_header) {
    const char *name = r->collection ? r->collection : "";
    const char *sp = r->server_path ? r->server_path : "";
    if (name[0] == '\0')
      st = qv_error_set(&err, QV_EINVAL, "the first import message must name the collection");
    else if ((st = qv__name_check(name, &err)) == QV_OK && strlen(sp) >= sizeof u->server_path)
      st = qv_error_set(&err, QV_EINVAL, "server_path is too long");
    if (st == QV_OK) {
      snprintf(u->name, sizeof u->name, "%s", name);
      snprintf(u->server_path, sizeof u->server_path, "%s", sp);
      u->create = r->create;
      u->staged = r->stage;
      u->version = r->stage ? r->version : 0;
      if (u->staged && u->create)
        st = qv_error_set(&err, QV_EINVAL,
                          "stage and create exclude each other: a staged version is a new "
                          "version of a collection that exists");
    }
    if (st == QV_OK)
      st = qv__build_opts_from(u->s, &u->opts, r->recall_floor, r->target_recall, r->eval_queries,
                               r->eval_k, &err);
    if (st == QV_OK && u->server_path[0] == '\0') {
      const qv_stage_limits lim = {
          .max_bytes = u->s->reg->cfg.memory_budget, /* more could never be loaded */
          .min_free_bytes = (uint64_t)u->s->cfg->import_min_free_mb << 20,
          .max_bytes_name = "--memory-budget-mb",
          .min_free_name = "--import-min-free-mb"};
      st = qv_stage_create(&u->stage, u->s->reg->root, u->name, &lim, &err);
    }
    u->have_header = st == QV_OK;
  } else if (r->collection && r->collection[0] && strcmp(r->collection, u->name) != 0) {
    st = qv_error_set(&err, QV_EINVAL, "one import stream goes to one collection ('%s')", u->name);
  }
  if (st == QV_OK)
    st = import_chunk(u, r, &err);
  *errp = err;
  return st;
}

static void on_import_recv(void *self, int ok) {
  import_call *u = self;
  qv_error err = {0};
  if (!ok) {
    import_end(u, QV_ECANCELLED, "import stream broken before its end", NULL);
    return;
  }
  if (u->st.recv == NULL) { /* end of stream: verify and swap on a thread of its own */
    if (!u->have_header) {
      import_end(u, QV_EINVAL, "empty import stream: the first message names the collection", NULL);
      return;
    }
    qv_status st = qv__long_work_begin(u->s, "import", &err);
    if (st != QV_OK) {
      import_end(u, st, err.msg, NULL);
      return;
    }
    if (!qv__spawn_detached(import_thread, u)) {
      qv__server *s = u->s; /* import_end frees u */
      import_end(u, QV_ENOMEM, "cannot start an import thread", NULL);
      qv__long_work_end(s);
    }
    return;
  }
  Quiver__V1__ImportIndexRequest *r = (Quiver__V1__ImportIndexRequest *)qv__stream_take(
      &u->st, &quiver__v1__import_index_request__descriptor, &err);
  qv_status st = r ? QV_OK : QV_EINVAL;
  if (st == QV_OK)
    st = qv__import_message(u, r, &err);
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  if (st != QV_OK)
    import_end(u, st, err.msg, NULL);
  else
    import_post_recv(u);
}

void qv__start_import(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                      grpc_byte_buffer *unused) {
  (void)unused;
  import_call *u = calloc(1, sizeof *u);
  if (u == NULL) {
    qv__finish_call(call, md, 0, NULL, QV_ENOMEM, "out of memory");
    return;
  }
  qv__stream_init(&u->st, call, md, on_import_recv, 1); /* its chunks are file writes */
  u->s = s;
  import_post_recv(u);
}
