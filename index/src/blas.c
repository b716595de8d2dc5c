/* FAISS's BLAS threads: few while only searches run, every core while a build or a replace (an
 * import's recall check) runs. OpenBLAS is found at run time (dlsym), so a FAISS linked against
 * another BLAS simply keeps that BLAS's own policy. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <stdatomic.h>

#include "internal.h"

static void (*g_blas_set)(int);
static int g_blas_search = 1;
static atomic_int g_blas_builds;

void qv_blas_threads_init(int searching) {
  g_blas_set = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  g_blas_search = searching > 0 ? searching : 1;
  if (g_blas_set != NULL)
    g_blas_set(g_blas_search);
}

/* A build or import starts (+1) or ends (-1): BLAS may use every core while one runs. */
void qv__blas_build(int delta) {
  if (g_blas_set == NULL)
    return;
  int before = atomic_fetch_add(&g_blas_builds, delta);
  if (delta > 0 && before == 0)
    g_blas_set(omp_get_num_procs());
  else if (delta < 0 && before == 1)
    g_blas_set(g_blas_search);
}
