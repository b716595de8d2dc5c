/* The wire walk behind qv__wire_check_strings (strcheck.h). */
#include "strcheck.h"

#include <string.h>

/* Reads a varint at *p (before end); 0 on success. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, surrogates or code points
 * past U+10FFFF), or -1 when s[0 .. n) is valid. */
static long utf8_bad(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      k = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return (long)i;
    }
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
        return (long)i;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return (long)i;
    i += k + 1;
  }
  return -1;
}

static qv_status walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                      int depth, qv_error *err) {
  if (depth > 32)
    return qv_error_set(err, QV_EINVAL, "%s: messages nested too deep", d->name);
  while (p < end) {
    uint64_t key, v;
    if (varint(&p, end, &key) != 0)
      return qv_error_set(err, QV_EINVAL, "%s: a truncated field key", d->name);
    const unsigned wt = (unsigned)(key & 7);
    const uint64_t num = key >> 3;
    const ProtobufCFieldDescriptor *f =
        num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
    switch (wt) {
    case 0: /* varint */
      if (varint(&p, end, &v) != 0)
        return qv_error_set(err, QV_EINVAL, "%s: a truncated varint", d->name);
      break;
    case 1: /* 64-bit */
      if (end - p < 8)
        return qv_error_set(err, QV_EINVAL, "%s: a truncated fixed64", d->name);
      p += 8;
      break;
    case 5: /* 32-bit */
      if (end - p < 4)
        return qv_error_set(err, QV_EINVAL, "%s: a truncated fixed32", d->name);
      p += 4;
      break;
    case 2: { /* length-delimited */
      if (varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
        return qv_error_set(err, QV_EINVAL, "%s: a truncated length-delimited field", d->name);
      const uint8_t *s = p;
      p += v;
      if (f == NULL)
        break; /* an unknown field: kept as bytes, never read as a string */
      if (f->type == PROTOBUF_C_TYPE_STRING) {
        const uint8_t *nul = memchr(s, 0, (size_t)v);
        if (nul != NULL)
          return qv_error_set(err, QV_EINVAL,
                              "field '%s' of %s holds a NUL byte at offset %zu: names, specs and "
                              "other strings may not contain one",
                              f->name, d->name, (size_t)(nul - s));
        long bad = utf8_bad(s, (size_t)v);
        if (bad >= 0)
          return qv_error_set(err, QV_EINVAL,
                              "field '%s' of %s is not valid UTF-8 (byte %ld): send UTF-8 text",
                              f->name, d->name, bad);
      } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        qv_status st = walk(f->descriptor, s, p, depth + 1, err);
        if (st != QV_OK)
          return st;
      }
      break;
    }
    default: /* groups (3, 4) are not proto3; protobuf-c refuses 6 and 7 */
      return qv_error_set(err, QV_EINVAL, "%s: wire type %u is not supported", d->name, wt);
    }
  }
  return QV_OK;
}

qv_status qv__wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                                 qv_error *err) {
  return walk(d, p, p + len, 0, err);
}
