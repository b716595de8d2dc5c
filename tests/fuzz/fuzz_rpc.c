/* Every RPC of quiverd, from request bytes: each message decoded and checked as on the wire
 * (the server's string checks and limits), then the method's handler, through
 * qv__server_call_offline, against a data directory of three small collections (flat, ivf, sq;
 * fuzz_common.h). An input is a sequence of records [u8 method][u16 le length][message]; records
 * of a streaming method in a row (Upsert, ImportIndex) make one stream. Method bit 7 on an
 * ImportIndex record: set the chunk's crc32 field to the CRC-32 of its data (or the server stops
 * at the checksum and never opens what was sent). The data directory is copied afresh before an
 * input when the previous one could have changed it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "config.h"
#include "fuzz_common.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "registry.h"
#include "server.h"

enum { MAX_MSGS = 64 };

static char *g_template, *g_scratch, *g_import_root;
static qv__config g_cfg;
static qv__registry g_reg;
static qv__server *g_srv;
static int g_open, g_dirty;

static void reopen(void) {
  if (g_open) {
    qv__server_offline_free(g_srv);
    qv__registry_close(&g_reg);
    fz_rm_tree(g_scratch);
  }
  fz_copy_tree(g_template, g_scratch);
  qv__registry_cfg rc;
  memset(&rc, 0, sizeof rc);
  qv_wal_opts_init(&rc.wal);
  rc.wal.sync_always = 0;
  rc.keep_versions = 2;
  rc.snapshot_bytes = 1 << 20;
  rc.memory_budget = 64u << 20;
  qv_error err = {0};
  if (qv__registry_open(&g_reg, g_scratch, &rc, &err) != QV_OK || g_reg.n != 3) {
    fprintf(stderr, "fuzz setup: the template does not open: %s\n", err.msg);
    abort();
  }
  g_srv = qv__server_offline_new(&g_cfg, &g_reg);
  g_open = 1;
  g_dirty = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fz_quiet_logs();
  g_template = fz_mkdtemp("template");
  fz_make_template(g_template);
  g_import_root = fz_mkdtemp("import-root");
  char src[4096], dst[4096];
  snprintf(src, sizeof src, "%s/collections/ivf", g_template);
  snprintf(dst, sizeof dst, "%s/ivf", g_import_root);
  fz_copy_tree(src, dst);
  g_scratch = fz_mkdtemp("scratch");
  fz_rm_tree(g_scratch);
  /* The server's own defaults, with smaller search limits so that one input stays cheap. */
  char *args[] = {"quiverd", "--data-dir",    g_scratch,     "--max-k",
                  "64",      "--max-queries", "64",          "--max-candidates",
                  "256",     "--import-root", g_import_root, "--import-min-free-mb",
                  "0",       "--device",      "cpu",         NULL};
  if (qv__config_load(&g_cfg, (int)(sizeof args / sizeof args[0]) - 1, args) != 0)
    abort();
  reopen();
  return 0;
}

/* ImportIndex with bit 7: the crc32 field made to match the data. */
static uint8_t *fix_crc(const uint8_t *m, size_t len, size_t *out_len) {
  Quiver__V1__ImportIndexRequest *r = quiver__v1__import_index_request__unpack(NULL, len, m);
  if (r == NULL)
    return NULL;
  r->crc32 = (uint32_t)crc32(0L, r->data.data, (uInt)r->data.len);
  *out_len = quiver__v1__import_index_request__get_packed_size(r);
  uint8_t *b = malloc(*out_len ? *out_len : 1);
  if (b)
    quiver__v1__import_index_request__pack(r, b);
  quiver__v1__import_index_request__free_unpacked(r, NULL);
  return b;
}

static int writes(int method) {
  const char *p = qv__server_method_path(method);
  return strstr(p, "/Search") == NULL && strstr(p, "/Describe") == NULL &&
         strstr(p, "/List") == NULL && strstr(p, "/Check") == NULL && strstr(p, "/Watch") == NULL;
}

static int streams(int method) {
  const char *p = qv__server_method_path(method);
  return strstr(p, "/Upsert") != NULL || strstr(p, "/ImportIndex") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_dirty)
    reopen();
  ProtobufCBinaryData msgs[MAX_MSGS];
  uint8_t *owned[MAX_MSGS];
  size_t off = 0;
  while (off + 3 <= size) {
    const int method = (data[off] & 0x7f) % qv__server_methods();
    const int fix = (data[off] & 0x80) && strstr(qv__server_method_path(method), "/ImportIndex");
    size_t n = 0;
    /* One call: this record, and the records of the same streaming method after it. */
    while (off + 3 <= size && n < MAX_MSGS) {
      if (n > 0 && ((data[off] & 0x7f) % qv__server_methods() != method || !streams(method)))
        break;
      size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
      off += 3;
      if (len > size - off)
        len = size - off;
      owned[n] = fix ? fix_crc(data + off, len, &msgs[n].len) : NULL;
      msgs[n].data = owned[n] ? owned[n] : (uint8_t *)(data + off);
      if (owned[n] == NULL)
        msgs[n].len = len;
      n++;
      off += len;
    }
    ProtobufCBinaryData resp;
    qv_error err = {0};
    qv__server_call_offline(g_srv, method, msgs, n, &resp, &err);
    free(resp.data);
    for (size_t i = 0; i < n; i++)
      free(owned[i]);
    if (writes(method))
      g_dirty = 1;
  }
  return 0;
}
