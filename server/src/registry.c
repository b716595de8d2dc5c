#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: a flip must not starve under searches */
#include "registry.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "quiver/dirformat.h"
#include "quiver/fsutil.h"
#include "quiver/stage.h"

struct qv__entry {
  char name[QV__NAME_MAX + 1];
  char dir[QV_PATH_MAX];
  qv_collection *col;
  atomic_int refs;
  atomic_int building; /* 1 while a build runs */
  atomic_int dirty;    /* changed in memory since the last save */
  int dropping;        /* a drop is under way: hidden from get, name still taken (registry mu) */
  pthread_mutex_t save_mu; /* serialises saves with each other and with a drop */
  qv__batcher *batcher;    /* coalesces its searches; NULL when batching is off */
  int dropped;             /* the directory is gone on purpose (save_mu) */
  /* The data version held beside the serving one (docs/rollout.md): staged (DATA_DIR/staged/NAME,
   * its own log) or the previous one after a flip (in memory; its old staged directory is kept
   * until it is released). Searches and writes on it hold slot_rw for reading; setting, flipping
   * and dropping it for writing. */
  pthread_rwlock_t slot_rw;
  qv_collection *slot;
  int slot_kind; /* qv__slot_kind */
  /* 1: the serving version's writes reach the slot too (qv__slot_write). A fleet replica's
   * staged version starts at 0: its replica feeds it from the shard's log first (replica.c). */
  atomic_int slot_fed;
  atomic_int fleet; /* a fleet replica's local collection (replica.c marks it) */
  char slot_dir[QV_PATH_MAX];
  /* Writers (upsert chunks, deletes) hold it for reading while they apply to both versions; a
   * flip holds it for writing from the swap to the saved snapshot, so that no write lands in
   * between (a crash there would replay it onto the version flipped from). */
  pthread_rwlock_t write_rw;
};

const char *qv__entry_name(const qv__entry *e) {
  return e->name;
}

qv_collection *qv__entry_col(const qv__entry *e) {
  return e->col;
}

qv__batcher *qv__entry_batcher(const qv__entry *e) {
  return e->batcher;
}

void qv__entry_ref(qv__entry *e) {
  atomic_fetch_add(&e->refs, 1);
}

int qv__entry_building(const qv__entry *e) {
  return atomic_load(&e->building);
}

void qv__entry_end_build(qv__entry *e) {
  atomic_store(&e->building, 0);
}

void qv__entry_mark_dirty(qv__entry *e) {
  atomic_store(&e->dirty, 1);
}

qv_status qv__name_check(const char *name, qv_error *err) {
  size_t n = name ? strlen(name) : 0;
  int ok = n >= 1 && n <= QV__NAME_MAX;
  for (size_t i = 0; ok && i < n; i++) {
    char ch = name[i];
    int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    ok = alnum || ch == '_' || (i > 0 && (ch == '-' || ch == '.'));
  }
  if (!ok)
    return qv_error_set(err, QV_EINVAL,
                        "collection name '%.80s' is invalid: use 1-64 characters of A-Z a-z 0-9 "
                        "_ . - (not starting with . or -)",
                        name ? name : "");
  return QV_OK;
}

static void entry_free(qv__entry *e) {
  qv__batcher_free(e->batcher); /* nothing is queued: queued searches hold a reference */
  qv_collection_close(e->col);
  qv_collection_close(e->slot);
  pthread_mutex_destroy(&e->save_mu);
  pthread_rwlock_destroy(&e->slot_rw);
  pthread_rwlock_destroy(&e->write_rw);
  free(e);
}

static qv_status add_entry(qv__registry *r, qv__entry *e, qv_error *err) {
  if (r->cfg.batching && e->batcher == NULL) {
    qv_status st = qv__batcher_new(&e->batcher, e->col, &r->cfg.batch, err);
    if (st != QV_OK)
      return st;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    qv__entry **it = realloc(r->items, cap * sizeof *it);
    if (it == NULL)
      return qv_error_set(err, QV_ENOMEM, "out of memory growing the registry");
    r->items = it;
    r->cap = cap;
  }
  r->items[r->n++] = e;
  return QV_OK;
}

/* A new entry for a checked name (qv__name_check) under the registry's root. */
static qv_status new_entry(qv__registry *r, const char *name, qv__entry **out, qv_error *err) {
  *out = NULL;
  qv__entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  int wn = snprintf(e->name, sizeof e->name, "%s", name);
  if (wn < 0 || (size_t)wn >= sizeof e->name ||
      qv_path_fmt(e->dir, NULL, "%s/%s", r->root, name) != QV_OK ||
      qv_path_fmt(e->slot_dir, NULL, "%s/%s", r->staged_root, name) != QV_OK) {
    free(e); /* unreachable: qv__registry_open bounds the root */
    return qv_error_set(err, QV_EINVAL, "collection name or data directory path is too long");
  }
  atomic_init(&e->refs, 1); /* the registry's own reference */
  atomic_init(&e->building, 0);
  atomic_init(&e->dirty, 0);
  pthread_mutex_init(&e->save_mu, NULL);
  /* Writer-preferring: a flip is not starved by a steady stream of searches (none of their
   * holders takes it twice). */
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&e->slot_rw, &a);
  pthread_rwlock_init(&e->write_rw, &a);
  pthread_rwlockattr_destroy(&a);
  *out = e;
  return QV_OK;
}

/* At start: the staged version a collection held (DATA_DIR/staged/NAME), with its log replayed.
 * One no newer than the serving version is what a flip left behind (the previous version is not
 * kept over a restart): removed. One that fails its checks is logged and kept aside. */
static void slot_open(qv__registry *r, qv__entry *e) {
  struct stat sb;
  if (stat(e->slot_dir, &sb) != 0)
    return;
  qv_error oe = {0};
  qv_collection *c = NULL;
  const uint64_t serving = qv_collection_generation(e->col);
  if (qv_collection_open(&c, e->slot_dir, &oe) != QV_OK) {
    QV_LOG_E("collection '%s': its staged version in %s is not held: %s (left as it is; remove "
             "it, or stage the version again)",
             e->name, e->slot_dir, oe.msg);
    return;
  }
  const uint64_t g = qv_collection_generation(c);
  if (g <= serving) {
    qv_collection_close(c);
    qv_remove_tree(e->slot_dir, NULL);
    QV_LOG_I("collection '%s': removed %s (version %llu, not newer than the serving %llu: what a "
             "flip left)",
             e->name, e->slot_dir, (unsigned long long)g, (unsigned long long)serving);
    return;
  }
  qv_collection_set_keep_versions(c, 1, NULL);
  if (qv_collection_wal_attach(c, e->slot_dir, &r->cfg.wal, NULL, &oe) != QV_OK) {
    QV_LOG_E("collection '%s': its staged version %llu is not held: its write-ahead log: %s",
             e->name, (unsigned long long)g, oe.msg);
    qv_collection_close(c);
    return;
  }
  e->slot = c;
  e->slot_kind = QV__SLOT_STAGED;
  atomic_store(&e->slot_fed, 1); /* a fleet replica says otherwise when it opens it */
  QV_LOG_I("collection '%s': staged version %llu held beside the serving %llu", e->name,
           (unsigned long long)g, (unsigned long long)serving);
}

qv_status qv__registry_open(qv__registry *r, const char *data_dir, const qv__registry_cfg *cfg,
                            qv_error *err) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  r->cfg = *cfg;
  if (r->cfg.keep_versions < 1)
    r->cfg.keep_versions = 2;
  if (strlen(data_dir) > QV_COLLECTION_DIR_MAX - QV__NAME_MAX - sizeof "/collections/")
    return qv_error_set(err, QV_EINVAL, "--data-dir is too long");
  qv_path_fmt(r->root, NULL, "%s/collections", data_dir);
  qv_path_fmt(r->staged_root, NULL, "%s/staged", data_dir);
  qv_status st = qv_mkdirs(r->root, err);
  if (st == QV_OK)
    st = qv_mkdirs(r->staged_root, err);
  if (st != QV_OK)
    return st;
  qv_stage_clean(r->root); /* the staging of imports a stop cut short */
  DIR *d = opendir(r->root);
  if (d == NULL)
    return qv_error_set(err, QV_EIO, "cannot read %s", r->root);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (qv__name_check(de->d_name, NULL) != QV_OK) {
      QV_LOG_W("data dir: ignoring %s/%s (not a valid collection name)", r->root, de->d_name);
      continue;
    }
    qv__entry *e;
    qv_status nst = new_entry(r, de->d_name, &e, err);
    if (nst != QV_OK) {
      closedir(d);
      return nst;
    }
    qv_error oe = {0};
    if (qv_collection_open(&e->col, e->dir, &oe) != QV_OK) {
      QV_LOG_E("collection '%s' not served: %s (its directory is left as it is; move it aside "
               "to reuse the name)",
               e->name, oe.msg);
      entry_free(e);
      continue;
    }
    qv_collection_stats os;
    qv_collection_stats_get(e->col, &os, NULL);
    if (os.open_note[0] != '\0')
      QV_LOG_W("collection '%s': %s", e->name, os.open_note);
    qv_collection_set_keep_versions(e->col, r->cfg.keep_versions, NULL);
    qv_wal_replay rp;
    char marker[QV_PATH_MAX];
    qv_path_fmt(marker, NULL, "%s/" QV_ACCEPT_WAL_LOSS, e->dir);
    qv_wal_opts wo = r->cfg.wal;
    wo.accept_loss = access(marker, F_OK) == 0; /* the operator accepted a loss (docs) */
    if (qv_collection_wal_attach(e->col, e->dir, &wo, &rp, &oe) != QV_OK) {
      QV_LOG_E("collection '%s' not served: its write-ahead log: %s", e->name, oe.msg);
      entry_free(e);
      continue;
    }
    const int lost = rp.gaps > 0 || rp.damaged_segments > 0;
    if (lost)
      QV_LOG_E("collection '%s': served WITHOUT acknowledged writes, as %s asks: its write-ahead "
               "log misses records %llu..%llu (%llu gap(s)) and %llu damaged segment(s)",
               e->name, marker, (unsigned long long)rp.missing_first,
               (unsigned long long)rp.missing_last, (unsigned long long)rp.gaps,
               (unsigned long long)rp.damaged_segments);
    if (wo.accept_loss) {
      /* Make the accepted state the snapshot now, so that the marker accepts no later loss. */
      qv_error se = {0};
      if (qv__entry_save(e, &se) != QV_OK)
        QV_LOG_E("collection '%s': save after accepting the loss failed: %s (%s is kept)", e->name,
                 se.msg, marker);
      else if (unlink(marker) != 0)
        QV_LOG_E("collection '%s': could not remove %s: remove it by hand", e->name, marker);
      else
        QV_LOG_W("collection '%s': loss accepted and saved; %s removed", e->name, marker);
    }
    if (rp.records > 0 || rp.dropped_bytes > 0)
      QV_LOG_I("collection '%s': write-ahead log replayed: %llu record(s), %llu upserted, %llu "
               "deleted%s",
               e->name, (unsigned long long)rp.records, (unsigned long long)rp.upserted,
               (unsigned long long)rp.deleted,
               rp.dropped_bytes ? ", a torn tail cut (a crash mid-write; never acknowledged)" : "");
    if (rp.records > 0)
      atomic_store(&e->dirty, 1); /* folded into a snapshot at the next save */
    qv_collection_stats s;
    qv_collection_stats_get(e->col, &s, NULL);
    QV_LOG_I("collection '%s' opened: %s %s dim=%zu count=%llu %s, serving from %s", e->name,
             s.spec, qv_metric_name(s.metric), s.dim, (unsigned long long)s.count,
             s.trained ? "ready" : "not built", s.placement);
    if (s.trained && s.device == QV_DEVICE_GPU && s.gpu < 0)
      QV_LOG_W("collection '%s' asked for a GPU but serves from the CPU: %s", e->name, s.placement);
    slot_open(r, e);
    if ((st = add_entry(r, e, err)) != QV_OK) {
      entry_free(e);
      closedir(d);
      return st;
    }
  }
  closedir(d);
  return QV_OK;
}

size_t qv__registry_close(qv__registry *r) {
  size_t failed = 0;
  for (size_t i = 0; i < r->n; i++) {
    qv__entry *e = r->items[i];
    if (atomic_load(&e->dirty)) {
      qv_error se = {0};
      if (qv__entry_save(e, &se) != QV_OK) {
        failed++;
        QV_LOG_E("collection '%s': save at shutdown failed: %s (its writes are in its write-ahead "
                 "log and are replayed at the next start)",
                 e->name, se.msg);
      } else
        QV_LOG_I("collection '%s' saved", e->name);
    }
    entry_free(e);
  }
  free(r->items);
  pthread_mutex_destroy(&r->mu);
  memset(r, 0, sizeof *r);
  return failed;
}

/* The entry named name; one being dropped only when with_dropping. */
static qv__entry *find(qv__registry *r, const char *name, size_t *idx, int with_dropping) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->items[i]->name, name) == 0 && (with_dropping || !r->items[i]->dropping)) {
      if (idx)
        *idx = i;
      return r->items[i];
    }
  return NULL;
}

qv_status qv__registry_get(qv__registry *r, const char *name, qv__entry **out, qv_error *err) {
  *out = NULL;
  pthread_mutex_lock(&r->mu);
  qv__entry *e = name ? find(r, name, NULL, 0) : NULL;
  if (e != NULL)
    atomic_fetch_add(&e->refs, 1);
  pthread_mutex_unlock(&r->mu);
  if (e == NULL)
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", name ? name : "");
  *out = e;
  return QV_OK;
}

void qv__registry_put(qv__registry *r, qv__entry *e) {
  (void)r;
  if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
    entry_free(e);
}

/* Whether dir holds anything of a collection: a manifest (its own or a version's) or a log. A
 * directory left by an interrupted create holds none of these and may be replaced. */
static int dir_holds_collection(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int found = 0;
  struct dirent *de;
  char path[QV_PATH_MAX];
  struct stat sb;
  while (!found && (de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    if (strcmp(n, "MANIFEST.json") == 0 || strncmp(n, "wal-v", 5) == 0) {
      found = 1;
    } else if (strcmp(n, "wal.log") == 0) {
      qv_path_fmt(path, NULL, "%s/%s", dir, n);
      found = stat(path, &sb) == 0 && sb.st_size > 0;
    } else if (n[0] == 'v' && strlen(n) == 7 && strspn(n + 1, "0123456789") == 6) {
      qv_path_fmt(path, NULL, "%s/%s/MANIFEST.json", dir, n);
      found = access(path, F_OK) == 0;
    }
  }
  closedir(d);
  return found;
}

qv_status qv__registry_create(qv__registry *r, const char *name, const qv_collection_opts *o,
                              qv__entry **out, qv_error *err) {
  *out = NULL;
  qv_status st = qv__name_check(name, err);
  if (st != QV_OK)
    return st;
  qv__entry *e;
  if ((st = new_entry(r, name, &e, err)) != QV_OK)
    return st;
  if ((st = qv_collection_create(&e->col, o, err)) != QV_OK) {
    entry_free(e);
    return st;
  }
  qv_collection_set_keep_versions(e->col, r->cfg.keep_versions, NULL);
  pthread_mutex_lock(&r->mu);
  qv__entry *old = find(r, name, NULL, 1);
  if (old != NULL)
    st = old->dropping
             ? qv_error_set(err, QV_EPRECONDITION,
                            "collection '%s' is being dropped: retry when the drop ends", name)
             : qv_error_set(err, QV_EEXIST, "collection '%s' already exists", name);
  else if (dir_holds_collection(e->dir))
    /* A collection that failed its checks at start: never delete data we could not read. */
    st = qv_error_set(err, QV_EPRECONDITION,
                      "%s holds a collection that could not be opened at start (see the server "
                      "log): move it aside or delete it, then create '%s' again",
                      e->dir, name);
  if (st != QV_OK) {
    pthread_mutex_unlock(&r->mu);
    entry_free(e);
    return st;
  }
  /* Persist before registering: a created collection survives a restart. A leftover directory
   * without a manifest (an interrupted create) holds nothing and is replaced. */
  qv_remove_tree(e->dir, NULL);
  if ((st = qv_collection_save(e->col, e->dir, err)) != QV_OK ||
      (st = qv_dir_fsync(r->root, err)) != QV_OK ||
      (st = qv_collection_wal_attach(e->col, e->dir, &r->cfg.wal, NULL, err)) != QV_OK ||
      (st = add_entry(r, e, err)) != QV_OK) {
    pthread_mutex_unlock(&r->mu);
    qv_remove_tree(e->dir, NULL);
    entry_free(e);
    return st;
  }
  atomic_fetch_add(&e->refs, 1);
  pthread_mutex_unlock(&r->mu);
  *out = e;
  return QV_OK;
}

qv_status qv__registry_claim_build(qv__registry *r, qv__entry *e, qv_error *err) {
  qv_status st = QV_OK;
  int zero = 0;
  pthread_mutex_lock(&r->mu);
  if (e->dropping)
    st = qv_error_set(err, QV_ENOTFOUND, "collection '%s' is being dropped", e->name);
  else if (!atomic_compare_exchange_strong(&e->building, &zero, 1))
    st = qv_error_set(err, QV_EPRECONDITION, "collection '%s' is already being built", e->name);
  pthread_mutex_unlock(&r->mu);
  return st;
}

/* The second half of a drop, once e is marked dropping (hidden, name still taken). */
static void drop_marked(qv__registry *r, qv__entry *e) {
  /* Wait for a save in progress, then move the directory out of the way first, so a crash
   * mid-delete leaves no half collection and no later save can bring it back. */
  char trash[QV_PATH_MAX];
  qv_path_fmt(trash, NULL, "%s/.dropped-%s-%ld-%d", r->root, e->name, (long)time(NULL),
              (int)getpid());
  pthread_mutex_lock(&e->save_mu);
  e->dropped = 1;
  atomic_store(&e->dirty, 0);
  if (rename(e->dir, trash) != 0)
    qv_path_fmt(trash, NULL, "%s", e->dir);
  pthread_mutex_unlock(&e->save_mu);
  qv_dir_fsync(r->root, NULL);
  qv_remove_tree(trash, NULL);
  pthread_rwlock_wrlock(&e->slot_rw); /* the version beside it goes too */
  qv_collection_close(e->slot);
  e->slot = NULL;
  e->slot_kind = QV__SLOT_NONE;
  qv_remove_tree(e->slot_dir, NULL);
  pthread_rwlock_unlock(&e->slot_rw);

  pthread_mutex_lock(&r->mu);
  size_t i;
  if (find(r, e->name, &i, 1) == e)
    r->items[i] = r->items[--r->n];
  pthread_mutex_unlock(&r->mu);
  qv__registry_put(r, e);
}

qv_status qv__registry_drop(qv__registry *r, const char *name, qv_error *err) {
  pthread_mutex_lock(&r->mu);
  qv__entry *e = name ? find(r, name, NULL, 0) : NULL;
  if (e == NULL) {
    pthread_mutex_unlock(&r->mu);
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", name ? name : "");
  }
  if (atomic_load(&e->building)) {
    pthread_mutex_unlock(&r->mu);
    return qv_error_set(err, QV_EPRECONDITION,
                        "collection '%s' is being built: drop it when the build ends", name);
  }
  /* From here on the entry is invisible to get and build, and its name stays taken until the
   * directory is gone, so a create of the same name cannot share the directory. */
  e->dropping = 1;
  pthread_mutex_unlock(&r->mu);
  drop_marked(r, e);
  return QV_OK;
}

void qv__registry_drop_claimed(qv__registry *r, qv__entry *e) {
  pthread_mutex_lock(&r->mu);
  if (e->dropping || find(r, e->name, NULL, 0) != e) { /* someone else's drop came first */
    pthread_mutex_unlock(&r->mu);
    return;
  }
  e->dropping = 1;
  pthread_mutex_unlock(&r->mu);
  drop_marked(r, e);
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(qv__entry *const *)a)->name, (*(qv__entry *const *)b)->name);
}

qv_status qv__registry_list(qv__registry *r, qv__entry ***out, size_t *n, qv_error *err) {
  pthread_mutex_lock(&r->mu);
  *n = r->n;
  *out = malloc((r->n ? r->n : 1) * sizeof **out);
  if (*out == NULL) {
    pthread_mutex_unlock(&r->mu);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  *n = 0;
  for (size_t i = 0; i < r->n; i++)
    if (!r->items[i]->dropping) {
      (*out)[(*n)++] = r->items[i];
      atomic_fetch_add(&r->items[i]->refs, 1);
    }
  pthread_mutex_unlock(&r->mu);
  qsort(*out, *n, sizeof **out, by_name);
  return QV_OK;
}

qv_status qv__entry_save(qv__entry *e, qv_error *err) {
  qv_status st = QV_OK;
  pthread_mutex_lock(&e->save_mu);
  if (!e->dropped) { /* once dropped its directory is gone on purpose */
    atomic_store(&e->dirty, 0);
    st = qv_collection_save(e->col, e->dir, err);
    if (st != QV_OK)
      atomic_store(&e->dirty, 1);
  }
  pthread_mutex_unlock(&e->save_mu);
  return st;
}

qv_status qv__entry_wrote(qv__registry *r, qv__entry *e, qv_error *err) {
  pthread_mutex_lock(&r->mu);
  const int gone = e->dropping;
  pthread_mutex_unlock(&r->mu);
  if (gone) /* a drop began while the writes were applied: they went with the collection */
    return qv_error_set(err, QV_ENOTFOUND,
                        "collection '%s' was dropped while these writes were applied: none of "
                        "them is kept",
                        e->name);
  atomic_store(&e->dirty, 1);
  qv_collection_stats s;
  qv_collection_stats_get(e->col, &s, NULL);
  if (s.wal_bytes < r->cfg.snapshot_bytes)
    return QV_OK;
  QV_LOG_I("collection '%s': write-ahead log at %llu MiB: saving a snapshot", e->name,
           (unsigned long long)(s.wal_bytes >> 20));
  /* The writes are in the log already (acknowledging them is right): a snapshot that fails is
   * logged, and the collection stays dirty for the next one. */
  qv_error se = {0};
  if (qv__entry_save(e, &se) != QV_OK)
    QV_LOG_E("collection '%s': the snapshot the log's size asked for failed (the writes are "
             "kept in the log; the next write or the stop tries again): %s",
             e->name, se.msg);
  return QV_OK;
}

uint64_t qv__registry_memory(qv__registry *r, const qv__entry *except) {
  uint64_t total = 0;
  qv__entry **es = NULL;
  size_t n = 0;
  /* Referenced entries, then their figures outside the registry lock. */
  if (qv__registry_list(r, &es, &n, NULL) != QV_OK)
    return 0;
  for (size_t i = 0; i < n; i++) {
    qv_collection_stats s;
    if (es[i] != except && qv_collection_stats_get(es[i]->col, &s, NULL) == QV_OK)
      total += s.vector_bytes + s.index_bytes + s.attr_bytes;
    if (es[i] != except)
      total += qv__entry_slot_bytes(es[i]);
    qv__registry_put(r, es[i]);
  }
  free(es);
  return total;
}

/* ---- the version beside the serving one ------------------------------------------------ */

qv_collection *qv__entry_slot_get(qv__entry *e, uint64_t version, int *kind) {
  pthread_rwlock_rdlock(&e->slot_rw);
  if (e->slot != NULL && (version == 0 || qv_collection_generation(e->slot) == version)) {
    if (kind)
      *kind = e->slot_kind;
    return e->slot;
  }
  pthread_rwlock_unlock(&e->slot_rw);
  if (kind)
    *kind = QV__SLOT_NONE;
  return NULL;
}

void qv__entry_slot_put(qv__entry *e) {
  pthread_rwlock_unlock(&e->slot_rw);
}

uint64_t qv__entry_slot_bytes(qv__entry *e) {
  uint64_t b = 0;
  qv_collection *c = qv__entry_slot_get(e, 0, NULL);
  if (c != NULL) {
    qv_collection_stats s;
    if (qv_collection_stats_get(c, &s, NULL) == QV_OK)
      b = s.vector_bytes + s.index_bytes + s.attr_bytes;
    qv__entry_slot_put(e);
  }
  return b;
}

void qv__entry_write_begin(qv__entry *e) {
  pthread_rwlock_rdlock(&e->write_rw);
}

void qv__entry_write_end(qv__entry *e) {
  pthread_rwlock_unlock(&e->write_rw);
}

static const char *slot_kind_name(int kind) {
  return kind == QV__SLOT_STAGED ? "staged" : kind == QV__SLOT_PREVIOUS ? "previous" : "none";
}

/* Frees what the slot holds; the caller holds slot_rw for writing. */
static void slot_clear(qv__entry *e) {
  qv_collection_close(e->slot);
  e->slot = NULL;
  e->slot_kind = QV__SLOT_NONE;
  qv_remove_tree(e->slot_dir, NULL);
}

qv_status qv__entry_stage(qv__registry *r, qv__entry *e, qv_collection *c, qv_error *err) {
  /* Writes wait while the new version is saved and attached: none may reach the serving version
   * without reaching it. */
  pthread_rwlock_wrlock(&e->write_rw);
  pthread_rwlock_wrlock(&e->slot_rw);
  slot_clear(e);
  qv_status st = qv_collection_set_keep_versions(c, 1, err);
  if (st == QV_OK)
    st = qv_collection_save(c, e->slot_dir, err);
  if (st == QV_OK)
    st = qv_dir_fsync(r->staged_root, err);
  if (st == QV_OK)
    st = qv_collection_wal_attach(c, e->slot_dir, &r->cfg.wal, NULL, err);
  if (st == QV_OK) {
    e->slot = c;
    e->slot_kind = QV__SLOT_STAGED;
    atomic_store(&e->slot_fed, !atomic_load(&e->fleet));
  } else {
    qv_remove_tree(e->slot_dir, NULL);
  }
  pthread_rwlock_unlock(&e->slot_rw);
  pthread_rwlock_unlock(&e->write_rw);
  return st;
}

qv_status qv__entry_slot_drop(qv__entry *e, int kind, uint64_t *version, qv_error *err) {
  qv_status st = QV_OK;
  pthread_rwlock_wrlock(&e->slot_rw);
  if (e->slot == NULL || e->slot_kind != kind) {
    st = e->slot == NULL
             ? qv_error_set(err, QV_EPRECONDITION,
                            "collection '%s' holds no %s version (only the serving one)", e->name,
                            slot_kind_name(kind))
             : qv_error_set(err, QV_EPRECONDITION,
                            "collection '%s' holds no %s version (version %llu is %s)", e->name,
                            slot_kind_name(kind),
                            (unsigned long long)qv_collection_generation(e->slot),
                            slot_kind_name(e->slot_kind));
  } else {
    if (version)
      *version = qv_collection_generation(e->slot);
    slot_clear(e);
  }
  pthread_rwlock_unlock(&e->slot_rw);
  return st;
}

qv_status qv__entry_flip(qv__registry *r, qv__entry *e, int rollback, uint64_t version,
                         qv_error *err) {
  (void)r;
  const int want = rollback ? QV__SLOT_PREVIOUS : QV__SLOT_STAGED;
  qv_status st = QV_OK;
  pthread_rwlock_wrlock(&e->write_rw);
  pthread_rwlock_wrlock(&e->slot_rw);
  const uint64_t held = e->slot ? qv_collection_generation(e->slot) : 0;
  if (e->slot == NULL)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "collection '%s' holds no %s version to %s (only the serving one)", e->name,
                      slot_kind_name(want), rollback ? "roll back to" : "flip to");
  else if (e->slot_kind != want)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "collection '%s' holds no %s version to %s (version %llu is %s)", e->name,
                      slot_kind_name(want), rollback ? "roll back to" : "flip to",
                      (unsigned long long)held, slot_kind_name(e->slot_kind));
  else if (version != 0 && held != version)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "collection '%s' holds %s version %llu, not the version %llu asked for",
                      e->name, slot_kind_name(want), (unsigned long long)held,
                      (unsigned long long)version);
  if (st == QV_OK)
    st = qv_collection_swap(e->col, e->slot, err);
  if (st == QV_OK) {
    /* The serving object's log now logs writes to the new state: its snapshot must be that
     * state before a write lands, or a restart would replay it onto the old one. */
    qv_status sst = qv__entry_save(e, err);
    if (sst != QV_OK) {
      qv_error se = {0};
      if (qv_collection_swap(e->col, e->slot, &se) == QV_OK)
        qv_error_prefix(err, sst, "not flipped (the snapshot could not be saved)");
      else
        qv_error_prefix(err, sst, "flipped but NOT saved: a restart serves the previous version");
      st = sst;
    } else if (rollback) {
      slot_clear(e); /* the version rolled back from */
    } else {
      e->slot_kind = QV__SLOT_PREVIOUS; /* its directory stays until released (slot_open) */
      atomic_store(&e->slot_fed, 1);    /* the writes after the flip reach it (a rollback) */
    }
  }
  pthread_rwlock_unlock(&e->slot_rw);
  pthread_rwlock_unlock(&e->write_rw);
  return st;
}

void qv__entry_set_fleet(qv__entry *e) {
  atomic_store(&e->fleet, 1);
}

int qv__entry_slot_fed(qv__entry *e) {
  return atomic_load(&e->slot_fed);
}

void qv__entry_slot_set_fed(qv__entry *e, int fed) {
  atomic_store(&e->slot_fed, fed);
}
