/* Filter expressions over item attributes: a recursive-descent parser into a small tree (the
 * grammar is in quiver/attrs.h), and its evaluation into a bitmap of store rows.
 *
 * A plan names attributes by their position in the schema and keeps strings as strings: a
 * keyword's dictionary code is looked up when the plan runs (a value no item had at parse time
 * may be stored since). Evaluation is one pass over a column per test, 64 rows per word, and
 * word-wise and/or/not. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "attrs.h"
#include "internal.h"

enum tok {
  T_END,
  T_NAME,
  T_INT,
  T_NUM,
  T_STR,
  T_LP,
  T_RP,
  T_COMMA,
  T_EQ,
  T_NE,
  T_LT,
  T_LE,
  T_GT,
  T_GE,
  T_AND,
  T_OR,
  T_NOT,
  T_IN,
  T_HAS,
  T_ANY,
  T_ALL,
  T_TRUE,
  T_FALSE,
};

enum node_kind { N_AND, N_OR, N_NOT, N_TRUE_BOOL, N_CMP, N_IN, N_HAS_ANY, N_HAS_ALL };

typedef struct value {
  int kind; /* T_INT, T_NUM, T_STR, T_TRUE, T_FALSE */
  int64_t i;
  double d;
  char *s;
} value;

typedef struct node {
  int kind;
  int op;  /* N_CMP: T_EQ .. T_GE */
  int neg; /* N_IN: not in */
  int col;
  int a, b;      /* children */
  size_t v0, nv; /* values (N_CMP: one) */
} node;

struct qv_filter {
  node *nodes;
  size_t n_nodes, cap_nodes;
  value *vals;
  size_t n_vals, cap_vals;
  int root, depth;
  uint64_t hash;
  char *text;
};

typedef struct parser {
  const char *s;
  size_t pos;  /* of the current token */
  size_t next; /* after it */
  int tok;
  char name[QV_MAX_ATTR_NAME];
  char *str; /* T_STR's text (owned until taken) */
  int64_t i;
  double d;
  const qv__attrs *a;
  qv_filter *f;
  qv_error *err;
  qv_status st;
  int depth;
} parser;

static qv_status fail(parser *p, size_t at, const char *fmt, const char *what) {
  if (p->st == QV_OK) {
    char msg[200];
    snprintf(msg, sizeof msg, fmt, what ? what : "");
    p->st = qv_error_set(p->err, QV_EINVAL, "filter: column %zu: %s", at + 1, msg);
  }
  return p->st;
}

static const struct {
  const char *w;
  int t;
} words[] = {{"and", T_AND}, {"or", T_OR},   {"not", T_NOT},   {"in", T_IN},      {"has", T_HAS},
             {"any", T_ANY}, {"all", T_ALL}, {"true", T_TRUE}, {"false", T_FALSE}};

static const char *tok_name(int t) {
  static const char *const n[] = {"the end", "a name", "an integer", "a number", "a string", "'('",
                                  "')'",     "','",    "'='",        "'!='",     "'<'",      "'<='",
                                  "'>'",     "'>='",   "'and'",      "'or'",     "'not'",    "'in'",
                                  "'has'",   "'any'",  "'all'",      "'true'",   "'false'"};
  return n[t];
}

/* Reads the token at p->next. */
static int lex(parser *p) {
  const char *s = p->s;
  size_t i = p->next;
  while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
    i++;
  p->pos = i;
  free(p->str);
  p->str = NULL;
  const char c = s[i];
  if (c == '\0') {
    p->next = i;
    return p->tok = T_END;
  }
  if (isalpha((unsigned char)c) || c == '_') {
    size_t j = i;
    while (isalnum((unsigned char)s[j]) || s[j] == '_')
      j++;
    p->next = j;
    if (j - i >= QV_MAX_ATTR_NAME) {
      fail(p, i, "a name longer than 63 characters%s", NULL);
      return p->tok = T_END;
    }
    memcpy(p->name, s + i, j - i);
    p->name[j - i] = '\0';
    for (size_t w = 0; w < sizeof words / sizeof *words; w++)
      if (strcasecmp(p->name, words[w].w) == 0)
        return p->tok = words[w].t;
    return p->tok = T_NAME;
  }
  if (isdigit((unsigned char)c) || ((c == '-' || c == '+' || c == '.') &&
                                    (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '.'))) {
    char *end;
    errno = 0;
    long long v = strtoll(s + i, &end, 10);
    if (*end != '.' && *end != 'e' && *end != 'E' && end != s + i) {
      if (errno == ERANGE) {
        fail(p, i, "an integer out of the int64 range%s", NULL);
        return p->tok = T_END;
      }
      p->next = (size_t)(end - s);
      p->i = v;
      p->d = (double)v;
      return p->tok = T_INT;
    }
    double d = strtod(s + i, &end);
    if (end == s + i || !isfinite(d)) {
      fail(p, i, "a malformed number%s", NULL);
      return p->tok = T_END;
    }
    p->next = (size_t)(end - s);
    p->d = d;
    return p->tok = T_NUM;
  }
  if (c == '"' || c == '\'') {
    size_t j = i + 1, w = 0;
    char *out = malloc(strlen(s + i) + 1);
    if (out == NULL) {
      p->st = qv_error_set(p->err, QV_ENOMEM, "filter: out of memory");
      return p->tok = T_END;
    }
    while (s[j] != '\0' && s[j] != c) {
      if (s[j] == '\\' && (s[j + 1] == '\\' || s[j + 1] == '"' || s[j + 1] == '\''))
        j++;
      out[w++] = s[j++];
    }
    if (s[j] != c) {
      free(out);
      fail(p, i, "a string that is not closed (a %s is missing)", c == '"' ? "\"" : "'");
      return p->tok = T_END;
    }
    out[w] = '\0';
    if (w > QV_MAX_ATTR_STRING) {
      free(out);
      fail(p, i, "a string longer than 256 bytes%s", NULL);
      return p->tok = T_END;
    }
    p->str = out;
    p->next = j + 1;
    return p->tok = T_STR;
  }
  size_t len = 1;
  int t = -1;
  switch (c) {
  case '(':
    t = T_LP;
    break;
  case ')':
    t = T_RP;
    break;
  case ',':
    t = T_COMMA;
    break;
  case '=':
    t = T_EQ;
    len = s[i + 1] == '=' ? 2 : 1;
    break;
  case '!':
    if (s[i + 1] == '=') {
      t = T_NE;
      len = 2;
    }
    break;
  case '<':
    t = s[i + 1] == '=' ? T_LE : s[i + 1] == '>' ? T_NE : T_LT;
    len = s[i + 1] == '=' || s[i + 1] == '>' ? 2 : 1;
    break;
  case '>':
    t = s[i + 1] == '=' ? T_GE : T_GT;
    len = s[i + 1] == '=' ? 2 : 1;
    break;
  default:
    break;
  }
  if (t < 0) {
    char what[8];
    snprintf(what, sizeof what, "%c", isprint((unsigned char)c) ? c : '?');
    fail(p, i, "unexpected character '%s'", what);
    return p->tok = T_END;
  }
  p->next = i + len;
  return p->tok = t;
}

static int add_node(parser *p, node n) {
  qv_filter *f = p->f;
  if (f->n_nodes >= QV_MAX_FILTER_TERMS) {
    fail(p, p->pos, "more than 256 tests and operators%s", NULL);
    return -1;
  }
  if (f->n_nodes == f->cap_nodes) {
    size_t cap = f->cap_nodes ? f->cap_nodes * 2 : 16;
    node *x = realloc(f->nodes, cap * sizeof *x);
    if (x == NULL) {
      p->st = qv_error_set(p->err, QV_ENOMEM, "filter: out of memory");
      return -1;
    }
    f->nodes = x;
    f->cap_nodes = cap;
  }
  f->nodes[f->n_nodes] = n;
  return (int)f->n_nodes++;
}

static int add_value(parser *p, value v) {
  qv_filter *f = p->f;
  if (f->n_vals == f->cap_vals) {
    size_t cap = f->cap_vals ? f->cap_vals * 2 : 16;
    value *x = realloc(f->vals, cap * sizeof *x);
    if (x == NULL) {
      free(v.s);
      p->st = qv_error_set(p->err, QV_ENOMEM, "filter: out of memory");
      return -1;
    }
    f->vals = x;
    f->cap_vals = cap;
  }
  f->vals[f->n_vals++] = v;
  return 0;
}

static int is_literal(int t) {
  return t == T_INT || t == T_NUM || t == T_STR || t == T_TRUE || t == T_FALSE;
}

/* The literal at the current token, checked against the attribute's type. */
static int take_literal(parser *p, const qv_attr_field *fd) {
  const int t = p->tok;
  const size_t at = p->pos;
  if (!is_literal(t))
    return fail(p, at, "expected a value, found %s", tok_name(t)), -1;
  const qv_attr_type ty = fd->type;
  int ok = (ty == QV_ATTR_INT64 || ty == QV_ATTR_FLOAT) ? (t == T_INT || t == T_NUM)
           : ty == QV_ATTR_BOOL                         ? (t == T_TRUE || t == T_FALSE)
                                                        : t == T_STR;
  if (!ok) {
    char msg[160];
    snprintf(msg, sizeof msg, "attribute '%s' is %s: compare it with %s, not %s", fd->name,
             qv_attr_type_name(ty),
             ty == QV_ATTR_BOOL                             ? "true or false"
             : (ty == QV_ATTR_INT64 || ty == QV_ATTR_FLOAT) ? "a number"
                                                            : "a string",
             tok_name(t));
    return fail(p, at, "%s", msg), -1;
  }
  value v = {t, p->i, p->d, p->str};
  p->str = NULL;
  if (add_value(p, v) != 0)
    return -1;
  lex(p);
  return 0;
}

static int parse_or(parser *p);

static int list_of(parser *p, const qv_attr_field *fd, size_t *v0, size_t *nv) {
  if (p->tok != T_LP)
    return fail(p, p->pos, "expected '(' to open a list, found %s", tok_name(p->tok)), -1;
  lex(p);
  *v0 = p->f->n_vals;
  for (;;) {
    if (take_literal(p, fd) != 0)
      return -1;
    if (p->f->n_vals - *v0 > QV_MAX_FILTER_LIST)
      return fail(p, p->pos, "a list of more than 1024 values%s", NULL), -1;
    if (p->tok == T_COMMA) {
      lex(p);
      continue;
    }
    if (p->tok != T_RP)
      return fail(p, p->pos, "expected ',' or ')' in a list, found %s", tok_name(p->tok)), -1;
    lex(p);
    break;
  }
  *nv = p->f->n_vals - *v0;
  return 0;
}

static int parse_test(parser *p) {
  const size_t at = p->pos;
  if (p->tok != T_NAME)
    return fail(p, at, "expected an attribute name, 'not' or '(', found %s", tok_name(p->tok)), -1;
  int col = -1;
  for (size_t j = 0; j < p->a->n; j++)
    if (strcmp(p->a->f[j].name, p->name) == 0)
      col = (int)j;
  if (col < 0)
    return fail(p, at, "unknown attribute '%s'", p->name), -1;
  const qv_attr_field *fd = &p->a->f[col];
  const qv_attr_type ty = fd->type;
  char msg[200];
  lex(p);
  node n = {0};
  n.col = col;
  n.a = n.b = -1;
  const size_t opat = p->pos;
  const int t = p->tok;
  if (t >= T_EQ && t <= T_GE) {
    if (ty == QV_ATTR_TAGS) {
      snprintf(msg, sizeof msg, "attribute '%s' is tags: test it with has, has any or has all",
               fd->name);
      return fail(p, opat, "%s", msg), -1;
    }
    if (t >= T_LT && !(ty == QV_ATTR_INT64 || ty == QV_ATTR_FLOAT)) {
      snprintf(msg, sizeof msg, "attribute '%s' is %s: %s works only on int64 and float", fd->name,
               qv_attr_type_name(ty), tok_name(t));
      return fail(p, opat, "%s", msg), -1;
    }
    lex(p);
    n.kind = N_CMP;
    n.op = t;
    n.v0 = p->f->n_vals;
    n.nv = 1;
    if (take_literal(p, fd) != 0)
      return -1;
    return add_node(p, n);
  }
  if (t == T_IN || t == T_NOT) {
    if (t == T_NOT) {
      lex(p);
      if (p->tok != T_IN)
        return fail(p, p->pos, "expected 'in' after 'not', found %s", tok_name(p->tok)), -1;
      n.neg = 1;
    }
    if (ty != QV_ATTR_INT64 && ty != QV_ATTR_KEYWORD) {
      snprintf(msg, sizeof msg, "attribute '%s' is %s: 'in' works on int64 and keyword%s", fd->name,
               qv_attr_type_name(ty), ty == QV_ATTR_TAGS ? " (use 'has any' for tags)" : "");
      return fail(p, opat, "%s", msg), -1;
    }
    lex(p);
    n.kind = N_IN;
    if (list_of(p, fd, &n.v0, &n.nv) != 0)
      return -1;
    return add_node(p, n);
  }
  if (t == T_HAS) {
    if (ty != QV_ATTR_TAGS) {
      snprintf(msg, sizeof msg, "attribute '%s' is %s: 'has' works on tags", fd->name,
               qv_attr_type_name(ty));
      return fail(p, opat, "%s", msg), -1;
    }
    lex(p);
    n.kind = N_HAS_ANY;
    if (p->tok == T_ANY || p->tok == T_ALL) {
      n.kind = p->tok == T_ANY ? N_HAS_ANY : N_HAS_ALL;
      lex(p);
      if (list_of(p, fd, &n.v0, &n.nv) != 0)
        return -1;
    } else {
      n.v0 = p->f->n_vals;
      n.nv = 1;
      if (take_literal(p, fd) != 0)
        return -1;
    }
    return add_node(p, n);
  }
  if (ty == QV_ATTR_BOOL) {
    n.kind = N_TRUE_BOOL;
    return add_node(p, n);
  }
  snprintf(msg, sizeof msg, "expected an operator after '%s' (%s), found %s", fd->name,
           qv_attr_type_name(ty), tok_name(t));
  return fail(p, opat, "%s", msg), -1;
}

static int parse_unary(parser *p) {
  if (++p->depth > 32) {
    fail(p, p->pos, "nested deeper than 32 levels%s", NULL);
    return -1;
  }
  if (p->depth > p->f->depth)
    p->f->depth = p->depth;
  int r;
  if (p->tok == T_NOT) {
    lex(p);
    int a = parse_unary(p);
    node n = {N_NOT, 0, 0, -1, a, -1, 0, 0};
    r = a < 0 ? -1 : add_node(p, n);
  } else if (p->tok == T_LP) {
    const size_t at = p->pos;
    lex(p);
    r = parse_or(p);
    if (r >= 0 && p->tok != T_RP) {
      fail(p, p->tok == T_END ? at : p->pos,
           p->tok == T_END ? "a '(' that is not closed%s" : "expected ')', found %s",
           p->tok == T_END ? NULL : tok_name(p->tok));
      r = -1;
    } else if (r >= 0) {
      lex(p);
    }
  } else {
    r = parse_test(p);
  }
  p->depth--;
  return p->st == QV_OK ? r : -1;
}

static int parse_and(parser *p) {
  int a = parse_unary(p);
  while (a >= 0 && p->tok == T_AND) {
    lex(p);
    int b = parse_unary(p);
    if (b < 0)
      return -1;
    node n = {N_AND, 0, 0, -1, a, b, 0, 0};
    a = add_node(p, n);
  }
  return a;
}

static int parse_or(parser *p) {
  int a = parse_and(p);
  while (a >= 0 && p->tok == T_OR) {
    lex(p);
    int b = parse_and(p);
    if (b < 0)
      return -1;
    node n = {N_OR, 0, 0, -1, a, b, 0, 0};
    a = add_node(p, n);
  }
  return a;
}

void qv_filter_free(qv_filter *f) {
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n_vals; i++)
    free(f->vals[i].s);
  free(f->vals);
  free(f->nodes);
  free(f->text);
  free(f);
}

const char *qv_filter_text(const qv_filter *f) {
  return f ? f->text : "";
}

uint64_t qv__filter_hash(const qv_filter *f) {
  return f->hash;
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return a < b ? -1 : a > b;
}

qv_status qv_filter_parse(qv_collection *c, const char *text, qv_filter **out, qv_error *err) {
  if (out == NULL)
    return qv_error_set(err, QV_EINVAL, "filter: out is NULL");
  *out = NULL;
  if (c == NULL || text == NULL)
    return qv_error_set(err, QV_EINVAL, "filter: collection or text is NULL");
  size_t len = strnlen(text, QV_MAX_FILTER + 1);
  if (len > QV_MAX_FILTER)
    return qv_error_set(err, QV_EINVAL, "filter: longer than %d bytes", QV_MAX_FILTER);
  qv_filter *f = calloc(1, sizeof *f);
  if (f == NULL || (f->text = malloc(len + 1)) == NULL) {
    free(f);
    return qv_error_set(err, QV_ENOMEM, "filter: out of memory");
  }
  memcpy(f->text, text, len + 1);
  /* The schema is fixed for a collection's life (a swap or replace keeps it equal). */
  pthread_rwlock_rdlock(&c->rw);
  parser p = {0};
  p.s = f->text;
  p.a = &c->attrs;
  p.f = f;
  p.err = err;
  qv_status st = QV_OK;
  if (c->attrs.n == 0) {
    st = qv_error_set(err, QV_EPRECONDITION,
                      "the collection has no attributes to filter on: declare them at create "
                      "(CreateCollection attributes, quiver create --attr NAME:TYPE)");
  } else {
    lex(&p);
    if (p.st == QV_OK && p.tok == T_END)
      fail(&p, p.pos, "the filter is empty%s", NULL);
    int root = p.st == QV_OK ? parse_or(&p) : -1;
    if (p.st == QV_OK && root >= 0 && p.tok != T_END)
      fail(&p, p.pos, "expected 'and', 'or' or the end, found %s", tok_name(p.tok));
    st = p.st;
    f->root = root;
    f->hash = c->attrs.hash;
  }
  pthread_rwlock_unlock(&c->rw);
  free(p.str);
  if (st != QV_OK) {
    qv_filter_free(f);
    return st;
  }
  /* INT64 lists sorted for a binary search. */
  for (size_t i = 0; i < f->n_nodes; i++) {
    node *n = &f->nodes[i];
    if (n->kind == N_IN && c->attrs.f[n->col].type == QV_ATTR_INT64) {
      int all_int = 1;
      for (size_t v = 0; v < n->nv; v++)
        all_int &= f->vals[n->v0 + v].kind == T_INT;
      if (all_int) {
        int64_t *tmp = malloc(n->nv * sizeof *tmp);
        if (tmp != NULL) {
          for (size_t v = 0; v < n->nv; v++)
            tmp[v] = f->vals[n->v0 + v].i;
          qsort(tmp, n->nv, sizeof *tmp, cmp_i64);
          for (size_t v = 0; v < n->nv; v++)
            f->vals[n->v0 + v].i = tmp[v];
          free(tmp);
        }
      }
    }
  }
  *out = f;
  return QV_OK;
}

/* ---- evaluation -------------------------------------------------------------------------- */

static int cmp_num(int op, double x, double y) {
  switch (op) {
  case T_EQ:
    return x == y;
  case T_NE:
    return x != y;
  case T_LT:
    return x < y;
  case T_LE:
    return x <= y;
  case T_GT:
    return x > y;
  default:
    return x >= y;
  }
}

static int cmp_int(int op, int64_t x, int64_t y) {
  switch (op) {
  case T_EQ:
    return x == y;
  case T_NE:
    return x != y;
  case T_LT:
    return x < y;
  case T_LE:
    return x <= y;
  case T_GT:
    return x > y;
  default:
    return x >= y;
  }
}

static int set_has(const uint32_t *set, uint32_t code) {
  if (set == NULL)
    return 0;
  size_t lo = 0, hi = set[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (set[1 + mid] < code)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < set[0] && set[1 + lo] == code;
}

static bool set_bit(uint32_t row, void *words) {
  ((uint64_t *)words)[row >> 6] |= (uint64_t)1 << (row & 63);
  return true;
}

/* out |= the rows of p (NULL: none). */
static void posting_or(const roaring_bitmap_t *p, uint64_t *out) {
  if (p != NULL)
    roaring_iterate(p, set_bit, out);
}

static void negate(uint64_t *w, size_t count) {
  const size_t nw = (count + 63) / 64;
  for (size_t i = 0; i < nw; i++)
    w[i] = ~w[i];
  if (count % 64)
    w[nw - 1] &= ((uint64_t)1 << (count % 64)) - 1;
}

typedef struct all_ctx {
  uint64_t *out;
  const uint64_t *col;
  const int64_t *codes;
  size_t nc;
} all_ctx;

/* A row of the rarest tag's posting: set when its tag set holds every other code too. */
static bool all_bit(uint32_t row, void *p) {
  const all_ctx *ac = p;
  const uint32_t *set = (const uint32_t *)(uintptr_t)ac->col[row];
  for (size_t u = 0; u < ac->nc; u++)
    if (!set_has(set, (uint32_t)ac->codes[u]))
      return true;
  return set_bit(row, ac->out);
}

/* Sets w's bits for the rows where PRED holds (row r is bit r % 64 of word r / 64). */
#define SCAN(PRED)                                                                                 \
  for (size_t w0 = 0; w0 < nw; w0++) {                                                             \
    uint64_t m = 0;                                                                                \
    const size_t r0 = w0 * 64, r1 = r0 + 64 < count ? r0 + 64 : count;                             \
    for (size_t r = r0; r < r1; r++) {                                                             \
      const uint64_t x = col[r];                                                                   \
      (void)x;                                                                                     \
      m |= (uint64_t)(PRED) << (r - r0);                                                           \
    }                                                                                              \
    out[w0] = m;                                                                                   \
  }

/* ---- sorted columns (attrs.h): ranges by binary search ------------------------------------ */

static size_t lower_bound(const uint64_t *k, size_t n, uint64_t x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (k[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Sets the bits of the sorted rows of column j whose key is in [lo, hi] (rows below count). */
static void sorted_range(const qv__attrs *a, size_t j, uint64_t lo, uint64_t hi, size_t count,
                         uint64_t *out) {
  const uint64_t *k = a->skey[j];
  const uint32_t *r = a->srow[j];
  for (size_t i = lower_bound(k, a->sorted_n, lo); i < a->sorted_n && k[i] <= hi; i++)
    if (r[i] < count)
      out[r[i] >> 6] |= (uint64_t)1 << (r[i] & 63);
}

/* The test of one row's slot (N_CMP on a number, or N_IN of integers, not negated). */
static int num_test(const node *n, const value *v, qv_attr_type ty, uint64_t x) {
  if (n->kind == N_IN) {
    for (size_t u = 0; u < n->nv; u++)
      if ((int64_t)x == v[u].i)
        return 1;
    return 0;
  }
  if (ty == QV_ATTR_INT64)
    return cmp_int(n->op == T_NE ? T_EQ : n->op, (int64_t)x, v->i);
  double dx;
  memcpy(&dx, &x, sizeof dx);
  return cmp_num(n->op == T_NE ? T_EQ : n->op, dx, v->d);
}

typedef struct dirty_ctx {
  uint64_t *out;
  const uint64_t *col;
  const node *n;
  const value *v;
  qv_attr_type ty;
  size_t count;
} dirty_ctx;

/* A row changed since the sort: its bit comes from its slot now. */
static bool dirty_fix(uint32_t row, void *p) {
  const dirty_ctx *d = p;
  if (row >= d->count)
    return true;
  const uint64_t bit = (uint64_t)1 << (row & 63);
  if (num_test(d->n, d->v, d->ty, d->col[row]))
    d->out[row >> 6] |= bit;
  else
    d->out[row >> 6] &= ~bit;
  return true;
}

/* A number test through the sorted column: 1 when it answered into out, 0 when the column must
 * be scanned (no sorted column, too many writes since it was built, a literal it cannot key). */
static int sorted_leaf(const qv_filter *f, const node *n, const qv__attrs *a, size_t count,
                       uint64_t *out) {
  const size_t j = (size_t)n->col;
  const qv_attr_type ty = a->f[j].type;
  const value *v = &f->vals[n->v0];
  if (a->skey[j] == NULL || a->sorted_n == 0 || a->dirty == NULL ||
      roaring_bitmap_get_cardinality(a->dirty) > count / 8)
    return 0;
  if (n->kind == N_IN) {
    for (size_t u = 0; u < n->nv; u++)
      if (v[u].kind != T_INT)
        return 0;
  } else if (ty == QV_ATTR_INT64 && v->kind != T_INT) {
    return 0;
  }
  const size_t nw = (count + 63) / 64;
  memset(out, 0, nw * sizeof *out);
  const uint64_t MAX = UINT64_MAX;
  if (n->kind == N_IN) {
    for (size_t u = 0; u < n->nv; u++) {
      const uint64_t y = qv__attrs_key(QV_ATTR_INT64, (uint64_t)v[u].i);
      sorted_range(a, j, y, y, count, out);
    }
  } else {
    uint64_t slot;
    if (ty == QV_ATTR_INT64) {
      slot = (uint64_t)v->i;
    } else {
      const double d = v->d == 0.0 ? 0.0 : v->d; /* stored values are canonical too */
      memcpy(&slot, &d, sizeof slot);
    }
    const uint64_t y = qv__attrs_key(ty, slot);
    switch (n->op) {
    case T_EQ:
    case T_NE:
      sorted_range(a, j, y, y, count, out);
      break;
    case T_LT:
      if (y > 0)
        sorted_range(a, j, 0, y - 1, count, out);
      break;
    case T_LE:
      sorted_range(a, j, 0, y, count, out);
      break;
    case T_GT:
      if (y < MAX)
        sorted_range(a, j, y + 1, MAX, count, out);
      break;
    default:
      sorted_range(a, j, y, MAX, count, out);
      break;
    }
  }
  dirty_ctx dc = {out, a->col[j], n, v, ty, count};
  roaring_iterate(a->dirty, dirty_fix, &dc);
  if (n->neg || (n->kind == N_CMP && n->op == T_NE))
    negate(out, count);
  return 1;
}

static qv_status eval_leaf(const qv_filter *f, const node *n, const qv__attrs *a, size_t count,
                           uint64_t *out, qv_error *err) {
  const size_t nw = (count + 63) / 64;
  {
    const qv_attr_type t = a->f[n->col].type;
    if ((t == QV_ATTR_INT64 || t == QV_ATTR_FLOAT) && (n->kind == N_CMP || n->kind == N_IN) &&
        sorted_leaf(f, n, a, count, out))
      return QV_OK;
  }
  const uint64_t *col = a->col[n->col];
  const qv_attr_type ty = a->f[n->col].type;
  const value *v = &f->vals[n->v0];
  if (n->kind == N_TRUE_BOOL) {
    SCAN(x != 0);
    return QV_OK;
  }
  if (n->kind == N_CMP) {
    const int op = n->op;
    if (ty == QV_ATTR_INT64 && v->kind == T_INT) {
      const int64_t y = v->i;
      SCAN(cmp_int(op, (int64_t)x, y));
    } else if (ty == QV_ATTR_INT64) {
      const double y = v->d;
      SCAN(cmp_num(op, (double)(int64_t)x, y));
    } else if (ty == QV_ATTR_FLOAT) {
      const double y = v->d;
      double dx;
      SCAN((memcpy(&dx, &x, sizeof dx), cmp_num(op, dx, y)));
    } else if (ty == QV_ATTR_BOOL) {
      const uint64_t y = v->kind == T_TRUE;
      SCAN(op == T_EQ ? x == y : x != y);
    } else { /* KEYWORD: its posting */
      const int64_t y = qv__dict_find(&a->dict[n->col], v->s);
      memset(out, 0, nw * sizeof *out);
      posting_or(qv__attrs_posting(a, (size_t)n->col, y), out);
      if (op == T_NE)
        negate(out, count);
    }
    return QV_OK;
  }
  /* N_IN (INT64, KEYWORD), N_HAS_ANY / N_HAS_ALL (TAGS): strings through the dictionary. */
  const int neg = n->neg;
  if (ty == QV_ATTR_INT64) {
    int64_t *iv = malloc(n->nv * sizeof *iv);
    double *dv = malloc(n->nv * sizeof *dv);
    size_t ni = 0, nd = 0;
    if (iv == NULL || dv == NULL) {
      free(iv);
      free(dv);
      return qv_error_set(err, QV_ENOMEM, "filter: out of memory");
    }
    for (size_t i = 0; i < n->nv; i++) {
      if (v[i].kind == T_INT)
        iv[ni++] = v[i].i;
      else
        dv[nd++] = v[i].d;
    }
    qsort(iv, ni, sizeof *iv, cmp_i64);
    for (size_t w0 = 0; w0 < nw; w0++) {
      uint64_t m = 0;
      const size_t r0 = w0 * 64, r1 = r0 + 64 < count ? r0 + 64 : count;
      for (size_t r = r0; r < r1; r++) {
        const int64_t x = (int64_t)col[r];
        int hit = bsearch(&x, iv, ni, sizeof *iv, cmp_i64) != NULL;
        for (size_t u = 0; !hit && u < nd; u++)
          hit = (double)x == dv[u];
        m |= (uint64_t)(hit != neg) << (r - r0);
      }
      out[w0] = m;
    }
    free(iv);
    free(dv);
    return QV_OK;
  }
  int64_t *codes = malloc(n->nv * sizeof *codes);
  if (codes == NULL)
    return qv_error_set(err, QV_ENOMEM, "filter: out of memory");
  size_t nc = 0, unknown = 0;
  for (size_t i = 0; i < n->nv; i++) {
    int64_t code = qv__dict_find(&a->dict[n->col], v[i].s);
    if (code >= 0)
      codes[nc++] = code;
    else
      unknown++;
  }
  memset(out, 0, nw * sizeof *out);
  if (ty == QV_ATTR_KEYWORD || n->kind == N_HAS_ANY) { /* the union of the values' postings */
    for (size_t u = 0; u < nc; u++)
      posting_or(qv__attrs_posting(a, (size_t)n->col, codes[u]), out);
    if (neg)
      negate(out, count);
  } else if (unknown == 0 && nc > 0) { /* has all: the rarest value's rows, checked for the rest */
    size_t best = 0;
    for (size_t u = 1; u < nc; u++)
      if (roaring_bitmap_get_cardinality(qv__attrs_posting(a, (size_t)n->col, codes[u])) <
          roaring_bitmap_get_cardinality(qv__attrs_posting(a, (size_t)n->col, codes[best])))
        best = u;
    all_ctx ac = {out, col, codes, nc};
    roaring_iterate(qv__attrs_posting(a, (size_t)n->col, codes[best]), all_bit, &ac);
  } /* else: has all of a value no item holds: nothing */
  free(codes);
  return QV_OK;
}

static size_t scratch_levels(const qv_filter *f, int i) {
  const node *n = &f->nodes[i];
  if (n->kind == N_AND || n->kind == N_OR) {
    size_t l = scratch_levels(f, n->a), r = 1 + scratch_levels(f, n->b);
    return l > r ? l : r;
  }
  return n->kind == N_NOT ? scratch_levels(f, n->a) : 0;
}

/* Evaluates node i into out; scratch holds a bitmap per level below. */
static qv_status eval_node(const qv_filter *f, int i, const qv__attrs *a, size_t count,
                           uint64_t *out, uint64_t *scratch, qv_error *err) {
  const node *n = &f->nodes[i];
  const size_t nw = (count + 63) / 64;
  qv_status st;
  if (n->kind == N_AND || n->kind == N_OR) {
    if ((st = eval_node(f, n->a, a, count, out, scratch, err)) != QV_OK ||
        (st = eval_node(f, n->b, a, count, scratch, scratch + nw, err)) != QV_OK)
      return st;
    if (n->kind == N_AND)
      for (size_t w = 0; w < nw; w++)
        out[w] &= scratch[w];
    else
      for (size_t w = 0; w < nw; w++)
        out[w] |= scratch[w];
    return QV_OK;
  }
  if (n->kind == N_NOT) {
    if ((st = eval_node(f, n->a, a, count, out, scratch, err)) != QV_OK)
      return st;
    negate(out, count);
    return QV_OK;
  }
  return eval_leaf(f, n, a, count, out, err);
}

qv_status qv__filter_eval(const qv_filter *f, const qv__attrs *a, size_t count, uint64_t *words,
                          uint64_t *n_match, qv_error *err) {
  *n_match = 0;
  if (f->hash != a->hash)
    return qv_error_set(err, QV_EINVAL,
                        "filter: parsed for another attribute schema than this collection's");
  const size_t nw = (count + 63) / 64;
  if (nw == 0)
    return QV_OK;
  /* One scratch bitmap per right-hand descent of and/or (eval_node). */
  size_t levels = scratch_levels(f, f->root) + 1;
  uint64_t *scratch = malloc(levels * nw * sizeof *scratch);
  if (scratch == NULL)
    return qv_error_set(err, QV_ENOMEM, "filter: out of memory for %zu rows", count);
  qv_status st = eval_node(f, f->root, a, count, words, scratch, err);
  free(scratch);
  if (st != QV_OK)
    return st;
  uint64_t m = 0;
  for (size_t w = 0; w < nw; w++)
    m += (uint64_t)__builtin_popcountll(words[w]);
  *n_match = m;
  return QV_OK;
}

qv_status qv_collection_filter_count(qv_collection *c, const qv_filter *f, uint64_t *n,
                                     qv_error *err) {
  if (c == NULL || f == NULL || n == NULL)
    return qv_error_set(err, QV_EINVAL, "filter_count: NULL argument");
  pthread_rwlock_rdlock(&c->rw);
  const size_t count = c->count;
  uint64_t *w = malloc(((count + 63) / 64 + 1) * sizeof *w);
  qv_status st = w ? qv__filter_eval(f, &c->attrs, count, w, n, err)
                   : qv_error_set(err, QV_ENOMEM, "filter: out of memory");
  pthread_rwlock_unlock(&c->rw);
  free(w);
  return st;
}
