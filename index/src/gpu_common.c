/* The parts of quiver/gpu.h that do not depend on the FAISS build. */
#include <string.h>

#include "quiver/gpu.h"

void qv_gpu_opts_init(qv_gpu_opts *o) {
  memset(o, 0, sizeof *o);
  o->fallback_cpu = 1;
}
