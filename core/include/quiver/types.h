/* Small value types shared by every layer: the metric and its score convention. */
#ifndef QUIVER_TYPES_H
#define QUIVER_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The similarity a collection ranks by, and what a returned score means:
 *   QV_METRIC_L2      score = squared Euclidean distance; smaller is better; results ascending.
 *   QV_METRIC_IP      score = inner product <q, x>; larger is better; results descending.
 *   QV_METRIC_COSINE  score = cosine similarity in [-1, 1]; larger is better; results descending.
 *                     Stored vectors and queries are normalised to unit length on the way in, so
 *                     this is the inner product of the normalised vectors. A zero vector has no
 *                     direction and is refused with QV_EINVAL.
 * Result slots that could not be filled (fewer than k candidates) carry id -1 and a score of
 * +INFINITY (L2) or -INFINITY (IP, cosine), as FAISS pads them. */
typedef enum qv_metric {
  QV_METRIC_L2 = 0,
  QV_METRIC_IP = 1,
  QV_METRIC_COSINE = 2,
} qv_metric;

/* "l2", "ip", "cosine". */
QV_API const char *qv_metric_name(qv_metric m);

/* Parses "l2" | "ip" | "cosine" (case-insensitive; "L2sqr"/"euclidean" accepted as l2, "dot" and
 * "inner_product" as ip). QV_OK or QV_EINVAL naming the accepted values. */
QV_API qv_status qv_metric_parse(const char *s, qv_metric *out, qv_error *err);

/* 1 when larger scores rank first (ip, cosine), 0 when smaller do (l2). */
static inline int qv_metric_larger_is_better(qv_metric m) {
  return m != QV_METRIC_L2;
}

/* Where a collection serves searches from (quiver/gpu.h of index/). */
typedef enum qv_device {
  QV_DEVICE_AUTO = 0, /* a GPU when one is present and the index fits, else the CPU */
  QV_DEVICE_CPU = 1,  /* always the CPU */
  QV_DEVICE_GPU = 2,  /* a GPU; when none can take it: the CPU or an error (fallback_cpu) */
} qv_device;

/* "auto", "cpu", "gpu" (NULL for a bad value). */
QV_API const char *qv_device_name(qv_device d);
/* Parses those names. QV_OK or QV_EINVAL naming the accepted values. */
QV_API qv_status qv_device_parse(const char *s, qv_device *out, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_TYPES_H */
