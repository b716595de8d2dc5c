/* Bearer tokens (auth.h). */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quiver/fsutil.h"

typedef struct entry {
  qv__role role;
  char *token;
  size_t len;
} entry;

struct qv__auth {
  entry *e;
  size_t n;
};

void qv__auth_free(qv__auth *a) {
  if (a == NULL)
    return;
  for (size_t i = 0; i < a->n; i++) {
    memset(a->e[i].token, 0, a->e[i].len); /* do not leave tokens in freed memory */
    free(a->e[i].token);
  }
  free(a->e);
  free(a);
}

size_t qv__auth_count(const qv__auth *a) {
  return a ? a->n : 0;
}

qv_status qv__auth_load(const char *path, qv__auth **out, qv_error *err) {
  *out = NULL;
  char *text = NULL;
  size_t len = 0;
  qv_status st = qv_file_read_all(path, 1 << 20, &text, &len, err);
  if (st != QV_OK)
    return qv_error_set(err, st == QV_ENOTFOUND ? QV_EINVAL : st, "--auth-tokens %s cannot be read",
                        path);
  qv__auth *a = calloc(1, sizeof *a);
  if (a == NULL) {
    free(text);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  int lineno = 0;
  for (char *line = text, *next; line != NULL && st == QV_OK; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    lineno++;
    char *p = line;
    while (isspace((unsigned char)*p))
      p++;
    if (*p == '\0' || *p == '#')
      continue;
    char *role = p;
    while (*p && !isspace((unsigned char)*p))
      p++;
    if (*p)
      *p++ = '\0';
    while (isspace((unsigned char)*p))
      p++;
    char *tok = p;
    while (*p && !isspace((unsigned char)*p))
      p++;
    char *rest = p;
    while (isspace((unsigned char)*rest))
      rest++;
    *p = '\0';
    qv__role r = !strcmp(role, "read")    ? QV__ROLE_READ
                 : !strcmp(role, "admin") ? QV__ROLE_ADMIN
                                          : QV__ROLE_NONE;
    if (r == QV__ROLE_NONE || *tok == '\0' || *rest != '\0') {
      st = qv_error_set(err, QV_EINVAL,
                        "--auth-tokens %s line %d: expected 'ROLE TOKEN' with ROLE read or admin",
                        path, lineno);
      break;
    }
    if (strlen(tok) < 16) {
      st = qv_error_set(err, QV_EINVAL,
                        "--auth-tokens %s line %d: the token is shorter than 16 characters "
                        "(use e.g. 'openssl rand -hex 32')",
                        path, lineno);
      break;
    }
    entry *grown = realloc(a->e, (a->n + 1) * sizeof *grown);
    if (grown == NULL || (tok = strdup(tok)) == NULL) {
      if (grown)
        a->e = grown;
      st = qv_error_set(err, QV_ENOMEM, "out of memory");
      break;
    }
    a->e = grown;
    a->e[a->n++] = (entry){r, tok, strlen(tok)};
  }
  memset(text, 0, len);
  free(text);
  if (st == QV_OK && a->n == 0)
    st = qv_error_set(err, QV_EINVAL, "--auth-tokens %s holds no 'ROLE TOKEN' line", path);
  if (st != QV_OK) {
    qv__auth_free(a);
    return st;
  }
  *out = a;
  return QV_OK;
}

/* 1 when a (alen) equals b (blen); time depends on blen only, not on where they differ. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned diff = (unsigned)(alen != blen);
  for (size_t i = 0; i < blen; i++)
    diff |= (unsigned)(unsigned char)(i < alen ? a[i] : 0) ^ (unsigned char)b[i];
  return diff == 0;
}

qv__role qv__auth_role(const qv__auth *a, const grpc_metadata_array *md) {
  for (size_t i = 0; i < md->count; i++) {
    if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") != 0)
      continue;
    const char *v = (const char *)GRPC_SLICE_START_PTR(md->metadata[i].value);
    size_t len = GRPC_SLICE_LENGTH(md->metadata[i].value);
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
      return QV__ROLE_NONE;
    v += 7;
    len -= 7;
    qv__role role = QV__ROLE_NONE;
    for (size_t t = 0; t < a->n; t++) /* every token, always: no early exit */
      if (ct_equal(v, len, a->e[t].token, a->e[t].len) && a->e[t].role > role)
        role = a->e[t].role;
    return role;
  }
  return QV__ROLE_NONE;
}
