/* quiver/gpu.h over FAISS's GPU C API: one context and one worker thread per device.
 *
 * Every FAISS call on a device's resources or indexes runs on that device's worker, so FAISS GPU
 * objects (not safe for concurrent use) only ever see one thread. Callers hand the worker a job
 * and wait for it; the queue is where cross-request batching can later coalesce searches. FAISS's
 * last-error text is thread-local, so jobs copy it into their own qv_error on the worker. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/gpu/DeviceUtils_c.h>
#include <faiss/c_api/gpu/GpuAutoTune_c.h>
#include <faiss/c_api/gpu/GpuClonerOptions_c.h>
#include <faiss/c_api/gpu/StandardGpuResources_c.h>

#include "gpu.h"
#include "internal.h"
#include "quiver/kernels.h"

typedef struct job job;
typedef void (*job_fn)(job *);

struct job {
  job_fn fn;
  struct dev *dv;
  job *next;
  int done;
  qv_status st;
  qv_error err;
  /* arguments */
  const FaissIndex *cpu;
  FaissIndex *index;
  size_t n, k;
  uint32_t nprobe;
  const float *x;
  const int64_t *ids;
  float *scores;
  int64_t *out_ids;
};

typedef struct dev {
  int id;
  FaissStandardGpuResources *res;
  FaissParameterSpace *ps; /* a GpuParameterSpace: sets nprobe on GPU IVF indexes */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  job *head, *tail;
  int stop;
  size_t total, budget, used; /* used: under g_mu */
  int copies;
} dev;

struct qv__gpu_index {
  dev *dv;
  FaissIndex *index;
  size_t bytes;
  int is_ivf;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static dev *g_devs;
static int g_ndev;
static int g_fallback = 1;

int qv_gpu_compiled(void) {
  return 1;
}

static qv_status faiss_fail_here(qv_error *err, qv_status code, const char *what, int dev_id) {
  const char *m = faiss_get_last_error();
  return qv_error_set(err, code, "GPU %d: %s: %s", dev_id, what, m ? m : "FAISS error");
}

static void *worker(void *arg) {
  dev *dv = arg;
  pthread_mutex_lock(&dv->mu);
  for (;;) {
    while (dv->head == NULL && !dv->stop)
      pthread_cond_wait(&dv->work_cv, &dv->mu);
    if (dv->head == NULL)
      break;
    job *j = dv->head;
    dv->head = j->next;
    if (dv->head == NULL)
      dv->tail = NULL;
    pthread_mutex_unlock(&dv->mu);
    j->fn(j);
    pthread_mutex_lock(&dv->mu);
    j->done = 1;
    pthread_cond_broadcast(&dv->done_cv);
  }
  pthread_mutex_unlock(&dv->mu);
  return NULL;
}

/* Runs j on dv's worker and waits for it. */
static qv_status run(dev *dv, job *j, qv_error *err) {
  j->dv = dv;
  j->done = 0;
  j->next = NULL;
  j->st = QV_OK;
  memset(&j->err, 0, sizeof j->err);
  pthread_mutex_lock(&dv->mu);
  if (dv->tail)
    dv->tail->next = j;
  else
    dv->head = j;
  dv->tail = j;
  pthread_cond_signal(&dv->work_cv);
  while (!j->done)
    pthread_cond_wait(&dv->done_cv, &dv->mu);
  pthread_mutex_unlock(&dv->mu);
  if (j->st != QV_OK && err != NULL)
    *err = j->err;
  return j->st;
}

static void job_init_resources(job *j) {
  dev *dv = j->dv;
  if (faiss_StandardGpuResources_new(&dv->res) != 0) {
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "creating GPU resources", dv->id);
    return;
  }
  if (j->n > 0 && faiss_StandardGpuResources_setTempMemory(dv->res, j->n) != 0) {
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "setting scratch memory", dv->id);
    return;
  }
  if (faiss_GpuParameterSpace_new(&dv->ps) != 0)
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "creating a GPU parameter space", dv->id);
}

static void job_free_resources(job *j) {
  if (j->dv->ps)
    faiss_ParameterSpace_free(j->dv->ps);
  if (j->dv->res)
    faiss_StandardGpuResources_free(j->dv->res);
  j->dv->ps = NULL;
  j->dv->res = NULL;
}

static void stop_devices(int n) {
  for (int i = 0; i < n; i++) {
    dev *dv = &g_devs[i];
    job j = {.fn = job_free_resources};
    run(dv, &j, NULL);
    pthread_mutex_lock(&dv->mu);
    dv->stop = 1;
    pthread_cond_signal(&dv->work_cv);
    pthread_mutex_unlock(&dv->mu);
    pthread_join(dv->thread, NULL);
    pthread_mutex_destroy(&dv->mu);
    pthread_cond_destroy(&dv->work_cv);
    pthread_cond_destroy(&dv->done_cv);
  }
}

qv_status qv_gpu_init(const qv_gpu_opts *o, qv_error *err) {
  qv_gpu_opts def;
  if (o == NULL) {
    qv_gpu_opts_init(&def);
    o = &def;
  }
  g_fallback = o->fallback_cpu;
  if (g_ndev > 0)
    return QV_OK; /* already initialised */
  /* Ask CUDA first: FAISS aborts the process when the driver is missing rather than reporting
   * 0 devices, and a GPU build must still run (on the CPU) on a machine without one. */
  int n = 0;
  if (qv_cuda_device_count() <= 0 || faiss_get_num_gpus(&n) != 0 || n <= 0)
    return QV_OK; /* no device: everything on the CPU */
  dev *devs = calloc((size_t)n, sizeof *devs);
  if (devs == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory for %d GPU contexts", n);
  g_devs = devs;
  int started = 0;
  qv_status st = QV_OK;
  for (int i = 0; i < n && st == QV_OK; i++) {
    dev *dv = &devs[i];
    dv->id = i;
    size_t free_b = 0, total_b = 0;
    if ((st = qv_cuda_mem_info(i, &free_b, &total_b, err)) != QV_OK)
      break;
    dv->total = total_b;
    dv->budget = o->budget_bytes ? o->budget_bytes : free_b / 10 * 8;
    pthread_mutex_init(&dv->mu, NULL);
    pthread_cond_init(&dv->work_cv, NULL);
    pthread_cond_init(&dv->done_cv, NULL);
    if (pthread_create(&dv->thread, NULL, worker, dv) != 0) {
      pthread_mutex_destroy(&dv->mu);
      pthread_cond_destroy(&dv->work_cv);
      pthread_cond_destroy(&dv->done_cv);
      st = qv_error_set(err, QV_ENOMEM, "cannot start the worker of GPU %d", i);
      break;
    }
    started++;
    job j = {.fn = job_init_resources, .n = o->temp_bytes};
    st = run(dv, &j, err);
  }
  if (st != QV_OK) {
    stop_devices(started);
    free(devs);
    g_devs = NULL;
    return st;
  }
  g_ndev = n;
  return QV_OK;
}

void qv_gpu_shutdown(void) {
  g_fallback = 1;
  int live = 0;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_ndev; i++)
    live += g_devs[i].copies;
  pthread_mutex_unlock(&g_mu);
  if (live > 0)
    return; /* a collection still holds a copy: keep the devices (closing it frees the copy) */
  stop_devices(g_ndev);
  free(g_devs);
  g_devs = NULL;
  g_ndev = 0;
}

int qv_gpu_devices(void) {
  return g_ndev;
}

int qv_gpu_fallback_cpu(void) {
  return g_fallback;
}

qv_status qv_gpu_info_get(int i, qv_gpu_info *out, qv_error *err) {
  if (i < 0 || i >= g_ndev || out == NULL)
    return qv_error_set(err, QV_EINVAL, "no GPU %d (%d initialised)", i, g_ndev);
  pthread_mutex_lock(&g_mu);
  out->device = i;
  out->total_bytes = g_devs[i].total;
  out->budget_bytes = g_devs[i].budget;
  out->used_bytes = g_devs[i].used;
  out->collections = g_devs[i].copies;
  pthread_mutex_unlock(&g_mu);
  return QV_OK;
}

static void job_copy(job *j) {
  FaissGpuClonerOptions *co = NULL;
  if (faiss_GpuClonerOptions_new(&co) != 0) {
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "cloner options", j->dv->id);
    return;
  }
  /* Full precision on the GPU: the same answers as the CPU index (no float16 lists/lookups). */
  faiss_GpuClonerOptions_set_useFloat16(co, 0);
  faiss_GpuClonerOptions_set_useFloat16CoarseQuantizer(co, 0);
  if (faiss_index_cpu_to_gpu_with_options(j->dv->res, j->dv->id, j->cpu, co, &j->index) != 0)
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "copying the index to the GPU", j->dv->id);
  faiss_GpuClonerOptions_free(co);
}

qv_status qv__gpu_copy(const FaissIndex *cpu, size_t need_bytes, const qv__gpu_index *replacing,
                       qv__gpu_index **out, qv_error *err) {
  *out = NULL;
  if (g_ndev == 0)
    return qv_error_set(err, QV_EUNAVAILABLE, "no GPU is present");
  /* Reserve the budget on the device with the most room (a copy being replaced gives its own
   * back: both live on the device for a moment, within the headroom left outside the budget). */
  pthread_mutex_lock(&g_mu);
  int best = -1;
  size_t room = 0;
  for (int i = 0; i < g_ndev; i++) {
    size_t r = g_devs[i].budget > g_devs[i].used ? g_devs[i].budget - g_devs[i].used : 0;
    if (replacing != NULL && replacing->dv == &g_devs[i])
      r += replacing->bytes;
    if (best < 0 || r > room) {
      best = i;
      room = r;
    }
  }
  if (room < need_bytes) {
    pthread_mutex_unlock(&g_mu);
    return qv_error_set(err, QV_ENOMEM,
                        "the index needs ~%zu MiB of GPU memory; the most any GPU has left in its "
                        "budget is %zu MiB (raise --gpu-memory-mb or use a smaller index)",
                        need_bytes >> 20, room >> 20);
  }
  g_devs[best].used += need_bytes;
  g_devs[best].copies++;
  pthread_mutex_unlock(&g_mu);

  qv__gpu_index *g = calloc(1, sizeof *g);
  job j = {.fn = job_copy, .cpu = cpu};
  qv_status st = g ? run(&g_devs[best], &j, err)
                   : qv_error_set(err, QV_ENOMEM, "out of memory for a GPU index handle");
  if (st != QV_OK) {
    free(g);
    pthread_mutex_lock(&g_mu);
    g_devs[best].used -= need_bytes;
    g_devs[best].copies--;
    pthread_mutex_unlock(&g_mu);
    return st;
  }
  g->dv = &g_devs[best];
  g->index = j.index;
  g->bytes = need_bytes;
  g->is_ivf = faiss_IndexIVF_cast((FaissIndex *)cpu) != NULL;
  *out = g;
  return QV_OK;
}

static void job_free_index(job *j) {
  faiss_Index_free(j->index);
}

void qv__gpu_free(qv__gpu_index *g) {
  if (g == NULL)
    return;
  job j = {.fn = job_free_index, .index = g->index};
  run(g->dv, &j, NULL);
  pthread_mutex_lock(&g_mu);
  g->dv->used -= g->bytes;
  g->dv->copies--;
  pthread_mutex_unlock(&g_mu);
  free(g);
}

static void job_add(job *j) {
  if (faiss_Index_add_with_ids(j->index, (idx_t)j->n, j->x, j->ids) != 0)
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "adding vectors", j->dv->id);
}

qv_status qv__gpu_add(qv__gpu_index *g, size_t n, const float *x, const int64_t *ids,
                      qv_error *err) {
  if (n == 0)
    return QV_OK;
  job j = {.fn = job_add, .index = g->index, .n = n, .x = x, .ids = ids};
  return run(g->dv, &j, err);
}

static void job_search(job *j) {
  /* Safe to set per call: only this worker ever touches the index. */
  if (j->nprobe > 0 &&
      faiss_ParameterSpace_set_index_parameter(j->dv->ps, j->index, "nprobe", j->nprobe) != 0) {
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "setting nprobe", j->dv->id);
    return;
  }
  if (faiss_Index_search(j->index, (idx_t)j->n, j->x, (idx_t)j->k, j->scores, j->out_ids) != 0)
    j->st = faiss_fail_here(&j->err, QV_EINTERNAL, "search", j->dv->id);
}

qv_status qv__gpu_search(qv__gpu_index *g, const float *q, size_t n, size_t k, uint32_t nprobe,
                         float *scores, int64_t *ids, qv_error *err) {
  if (k > QV__GPU_MAX_K || nprobe > QV__GPU_MAX_K)
    return qv_error_set(err, QV_EINVAL, "GPU search: k %zu / nprobe %u above %d", k, nprobe,
                        QV__GPU_MAX_K);
  job j = {.fn = job_search,
           .index = g->index,
           .n = n,
           .k = k,
           .nprobe = g->is_ivf ? nprobe : 0,
           .x = q,
           .scores = scores,
           .out_ids = ids};
  return run(g->dv, &j, err);
}

int qv__gpu_device_of(const qv__gpu_index *g) {
  return g ? g->dv->id : -1;
}

size_t qv__gpu_bytes_of(const qv__gpu_index *g) {
  return g ? g->bytes : 0;
}
