/* faultfs: an LD_PRELOAD library that makes the file layer fail on purpose (tests only).
 *
 *   QV_FAULT_CTL=/tmp/ctl QV_FAULT_ROOT=/data LD_PRELOAD=build/tests/libqv_faultfs.so quiverd ...
 *
 * It interposes the calls through which quiverd (and FAISS, through stdio) changes files: write,
 * pwrite, writev, fsync, fdatasync, rename/renameat/renameat2, open/openat/creat/fopen when they
 * create or write, ftruncate, and fwrite/fflush/fclose (glibc's fwrite reaches the kernel through
 * an internal write, not the PLT one, so interposing write alone would miss FAISS's index files).
 * Each call first looks at the control file named by QV_FAULT_CTL and reloads its rules when the
 * file changed (inode, size or mtime; while the mtime is recent, the text too), so a test turns
 * faults on and off while quiverd runs. Replace the file (write a new one, rename it over).
 *
 * Control file: one rule a line, `key=value` words, `#` starts a comment:
 *
 *   op=fdatasync nth=3 err=EIO path=wal.log    the 3rd fdatasync of a file whose path contains
 *                                              "wal.log" fails with EIO, and every later one
 *   op=write,pwrite count=2 err=ENOSPC         the first two writes fail, then they pass
 *   op=write short=1 count=1 path=wal.log      the first write writes half and returns that count
 *   root=/data                                 only paths under /data (else $QV_FAULT_ROOT; when
 *                                              neither is set, every path) are affected
 *
 * op: write pwrite writev fsync fdatasync rename open ftruncate fwrite fflush fclose, a comma
 * list, or *. nth (default 1): the first failing call, counted per rule over the calls that
 * match its op and path since the rule was loaded. count (default 0 = for ever): how many calls
 * fail from nth on. err: EIO (default), ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EFBIG, EINTR or a
 * number.
 * short=1 (write, pwrite, writev, fwrite): write half of what was asked and return that count.
 * delay_ms=N: no failure; the call sleeps N ms (at most 60000) and then goes through, logging
 * "faultfs: delaying OP(path) by N ms" before and "faultfs: delayed OP(path) goes on" after (a
 * slow disk, for tests of what must not wait for one).
 * path: a substring of the file's path (fd -> path through /proc/self/fd); for rename either
 * name matches. The first rule that fires wins; a call no rule fires on goes through unchanged.
 *
 * What a failure does: the call does nothing and returns -1 (NULL, 0 or EOF for stdio) with errno
 * set. fflush and fclose drop what the stream still buffers (as a flush that hit a full disk
 * loses it) and report EOF; fclose still closes the descriptor. Every injected fault is logged
 * to stderr as one line: "faultfs: injected EIO into fdatasync(/data/collections/c/wal.log)". */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FS_API __attribute__((visibility("default")))

enum {
  OP_WRITE,
  OP_PWRITE,
  OP_WRITEV,
  OP_FSYNC,
  OP_FDATASYNC,
  OP_RENAME,
  OP_OPEN,
  OP_FTRUNCATE,
  OP_FWRITE,
  OP_FFLUSH,
  OP_FCLOSE,
  NOPS
};
static const char *const kOpNames[NOPS] = {"write",     "pwrite", "writev", "fsync",
                                           "fdatasync", "rename", "open",   "ftruncate",
                                           "fwrite",    "fflush", "fclose"};

#define MAX_RULES 32
#define MAX_SUBSTR 256

typedef struct rule {
  unsigned ops; /* bit per OP_ */
  unsigned long long nth, count, seen;
  int err, is_short;
  unsigned long delay_ms; /* > 0: the call sleeps this long, then goes through */
  char path[MAX_SUBSTR];
} rule;

/* Everything below the real pointers is guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rule rules[MAX_RULES];
static int nrules;
static unsigned all_ops; /* union of the rules' ops: a quick "nothing to do" */
static char root[PATH_MAX];
static int have_stamp;
static struct stat stamp;

/* ---- the real functions ------------------------------------------------------------------ */

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef int (*ftruncate_fn)(int, off_t);
typedef size_t (*fwrite_fn)(const void *, size_t, size_t, FILE *);
typedef int (*stream_fn)(FILE *);

/* The next definition of a symbol after this library's: libc's (or a sanitizer's interceptor). */
static void *next_sym(const char *name) {
  return dlsym(RTLD_NEXT, name);
}

/* Declares real_NAME, resolved on first use (threads that race store the same pointer). */
#define REAL(type, name)                                                                           \
  static type real_##name;                                                                         \
  if (__atomic_load_n(&real_##name, __ATOMIC_ACQUIRE) == NULL) {                                   \
    type found_;                                                                                   \
    *(void **)(&found_) = next_sym(#name);                                                         \
    __atomic_store_n(&real_##name, found_, __ATOMIC_RELEASE);                                      \
  }

/* A real write() for our own log lines and control-file reads. */
static ssize_t raw_write(int fd, const void *buf, size_t n) {
  REAL(write_fn, write);
  return real_write ? real_write(fd, buf, n) : -1;
}

static int raw_open(const char *path, int flags) {
  REAL(open_fn, open);
  return real_open ? real_open(path, flags) : -1;
}

/* ---- rules ------------------------------------------------------------------------------- */

static const struct {
  const char *name;
  int value;
} kErrs[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
             {"EACCES", EACCES}, {"EPERM", EPERM},   {"EFBIG", EFBIG},   {"EINTR", EINTR}};

static const char *err_name(int e, char *buf, size_t cap) {
  for (size_t i = 0; i < sizeof kErrs / sizeof kErrs[0]; i++)
    if (kErrs[i].value == e)
      return kErrs[i].name;
  snprintf(buf, cap, "errno %d", e);
  return buf;
}

static void say(const char *fmt, ...) {
  char line[PATH_MAX * 2 + 200];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  int saved = errno;
  (void)!raw_write(2, line, (size_t)n);
  errno = saved;
}

static int parse_ops(const char *v, unsigned *out) {
  *out = 0;
  char buf[128];
  snprintf(buf, sizeof buf, "%s", v);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "*") == 0) {
      *out = (1u << NOPS) - 1;
      continue;
    }
    int found = 0;
    for (int i = 0; i < NOPS; i++)
      if (strcmp(t, kOpNames[i]) == 0) {
        *out |= 1u << i;
        found = 1;
      }
    /* Aliases: the 64-bit and *at variants are the same operation. */
    if (!found && (strcmp(t, "renameat") == 0 || strcmp(t, "renameat2") == 0))
      *out |= 1u << OP_RENAME, found = 1;
    if (!found && (strcmp(t, "openat") == 0 || strcmp(t, "creat") == 0 || strcmp(t, "fopen") == 0))
      *out |= 1u << OP_OPEN, found = 1;
    if (!found)
      return -1;
  }
  return *out ? 0 : -1;
}

static int parse_err(const char *v, int *out) {
  for (size_t i = 0; i < sizeof kErrs / sizeof kErrs[0]; i++)
    if (strcmp(v, kErrs[i].name) == 0) {
      *out = kErrs[i].value;
      return 0;
    }
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n <= 0 || n > 4095)
    return -1;
  *out = (int)n;
  return 0;
}

/* Parses one line into r (or the root); returns 1 for a rule, 0 for nothing, -1 for an error. */
static int parse_line(char *line, rule *r, char *new_root, size_t root_cap) {
  char *hash = strchr(line, '#');
  if (hash)
    *hash = '\0';
  memset(r, 0, sizeof *r);
  r->nth = 1;
  r->err = EIO;
  int words = 0, have_op = 0;
  for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t;
       t = strtok_r(NULL, " \t\r\n", &save)) {
    char *eq = strchr(t, '=');
    if (eq == NULL)
      return -1;
    *eq = '\0';
    const char *k = t, *v = eq + 1;
    char *end;
    words++;
    if (strcmp(k, "root") == 0) {
      snprintf(new_root, root_cap, "%s", v);
      words--;
    } else if (strcmp(k, "op") == 0) {
      if (parse_ops(v, &r->ops) != 0)
        return -1;
      have_op = 1;
    } else if (strcmp(k, "nth") == 0 || strcmp(k, "count") == 0) {
      unsigned long long n = strtoull(v, &end, 10);
      if (*v == '\0' || *end != '\0' || (k[0] == 'n' && n == 0))
        return -1;
      if (k[0] == 'n')
        r->nth = n;
      else
        r->count = n;
    } else if (strcmp(k, "err") == 0) {
      if (parse_err(v, &r->err) != 0)
        return -1;
    } else if (strcmp(k, "delay_ms") == 0) {
      unsigned long n = strtoul(v, &end, 10);
      if (*v == '\0' || *end != '\0' || n == 0 || n > 60000)
        return -1;
      r->delay_ms = n;
    } else if (strcmp(k, "short") == 0) {
      r->is_short = strcmp(v, "0") != 0;
    } else if (strcmp(k, "path") == 0) {
      snprintf(r->path, sizeof r->path, "%s", v);
    } else {
      return -1;
    }
  }
  if (words == 0)
    return 0;
  return have_op ? 1 : -1;
}

/* Reads the control file (at most CTL_MAX - 1 bytes); returns its length, -1 when unreadable. */
#define CTL_MAX 16384
static ssize_t read_ctl(const char *ctl, char *text) {
  int fd = raw_open(ctl, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t len = 0;
  ssize_t k;
  while (len < CTL_MAX - 1 && (k = read(fd, text + len, CTL_MAX - 1 - len)) > 0)
    len += (size_t)k;
  close(fd);
  text[len] = '\0';
  return (ssize_t)len;
}

static char loaded[CTL_MAX]; /* the text the rules came from */
static ssize_t loaded_len = -1;

/* Reloads the rules when the control file changed. Called with mu held. A change is a new
 * inode, size or mtime; but file times tick coarsely (a few ms) and a replaced file may reuse
 * the inode just freed, so while the mtime is recent the text itself is compared too. */
static void reload_locked(void) {
  const char *ctl = getenv("QV_FAULT_CTL");
  if (ctl == NULL || ctl[0] == '\0')
    return;
  struct stat sb;
  int exists = stat(ctl, &sb) == 0;
  static char text[CTL_MAX];
  ssize_t len = -1;
  if (have_stamp == exists &&
      (!exists || (sb.st_ino == stamp.st_ino && sb.st_dev == stamp.st_dev &&
                   sb.st_size == stamp.st_size && sb.st_mtim.tv_sec == stamp.st_mtim.tv_sec &&
                   sb.st_mtim.tv_nsec == stamp.st_mtim.tv_nsec))) {
    struct timespec now;
    if (!exists || clock_gettime(CLOCK_REALTIME, &now) != 0 || now.tv_sec > sb.st_mtim.tv_sec + 1)
      return;
    len = read_ctl(ctl, text);
    if (len == loaded_len && (len < 0 || memcmp(text, loaded, (size_t)len) == 0))
      return;
  }
  have_stamp = exists;
  stamp = sb;
  nrules = 0;
  all_ops = 0;
  char new_root[PATH_MAX] = "";
  const char *env_root = getenv("QV_FAULT_ROOT");
  if (env_root)
    snprintf(new_root, sizeof new_root, "%s", env_root);
  if (exists && len < 0)
    len = read_ctl(ctl, text);
  if (!exists)
    len = -1;
  loaded_len = len;
  if (len > 0)
    memcpy(loaded, text, (size_t)len);
  int lineno = 0;
  for (char *save = NULL, *line = len > 0 ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    rule r;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", line);
    int got = parse_line(line, &r, new_root, sizeof new_root);
    if (got < 0)
      say("faultfs: ignoring line %d of %s: %s", lineno, ctl, copy);
    else if (got > 0 && nrules < MAX_RULES) {
      rules[nrules++] = r;
      all_ops |= r.ops;
    }
  }
  root[0] = '\0';
  if (new_root[0] != '\0' && realpath(new_root, root) == NULL)
    snprintf(root, sizeof root, "%s", new_root);
  say("faultfs: pid %d: %d rule(s) from %s%s%s", (int)getpid(), nrules, ctl,
      root[0] ? ", under " : "", root);
}

static int under_root(const char *path) {
  if (path == NULL)
    return 0;
  size_t n = strlen(root);
  return n == 0 || (strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0'));
}

/* The rule that fires for this call, or NULL; counts the call for every rule it matches.
 * Called with mu held. */
static rule *decide_locked(int op, const char *p1, const char *p2) {
  rule *hit = NULL;
  const char *ctl = getenv("QV_FAULT_CTL");
  for (int i = 0; i < nrules; i++) {
    rule *r = &rules[i];
    if (!(r->ops & (1u << op)))
      continue;
    int m = 0;
    for (int j = 0; j < 2 && !m; j++) {
      const char *p = j == 0 ? p1 : p2;
      m = p != NULL && under_root(p) && (ctl == NULL || strcmp(p, ctl) != 0) &&
          strstr(p, r->path) != NULL;
    }
    if (!m)
      continue;
    r->seen++;
    if (hit == NULL && r->seen >= r->nth && (r->count == 0 || r->seen < r->nth + r->count))
      hit = r;
  }
  return hit;
}

/* Makes `path` absolute (relative to dirfd or the working directory), without resolving links. */
static void absolute(int dirfd, const char *path, char *out, size_t cap) {
  if (path == NULL) {
    out[0] = '\0';
    return;
  }
  if (path[0] == '/') {
    snprintf(out, cap, "%s", path);
    return;
  }
  char base[PATH_MAX] = "";
  if (dirfd == AT_FDCWD) {
    if (getcwd(base, sizeof base) == NULL)
      base[0] = '\0';
  } else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t k = readlink(link, base, sizeof base - 1);
    base[k > 0 ? k : 0] = '\0';
  }
  snprintf(out, cap, "%s/%s", base, path);
}

static void fd_path(int fd, char *out, size_t cap) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, out, cap - 1);
  out[k > 0 ? k : 0] = '\0';
}

/* What to do with this call: 0 pass, 1 fail with *err, 2 short. Logs the fault. */
static int check(int op, const char *p1, const char *p2, int *err, size_t asked) {
  int saved = errno, act = 0;
  pthread_mutex_lock(&mu);
  reload_locked();
  rule *r = (all_ops & (1u << op)) ? decide_locked(op, p1, p2) : NULL;
  unsigned long delay = 0;
  if (r != NULL && r->delay_ms > 0) {
    delay = r->delay_ms;
    say("faultfs: delaying %s(%s) by %lu ms", kOpNames[op], p1, delay);
  } else if (r != NULL) {
    char eb[32];
    const int shortable = op == OP_WRITE || op == OP_PWRITE || op == OP_WRITEV || op == OP_FWRITE;
    *err = r->err;
    if (r->is_short && shortable && asked > 1) {
      act = 2;
      say("faultfs: injected short write (%zu of %zu %s) into %s(%s)", asked / 2, asked,
          op == OP_FWRITE ? "items" : "bytes", kOpNames[op], p1);
    } else {
      act = 1;
      if (p2 != NULL)
        say("faultfs: injected %s into %s(%s -> %s)", err_name(r->err, eb, sizeof eb), kOpNames[op],
            p1, p2);
      else
        say("faultfs: injected %s into %s(%s)", err_name(r->err, eb, sizeof eb), kOpNames[op], p1);
    }
  }
  pthread_mutex_unlock(&mu);
  if (delay > 0) { /* outside the lock: other calls go on meanwhile */
    struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    say("faultfs: delayed %s(%s) goes on", kOpNames[op], p1);
  }
  errno = saved;
  return act;
}

/* Whether any rule names op (after a reload): lets a call skip the path lookup. */
static int wanted(int op) {
  if (getenv("QV_FAULT_CTL") == NULL)
    return 0;
  int saved = errno;
  pthread_mutex_lock(&mu);
  reload_locked();
  int w = (all_ops & (1u << op)) != 0;
  pthread_mutex_unlock(&mu);
  errno = saved;
  return w;
}

static int check_fd(int op, int fd, int *err, size_t asked) {
  if (!wanted(op))
    return 0;
  char p[PATH_MAX];
  fd_path(fd, p, sizeof p);
  return check(op, p, NULL, err, asked);
}

/* ---- the interposed calls ---------------------------------------------------------------- */

FS_API ssize_t write(int fd, const void *buf, size_t n) {
  REAL(write_fn, write);
  int e = 0, act = check_fd(OP_WRITE, fd, &e, n);
  if (act == 1) {
    errno = e;
    return -1;
  }
  return real_write(fd, buf, act == 2 ? n / 2 : n);
}

FS_API ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite_fn, pwrite);
  int e = 0, act = check_fd(OP_PWRITE, fd, &e, n);
  if (act == 1) {
    errno = e;
    return -1;
  }
  return real_pwrite(fd, buf, act == 2 ? n / 2 : n, off);
}

FS_API ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  return pwrite(fd, buf, n, off);
}

FS_API ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  REAL(writev_fn, writev);
  size_t total = 0;
  for (int i = 0; i < cnt; i++)
    total += iov[i].iov_len;
  int e = 0, act = check_fd(OP_WRITEV, fd, &e, total);
  if (act == 1) {
    errno = e;
    return -1;
  }
  if (act == 2) { /* the first half of the bytes */
    struct iovec part[64];
    size_t want = total / 2;
    int m = 0;
    for (int i = 0; i < cnt && m < 64 && want > 0; i++, m++) {
      part[m] = iov[i];
      if (part[m].iov_len > want)
        part[m].iov_len = want;
      want -= part[m].iov_len;
    }
    return real_writev(fd, part, m);
  }
  return real_writev(fd, iov, cnt);
}

FS_API int fsync(int fd) {
  REAL(fd_fn, fsync);
  int e = 0;
  if (check_fd(OP_FSYNC, fd, &e, 0) == 1) {
    errno = e;
    return -1;
  }
  return real_fsync(fd);
}

FS_API int fdatasync(int fd) {
  REAL(fd_fn, fdatasync);
  int e = 0;
  if (check_fd(OP_FDATASYNC, fd, &e, 0) == 1) {
    errno = e;
    return -1;
  }
  return real_fdatasync(fd);
}

static int check_rename(int dfa, const char *a, int dfb, const char *b, int *e) {
  if (!wanted(OP_RENAME))
    return 0;
  char pa[PATH_MAX], pb[PATH_MAX];
  absolute(dfa, a, pa, sizeof pa);
  absolute(dfb, b, pb, sizeof pb);
  return check(OP_RENAME, pa, pb, e, 0);
}

FS_API int rename(const char *a, const char *b) {
  REAL(rename_fn, rename);
  int e = 0;
  if (check_rename(AT_FDCWD, a, AT_FDCWD, b, &e) == 1) {
    errno = e;
    return -1;
  }
  return real_rename(a, b);
}

FS_API int renameat(int dfa, const char *a, int dfb, const char *b) {
  REAL(renameat_fn, renameat);
  int e = 0;
  if (check_rename(dfa, a, dfb, b, &e) == 1) {
    errno = e;
    return -1;
  }
  return real_renameat(dfa, a, dfb, b);
}

FS_API int renameat2(int dfa, const char *a, int dfb, const char *b, unsigned flags) {
  REAL(renameat2_fn, renameat2);
  int e = 0;
  if (check_rename(dfa, a, dfb, b, &e) == 1) {
    errno = e;
    return -1;
  }
  return real_renameat2(dfa, a, dfb, b, flags);
}

/* Opens that create a file are what op=open fails. */
static int check_open(int dirfd, const char *path, int flags, int *e) {
  if (!(flags & O_CREAT) || !wanted(OP_OPEN))
    return 0;
  char p[PATH_MAX];
  absolute(dirfd, path, p, sizeof p);
  return check(OP_OPEN, p, NULL, e, 0);
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

FS_API int open(const char *path, int flags, ...) {
  REAL(open_fn, open);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  int e = 0;
  if (check_open(AT_FDCWD, path, flags, &e) == 1) {
    errno = e;
    return -1;
  }
  return real_open(path, flags, mode);
}

FS_API int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open(path, flags, mode);
}

FS_API int openat(int dirfd, const char *path, int flags, ...) {
  REAL(openat_fn, openat);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  int e = 0;
  if (check_open(dirfd, path, flags, &e) == 1) {
    errno = e;
    return -1;
  }
  return real_openat(dirfd, path, flags, mode);
}

FS_API int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return openat(dirfd, path, flags, mode);
}

FS_API int creat(const char *path, mode_t mode) {
  return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

FS_API FILE *fopen(const char *path, const char *mode) {
  REAL(fopen_fn, fopen);
  int e = 0;
  /* glibc's fopen opens through an internal call: check it here ("w", "a", "r+" create/write). */
  if (mode && (strchr(mode, 'w') || strchr(mode, 'a')) &&
      check_open(AT_FDCWD, path, O_CREAT, &e) == 1) {
    errno = e;
    return NULL;
  }
  return real_fopen(path, mode);
}

FS_API FILE *fopen64(const char *path, const char *mode) {
  return fopen(path, mode);
}

FS_API int ftruncate(int fd, off_t len) {
  REAL(ftruncate_fn, ftruncate);
  int e = 0;
  if (check_fd(OP_FTRUNCATE, fd, &e, 0) == 1) {
    errno = e;
    return -1;
  }
  return real_ftruncate(fd, len);
}

FS_API int ftruncate64(int fd, off_t len) {
  return ftruncate(fd, len);
}

FS_API size_t fwrite(const void *ptr, size_t size, size_t n, FILE *f) {
  REAL(fwrite_fn, fwrite);
  int e = 0, act = size > 0 ? check_fd(OP_FWRITE, fileno(f), &e, n) : 0;
  if (act == 1) {
    errno = e;
    return 0;
  }
  if (act == 2) {
    size_t k = real_fwrite(ptr, size, n / 2, f);
    errno = e;
    return k;
  }
  return real_fwrite(ptr, size, n, f);
}

FS_API int fflush(FILE *f) {
  REAL(stream_fn, fflush);
  int e = 0;
  if (f != NULL && check_fd(OP_FFLUSH, fileno(f), &e, 0) == 1) {
    __fpurge(f); /* what a flush into a full disk loses */
    errno = e;
    return EOF;
  }
  return real_fflush(f);
}

FS_API int fclose(FILE *f) {
  REAL(stream_fn, fclose);
  int e = 0;
  if (f != NULL && check_fd(OP_FCLOSE, fileno(f), &e, 0) == 1) {
    __fpurge(f); /* the buffered tail never reaches the file */
    real_fclose(f);
    errno = e;
    return EOF;
  }
  return real_fclose(f);
}
