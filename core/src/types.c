#include <string.h>
#include <strings.h>

#include "quiver/rerank_params.h"
#include "quiver/types.h"

const char *qv_metric_name(qv_metric m) {
  switch (m) {
  case QV_METRIC_L2:
    return "l2";
  case QV_METRIC_IP:
    return "ip";
  case QV_METRIC_COSINE:
    return "cosine";
  }
  return "unknown";
}

qv_status qv_metric_parse(const char *s, qv_metric *out, qv_error *err) {
  if (s == NULL || out == NULL)
    return qv_error_set(err, QV_EINVAL, "metric: missing value (use l2, ip or cosine)");
  if (!strcasecmp(s, "l2") || !strcasecmp(s, "l2sqr") || !strcasecmp(s, "euclidean")) {
    *out = QV_METRIC_L2;
  } else if (!strcasecmp(s, "ip") || !strcasecmp(s, "dot") || !strcasecmp(s, "inner_product")) {
    *out = QV_METRIC_IP;
  } else if (!strcasecmp(s, "cosine") || !strcasecmp(s, "cos")) {
    *out = QV_METRIC_COSINE;
  } else {
    return qv_error_set(err, QV_EINVAL, "unknown metric '%s' (use l2, ip or cosine)", s);
  }
  return QV_OK;
}

const char *qv_device_name(qv_device d) {
  switch (d) {
  case QV_DEVICE_AUTO:
    return "auto";
  case QV_DEVICE_CPU:
    return "cpu";
  case QV_DEVICE_GPU:
    return "gpu";
  }
  return NULL;
}

qv_status qv_device_parse(const char *s, qv_device *out, qv_error *err) {
  for (int d = QV_DEVICE_AUTO; d <= QV_DEVICE_GPU; d++)
    if (s != NULL && strcmp(s, qv_device_name((qv_device)d)) == 0) {
      *out = (qv_device)d;
      return QV_OK;
    }
  return qv_error_set(err, QV_EINVAL, "device '%.40s' is not one of auto, cpu, gpu",
                      s ? s : "(null)");
}

void qv_rerank_params_init(qv_rerank_params *p) {
  memset(p, 0, sizeof *p);
  p->k = 10;
  p->refine = 1;
}
