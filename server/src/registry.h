/* The collection registry: name -> open collection, with a reference count per entry so that a
 * drop never frees a collection a search is still using. Persists each collection under
 * DATA_DIR/collections/NAME (the index/ directory format). */
#ifndef QUIVER_SERVER_REGISTRY_H
#define QUIVER_SERVER_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>

#include "batcher.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"

#define QV__NAME_MAX 64

/* A registered collection. Opaque outside registry.c: callers hold a reference (get/put) and
 * read it through the accessors below. */
typedef struct qv__entry qv__entry;

/* What every collection of the registry gets. */
typedef struct qv__registry_cfg {
  qv_wal_opts wal;         /* the write-ahead log policy */
  uint64_t snapshot_bytes; /* a log past this size is folded into a snapshot (save) */
  uint32_t keep_versions;  /* snapshot versions kept on disk */
  uint64_t memory_budget;  /* bytes all collections may hold (builds and imports are checked
                              against it); 0 = unlimited */
  int batching;            /* 1: each collection gets a batcher (batcher.h) */
  qv__batcher_opts batch;
} qv__registry_cfg;

typedef struct qv__registry {
  pthread_mutex_t mu;
  qv__registry_cfg cfg;
  char root[QV_PATH_MAX];        /* DATA_DIR/collections */
  char staged_root[QV_PATH_MAX]; /* DATA_DIR/staged: one staged version per collection */
  qv__entry **items;
  size_t n, cap;
} qv__registry;

/* Opens every collection under data_dir/collections and replays its write-ahead log; one that
 * fails its checks is logged and left out (never served). */
qv_status qv__registry_open(qv__registry *r, const char *data_dir, const qv__registry_cfg *cfg,
                            qv_error *err);

/* Bytes every collection but `except` (may be NULL) holds now (store + index + attributes). */
uint64_t qv__registry_memory(qv__registry *r, const qv__entry *except);
/* Saves dirty collections and frees everything. Returns how many saves failed (each logged; their
 * writes stay in the collection's write-ahead log and are replayed at the next open). */
size_t qv__registry_close(qv__registry *r);

/* Valid names: [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}. QV_OK or QV_EINVAL saying so. */
qv_status qv__name_check(const char *name, qv_error *err);

/* A referenced entry (release with qv__registry_put), or QV_ENOTFOUND. */
qv_status qv__registry_get(qv__registry *r, const char *name, qv__entry **out, qv_error *err);
void qv__registry_put(qv__registry *r, qv__entry *e);

/* Creates, persists and registers; *out referenced. QV_EEXIST when the name is taken. */
qv_status qv__registry_create(qv__registry *r, const char *name, const qv_collection_opts *o,
                              qv__entry **out, qv_error *err);
/* Unregisters and deletes from disk; the collection is freed when its last user leaves.
 * QV_EPRECONDITION while a build runs. */
qv_status qv__registry_drop(qv__registry *r, const char *name, qv_error *err);
/* Drops e itself, by a caller that holds its build claim (so the name cannot have been dropped
 * and re-created by someone else in between); a no-op when another drop came first. */
void qv__registry_drop_claimed(qv__registry *r, qv__entry *e);

/* Marks e as building (QV_EPRECONDITION when a build already runs, QV_ENOTFOUND when a drop is
 * under way); checked under the registry lock so that a drop and a build never overlap. End it
 * with qv__entry_end_build. */
qv_status qv__registry_claim_build(qv__registry *r, qv__entry *e, qv_error *err);

/* Referenced snapshot of all entries sorted by name (free the array; put each entry). */
qv_status qv__registry_list(qv__registry *r, qv__entry ***out, size_t *n, qv_error *err);

/* After an acknowledged-to-be write (already in the write-ahead log): marks e dirty and, when
 * its log has grown past the registry's snapshot_bytes, saves (which empties the log).
 * QV_ENOTFOUND, not an acknowledgement, when a drop of e began while the writes were applied. */
qv_status qv__entry_wrote(qv__registry *r, qv__entry *e, qv_error *err);

/* Saves e's collection to its directory and clears dirty; a no-op once e is dropped. */
qv_status qv__entry_save(qv__entry *e, qv_error *err);

/* ---- a referenced entry's parts ---- */
const char *qv__entry_name(const qv__entry *e);
qv_collection *qv__entry_col(const qv__entry *e);
qv__batcher *qv__entry_batcher(const qv__entry *e); /* NULL when batching is off */
/* One more reference to an entry the caller holds (each released with qv__registry_put). */
void qv__entry_ref(qv__entry *e);
/* 1 while a build or import holds e's claim (qv__registry_claim_build). */
int qv__entry_building(const qv__entry *e);
/* Ends the claim qv__registry_claim_build gave. */
void qv__entry_end_build(qv__entry *e);
/* Changed in memory since the last save (the next save or close writes it). */
void qv__entry_mark_dirty(qv__entry *e);

/* ---- the data version held beside the serving one (docs/rollout.md) ---- */

typedef enum {
  QV__SLOT_NONE = 0,
  QV__SLOT_STAGED = 1,  /* a newer version, not serving yet (persisted, with its own log) */
  QV__SLOT_PREVIOUS = 2 /* the version served before the last flip (memory only) */
} qv__slot_kind;

/* The version held beside e's serving one, with e's slot lock held for reading (searches and
 * writes on it go on; a flip or a drop waits): its collection when one is held and, when
 * version != 0, it is that version; else NULL and no lock is held. *kind (may be NULL) gets its
 * qv__slot_kind. Release a non-NULL answer with qv__entry_slot_put. */
qv_collection *qv__entry_slot_get(qv__entry *e, uint64_t version, int *kind);
void qv__entry_slot_put(qv__entry *e);
/* Bytes it holds (store + index + attributes); 0 when none. */
uint64_t qv__entry_slot_bytes(qv__entry *e);

/* Holds c (built, e's dim, metric and features, its data version set above the serving one) as
 * e's staged version: saved under DATA_DIR/staged/NAME with a write-ahead log of its own, and
 * from then on given e's writes. What was held beside e before is dropped. The caller holds e's
 * build claim. On QV_OK c belongs to e; otherwise it stays the caller's. */
qv_status qv__entry_stage(qv__registry *r, qv__entry *e, qv_collection *c, qv_error *err);

/* Drops what is held beside e when it is of `kind` (*version gets its data version), frees its
 * memory and its directory. QV_EPRECONDITION saying what is held when it is not. */
qv_status qv__entry_slot_drop(qv__entry *e, int kind, uint64_t *version, qv_error *err);

/* rollback = 0: the staged version serves (version != 0: it must be that one) and the one served
 * until now is held as previous. rollback = 1: the previous version serves again and the one
 * rolled back from is dropped. Writes wait from the swap until e is saved; searches never wait
 * (each is answered from the version it asked for). The caller holds e's build claim.
 * QV_EPRECONDITION when nothing of that kind is held (or another version is); a failed save
 * swaps back (the error says so). */
qv_status qv__entry_flip(qv__registry *r, qv__entry *e, int rollback, uint64_t version,
                         qv_error *err);

/* A fleet replica's local collection (replica.c): a version staged on it from then on is fed by
 * the replica from the shard's log (slot_fed 0) until it has caught up, not by e's writes. */
void qv__entry_set_fleet(qv__entry *e);
int qv__entry_slot_fed(qv__entry *e);
void qv__entry_slot_set_fed(qv__entry *e, int fed);

/* Writers to e (an upsert chunk, a delete) hold this around what they apply to both versions. */
void qv__entry_write_begin(qv__entry *e);
void qv__entry_write_end(qv__entry *e);

#endif
