#include "registry.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "quiver/fsutil.h"

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
  qv_collection_close(e->col);
  free(e);
}

static qv_status add_entry(qv__registry *r, qv__entry *e, qv_error *err) {
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

static qv__entry *new_entry(qv__registry *r, const char *name) {
  qv__entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->dir, sizeof e->dir, "%s/%s", r->root, name);
  atomic_init(&e->refs, 1); /* the registry's own reference */
  atomic_init(&e->building, 0);
  atomic_init(&e->dirty, 0);
  return e;
}

qv_status qv__registry_open(qv__registry *r, const char *data_dir, qv_error *err) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  if (strlen(data_dir) > 1000)
    return qv_error_set(err, QV_EINVAL, "--data-dir is too long");
  snprintf(r->root, sizeof r->root, "%s/collections", data_dir);
  qv_status st = qv_mkdirs(r->root, err);
  if (st != QV_OK)
    return st;
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
    qv__entry *e = new_entry(r, de->d_name);
    if (e == NULL) {
      closedir(d);
      return qv_error_set(err, QV_ENOMEM, "out of memory");
    }
    qv_error oe = {0};
    if (qv_collection_open(&e->col, e->dir, &oe) != QV_OK) {
      QV_LOG_E("collection '%s' not served: %s", e->name, oe.msg);
      free(e);
      continue;
    }
    qv_collection_stats s;
    qv_collection_stats_get(e->col, &s, NULL);
    QV_LOG_I("collection '%s' opened: %s %s dim=%zu count=%llu %s", e->name, s.spec,
             qv_metric_name(s.metric), s.dim, (unsigned long long)s.count,
             s.trained ? "ready" : "not built");
    if ((st = add_entry(r, e, err)) != QV_OK) {
      entry_free(e);
      closedir(d);
      return st;
    }
  }
  closedir(d);
  return QV_OK;
}

void qv__registry_close(qv__registry *r) {
  for (size_t i = 0; i < r->n; i++) {
    qv__entry *e = r->items[i];
    if (atomic_load(&e->dirty)) {
      qv_error se = {0};
      if (qv__entry_save(e, &se) != QV_OK)
        QV_LOG_E("collection '%s': save at shutdown failed: %s", e->name, se.msg);
      else
        QV_LOG_I("collection '%s' saved", e->name);
    }
    entry_free(e);
  }
  free(r->items);
  pthread_mutex_destroy(&r->mu);
  memset(r, 0, sizeof *r);
}

static qv__entry *find(qv__registry *r, const char *name, size_t *idx) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->items[i]->name, name) == 0) {
      if (idx)
        *idx = i;
      return r->items[i];
    }
  return NULL;
}

qv_status qv__registry_get(qv__registry *r, const char *name, qv__entry **out, qv_error *err) {
  *out = NULL;
  pthread_mutex_lock(&r->mu);
  qv__entry *e = name ? find(r, name, NULL) : NULL;
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

qv_status qv__registry_create(qv__registry *r, const char *name, const qv_collection_opts *o,
                              qv__entry **out, qv_error *err) {
  *out = NULL;
  qv_status st = qv__name_check(name, err);
  if (st != QV_OK)
    return st;
  qv__entry *e = new_entry(r, name);
  if (e == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  if ((st = qv_collection_create(&e->col, o, err)) != QV_OK) {
    free(e);
    return st;
  }
  pthread_mutex_lock(&r->mu);
  if (find(r, name, NULL) != NULL) {
    pthread_mutex_unlock(&r->mu);
    entry_free(e);
    return qv_error_set(err, QV_EEXIST, "collection '%s' already exists", name);
  }
  /* Persist before registering: a created collection survives a restart. A leftover directory
   * of the same name (e.g. a half-finished drop) is replaced. */
  qv_remove_tree(e->dir, NULL);
  if ((st = qv_collection_save(e->col, e->dir, err)) != QV_OK ||
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

qv_status qv__registry_drop(qv__registry *r, const char *name, qv_error *err) {
  size_t i;
  pthread_mutex_lock(&r->mu);
  qv__entry *e = name ? find(r, name, &i) : NULL;
  if (e == NULL) {
    pthread_mutex_unlock(&r->mu);
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", name ? name : "");
  }
  if (atomic_load(&e->building)) {
    pthread_mutex_unlock(&r->mu);
    return qv_error_set(err, QV_EPRECONDITION,
                        "collection '%s' is being built: drop it when the build ends", name);
  }
  r->items[i] = r->items[--r->n];
  e->dropped = 1;
  atomic_store(&e->dirty, 0);
  /* Move the directory out of the way first, so a crash mid-delete leaves no half collection. */
  char trash[1300];
  snprintf(trash, sizeof trash, "%s/.dropped-%s-%ld-%d", r->root, e->name, (long)time(NULL),
           (int)getpid());
  if (rename(e->dir, trash) != 0)
    snprintf(trash, sizeof trash, "%s", e->dir);
  pthread_mutex_unlock(&r->mu);
  qv_remove_tree(trash, NULL);
  qv_dir_fsync(r->root, NULL);
  qv__registry_put(r, e);
  return QV_OK;
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
  for (size_t i = 0; i < r->n; i++) {
    (*out)[i] = r->items[i];
    atomic_fetch_add(&r->items[i]->refs, 1);
  }
  pthread_mutex_unlock(&r->mu);
  qsort(*out, *n, sizeof **out, by_name);
  return QV_OK;
}

qv_status qv__entry_save(qv__entry *e, qv_error *err) {
  if (e->dropped)
    return QV_OK; /* its directory is gone on purpose */
  atomic_store(&e->dirty, 0);
  qv_status st = qv_collection_save(e->col, e->dir, err);
  if (st != QV_OK)
    atomic_store(&e->dirty, 1);
  return st;
}
