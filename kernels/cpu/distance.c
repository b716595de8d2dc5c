/* CPU reference kernels: distances and vector helpers. */
#include <math.h>

#include "quiver/kernels.h"

/* Eight independent accumulators let the compiler keep the loop in vector registers without
 * -ffast-math, and keep the summation order fixed (so results are reproducible). */
static float dot8(const float *a, const float *b, size_t d) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int l = 0; l < 8; l++)
      s[l] += a[i + l] * b[i + l];
  float t = 0.0f;
  for (; i < d; i++)
    t += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static float l2sq8(const float *a, const float *b, size_t d) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int l = 0; l < 8; l++) {
      float v = a[i + l] - b[i + l];
      s[l] += v * v;
    }
  float t = 0.0f;
  for (; i < d; i++) {
    float v = a[i] - b[i];
    t += v * v;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

qv_status qv_distances_cpu(qv_metric metric, const float *queries, size_t nq, const float *base,
                           size_t nb, size_t d, float *out, qv_error *err) {
  if (d == 0)
    return qv_error_set(err, QV_EINVAL, "distances: dimension must be > 0");
  if ((nq > 0 && queries == NULL) || (nb > 0 && base == NULL) || (nq > 0 && nb > 0 && !out))
    return qv_error_set(err, QV_EINVAL, "distances: NULL buffer");
  for (size_t i = 0; i < nq; i++) {
    const float *q = queries + i * d;
    float *o = out + i * nb;
    if (metric == QV_METRIC_L2) {
      for (size_t j = 0; j < nb; j++)
        o[j] = l2sq8(q, base + j * d, d);
    } else {
      for (size_t j = 0; j < nb; j++)
        o[j] = dot8(q, base + j * d, d);
    }
  }
  return QV_OK;
}

qv_status qv_normalize_cpu(float *x, size_t n, size_t d, qv_error *err) {
  for (size_t i = 0; i < n; i++) {
    float *r = x + i * d;
    double s = 0.0;
    for (size_t j = 0; j < d; j++)
      s += (double)r[j] * r[j];
    if (!(s > 0.0) || !isfinite(s))
      return qv_error_set(err, QV_EINVAL,
                          "row %zu has zero (or non-finite) norm and cannot be normalised for the "
                          "cosine metric",
                          i);
    /* In double: the inverse norm of a row of tiny (denormal) components overflows float. */
    const double inv = 1.0 / sqrt(s);
    for (size_t j = 0; j < d; j++)
      r[j] = (float)((double)r[j] * inv);
  }
  return QV_OK;
}

qv_status qv_check_vectors(const float *x, size_t n, size_t d, int nonzero, const char *what,
                           qv_error *err) {
  for (size_t i = 0; i < n; i++) {
    const float *r = x + i * d;
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
      if (!isfinite(r[j]))
        return qv_error_set(err, QV_EINVAL, "%s %zu: component %zu is NaN or infinite", what, i, j);
      s += (double)r[j] * r[j];
    }
    if (s > QV_MAX_SQNORM)
      return qv_error_set(err, QV_EINVAL,
                          "%s %zu: squared norm %.3g is too large (at most %.3g, so that distances "
                          "stay finite in float): scale the vectors down",
                          what, i, s, QV_MAX_SQNORM);
    if (nonzero && !(s > 0.0))
      return qv_error_set(err, QV_EINVAL,
                          "%s %zu is the zero vector: it has no direction for the cosine metric",
                          what, i);
  }
  return QV_OK;
}

int64_t qv_find_nonfinite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return (int64_t)i;
  return -1;
}
