/* The accept watchdog (--accept-check-s). */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server_internal.h"

/* ---- the accept watchdog ---------------------------------------------------------------- */

/* gRPC 1.51 stops accepting for good once accept() fails with EMFILE (grpc/grpc#20418): the
 * process lives on, deaf. The watchdog connects to the listener every --accept-check-s seconds
 * and sends the HTTP/2 client preface; an accepted connection answers at once (gRPC's SETTINGS,
 * or a close from the TLS handshake), whatever the polling threads are doing. Three probes in a
 * row without an answer: health says NOT_SERVING and quiverd stops, with exit status 1, for its
 * supervisor to restart it. A probe that cannot even make a socket (the process is out of
 * descriptors itself) counts as neither. */
static int accept_probe(const qv__server *s, int timeout_ms) {
  int fd = socket(s->wd_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  int answered = 0;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (connect(fd, (const struct sockaddr *)&s->wd_addr, s->wd_len) != 0 && errno != EINPROGRESS) {
    answered = 0; /* refused: nothing listens */
  } else if (poll(&p, 1, timeout_ms) == 1) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0 &&
        send(fd, preface, sizeof preface - 1, MSG_NOSIGNAL) >= 0) {
      p.events = POLLIN;
      answered = poll(&p, 1, timeout_ms) == 1; /* bytes, a close or a reset: accepted */
    }
  }
  close(fd);
  return answered;
}

static void *watchdog_main(void *arg) {
  qv__server *s = arg;
  const int every_ms = (int)s->cfg->accept_check_s * 1000;
  int misses = 0;
  pthread_mutex_lock(&s->wd_mu);
  while (!atomic_load(&s->stopping)) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += every_ms / 1000;
    pthread_cond_timedwait(&s->wd_cv, &s->wd_mu, &until);
    if (atomic_load(&s->stopping))
      break;
    pthread_mutex_unlock(&s->wd_mu);
    const int r = accept_probe(s, 5000);
    pthread_mutex_lock(&s->wd_mu);
    if (r == 1) {
      misses = 0;
    } else if (r == 0 && ++misses >= 3) {
      atomic_store(&s->accept_dead, 1);
      qv__health_changed(s); /* open watches get NOT_SERVING now, before the stop ends them */
      QV_LOG_E("quiverd stopped accepting connections (3 probes of its own listener went "
               "unanswered; gRPC stops accepting after running out of file descriptors): "
               "stopping with exit status 1 for the supervisor to restart it");
      kill(getpid(), SIGTERM);
      break;
    }
  }
  pthread_mutex_unlock(&s->wd_mu);
  return NULL;
}

/* Where the watchdog connects: the listen address, or loopback for a wildcard one. */
static int watchdog_addr(qv__server *s, int port) {
  char host[256];
  const char *l = s->cfg->listen;
  if (strncmp(l, "unix:", 5) == 0 || strncmp(l, "unix-abstract:", 14) == 0)
    return 0;
  const char *colon = strrchr(l, ':');
  size_t hl = colon ? (size_t)(colon - l) : strlen(l);
  if (hl >= sizeof host)
    return 0;
  memcpy(host, l, hl);
  host[hl] = '\0';
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
      strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
  if (getaddrinfo(host, ps, &hints, &ai) != 0 || ai == NULL)
    return 0;
  memcpy(&s->wd_addr, ai->ai_addr, ai->ai_addrlen);
  s->wd_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 1;
}

void qv__watchdog_start(qv__server *s, int port) {
  pthread_mutex_init(&s->wd_mu, NULL);
  pthread_cond_init(&s->wd_cv, NULL);
  s->wd_init = 1;
  if (s->cfg->accept_check_s <= 0)
    return;
  if (!watchdog_addr(s, port)) {
    QV_LOG_W("the accept watchdog is off: cannot probe --listen %s", s->cfg->listen);
    return;
  }
  s->watchdog_started = pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0;
}

void qv__watchdog_stop(qv__server *s) {
  pthread_mutex_lock(&s->wd_mu);
  pthread_cond_broadcast(&s->wd_cv);
  pthread_mutex_unlock(&s->wd_mu);
  if (s->watchdog_started)
    pthread_join(s->watchdog, NULL);
  s->watchdog_started = 0;
  pthread_mutex_destroy(&s->wd_mu);
  pthread_cond_destroy(&s->wd_cv);
}

int qv__server_accept_dead(const qv__server *s) {
  return s ? atomic_load(&s->accept_dead) : 0;
}
