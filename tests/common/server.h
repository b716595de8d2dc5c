// Test helpers for the tests that run the real quiverd (tests/server, tests/fault): the process
// on an ephemeral loopback port with a temporary data dir, a client, collections made through
// the client, raw gRPC calls, and a fixture with sift5k loaded. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/testdata.h"
#include "quiver/client.h"

namespace qvtest {

class Quiverd {
public:
  pid_t pid = -1;
  int port = 0;
  std::string data_dir, log_path;

  // Starts quiverd; returns false (with a gtest failure) when it does not come up.
  bool start(const std::string &dir, const std::vector<std::string> &extra = {}) {
    if (pid > 0) { // one server per fixture object: stop() it first
      ADD_FAILURE() << "quiverd is already running (pid " << pid << ")";
      return false;
    }
    data_dir = dir;
    std::string port_file = dir + ".port";
    log_path = dir + ".log";
    unlink(port_file.c_str());
    std::vector<std::string> args = {std::string(QUIVER_BIN_DIR) + "/quiverd",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--data-dir",
                                     dir,
                                     "--port-file",
                                     port_file,
                                     "--log-level",
                                     "debug"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = spawn(args, log_path);
    for (int i = 0; i < 300; i++) { // up to 30 s
      std::ifstream pf(port_file);
      if (pf >> port && port > 0)
        return true;
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        ADD_FAILURE() << "quiverd exited early; log:\n" << log();
        pid = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "quiverd did not come up; log:\n" << log();
    return false;
  }

  std::string target() const {
    return "127.0.0.1:" + std::to_string(port);
  }

  std::string log() const {
    std::ifstream f(log_path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }

  // Sends `sig` (0: none, only wait) and waits; returns the exit code (-1 on a signal death or
  // timeout).
  int stop(int sig = SIGTERM, double *seconds = nullptr) {
    if (pid <= 0)
      return -1;
    auto t0 = std::chrono::steady_clock::now();
    kill(pid, sig);
    int st = 0;
    for (int i = 0; i < 300; i++) {
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        if (seconds)
          *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (WIFSIGNALED(st) && sig != SIGKILL) // quiverd handles the rest: a crash
          ADD_FAILURE() << "quiverd died by signal " << WTERMSIG(st) << "; log:\n" << log();
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    pid = -1;
    return -1;
  }

  ~Quiverd() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      int st;
      waitpid(pid, &st, 0);
    }
  }
};

struct Client {
  qv_client *c = nullptr;
  // Five minutes per call by default: a build or a large upsert on a 2-core machine shared with
  // other work (CI beside a build, a CPU hog) may take far longer than on a quiet one, and a
  // test must not fail for that. Tests that want a short deadline pass theirs.
  explicit Client(const std::string &target, int64_t timeout_ms = 300000) {
    qv_client_opts o;
    qv_client_opts_init(&o);
    o.target = target.c_str();
    o.timeout_ms = timeout_ms;
    qv_error e{};
    EXPECT_EQ(qv_client_connect(&c, &o, &e), QV_OK) << e.msg;
  }
  ~Client() {
    qv_client_close(c);
  }
};

// Creates `name` through the API: dim, metric, spec (nullptr: Flat) and default nprobe (0: the
// server's); *info (may be nullptr) gets the answer.
inline void create(qv_client *c, const char *name, uint32_t dim, qv_metric m, const char *spec,
                   uint32_t nprobe = 0, qv_collection_info *info = nullptr) {
  qv_create_opts o{};
  o.name = name;
  o.dim = dim;
  o.metric = m;
  o.index_spec = spec;
  o.default_nprobe = nprobe;
  qv_error e{};
  ASSERT_EQ(qv_client_create(c, &o, info, &e), QV_OK) << e.msg;
}

// Upserts every row of base with ids id0, id0+1, ... in chunks of about chunk_bytes (0: the
// client's default); *count (may be nullptr) gets the collection's size afterwards.
inline void upsert_all(qv_client *c, const char *name, const Matrix &base, int64_t id0 = 0,
                       size_t chunk_bytes = 0, uint64_t *count = nullptr) {
  std::vector<int64_t> ids = seq_ids(base.rows, id0);
  qv_error e{};
  ASSERT_EQ(qv_client_upsert(c, name, base.rows, base.cols, ids.data(), base.f.data(), chunk_bytes,
                             nullptr, nullptr, count, &e),
            QV_OK)
      << e.msg;
}

// create, upsert_all and a build: `name` holds every row of base (ids 0..), built.
inline void load_built(qv_client *c, const char *name, const Matrix &base, const char *spec) {
  create(c, name, uint32_t(base.cols), QV_METRIC_L2, spec);
  if (!::testing::Test::HasFatalFailure())
    upsert_all(c, name, base);
  if (::testing::Test::HasFatalFailure())
    return;
  qv_error e{};
  ASSERT_EQ(qv_client_build(c, name, 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
}

// gRPC's C core initialised for the object's life (raw_call needs it; the client library
// initialises it itself).
struct GrpcScope {
  GrpcScope() {
    grpc_init();
  }
  ~GrpcScope() {
    grpc_shutdown();
  }
  GrpcScope(const GrpcScope &) = delete;
  GrpcScope &operator=(const GrpcScope &) = delete;
};

// One raw call carrying one message of arbitrary bytes (what a well-behaved client never
// sends); returns the status and fills details (and *answer, when given, with the first answer's
// bytes).
inline grpc_status_code raw_call(const std::string &target, const char *method,
                                 const std::string &body, std::string *details,
                                 std::string *answer = nullptr) {
  grpc_channel_credentials *cr = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target.c_str(), cr, nullptr);
  grpc_channel_credentials_release(cr);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(nullptr);
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(10, GPR_TIMESPAN));
  grpc_call *call =
      grpc_channel_create_call(ch, nullptr, GRPC_PROPAGATE_DEFAULTS, cq,
                               grpc_slice_from_static_string(method), nullptr, dl, nullptr);
  grpc_slice s = grpc_slice_from_copied_buffer(body.data(), body.size());
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_metadata_array im, tm;
  grpc_metadata_array_init(&im);
  grpc_metadata_array_init(&tm);
  grpc_byte_buffer *recv = nullptr;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice det = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tm;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &det;
  EXPECT_EQ(grpc_call_start_batch(call, ops, 6, ops, nullptr), GRPC_CALL_OK);
  grpc_completion_queue_pluck(cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr);
  char *d = grpc_slice_to_c_string(det);
  *details = d;
  gpr_free(d);
  grpc_slice_unref(det);
  if (answer != nullptr)
    answer->clear();
  if (recv != nullptr && answer != nullptr) {
    grpc_byte_buffer_reader rd;
    if (grpc_byte_buffer_reader_init(&rd, recv)) {
      grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
      answer->assign(reinterpret_cast<const char *>(GRPC_SLICE_START_PTR(all)),
                     GRPC_SLICE_LENGTH(all));
      grpc_slice_unref(all);
      grpc_byte_buffer_reader_destroy(&rd);
    }
  }
  if (recv)
    grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(bb);
  grpc_metadata_array_destroy(&im);
  grpc_metadata_array_destroy(&tm);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(ch);
  return status;
}

// A test against quiverd (srv, not started) in a temporary directory, with sift5k's base vectors
// and queries loaded; skipped without the data set.
class Sift5kServerTest : public ::testing::Test {
protected:
  TempDir tmp;
  Quiverd srv;
  Matrix base, q;
  void SetUp() override {
    QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
    base = load_f32("sift5k/sift5k_base.fvecs");
    q = load_f32("sift5k/sift5k_query.fvecs");
  }
};

} // namespace qvtest
