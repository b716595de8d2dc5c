// Operations through the real quiverd: /metrics is valid Prometheus text whose counters move
// after a search; bearer tokens (read/admin) give UNAUTHENTICATED and PERMISSION_DENIED; TLS and
// mutual TLS answer TLS clients and refuse plaintext ones (certificates made by openssl here);
// JSON and logfmt logs are one record per line; the slow query log fires; no token is logged.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/server.h"

using qvtest::Client;
using qvtest::http_get;
using qvtest::Matrix;
using qvtest::metrics_port;
using qvtest::parse_metrics;
using qvtest::Quiverd;
using qvtest::scrape;
using qvtest::TempDir;

namespace {

int run(const std::string &cmd) {
  return qvtest::run_command(cmd).code;
}

std::string file_text(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class Ops : public ::testing::Test {
protected:
  TempDir tmp;
  Quiverd srv;
  Matrix q;
  void SetUp() override {
    QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
    q = qvtest::load_f32("sift5k/sift5k_query.fvecs");
  }
  std::vector<std::string> demo() const {
    return {"--demo", "--demo-data", qvtest::data_path("sift5k/sift5k")};
  }
};

} // namespace

TEST_F(Ops, MetricsAreValidPrometheusTextAndCountersMoveAfterASearch) {
  auto flags = demo();
  flags.insert(flags.end(), {"--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  const int port = metrics_port(srv);
  ASSERT_GT(port, 0) << srv.log();
  auto before = scrape(port);
  ASSERT_FALSE(before.empty());
  const std::string ok = "quiver_requests_total{method=\"Search\",code=\"OK\"}";
  EXPECT_EQ(before[ok], 0);
  EXPECT_EQ(before["quiver_collection_vectors{collection=\"demo\"}"], 5000);
  // Every row of the collector's table has its series for the collection.
  EXPECT_GE(before["quiver_collection_vector_bytes{collection=\"demo\"}"], 5000.0 * 128 * 4);
  EXPECT_GT(before["quiver_collection_index_bytes{collection=\"demo\",device=\"cpu\"}"], 0);
  for (const char *series :
       {"quiver_collection_tombstones", "quiver_wal_bytes", "quiver_wal_records",
        "quiver_batch_expired_total", "quiver_collection_attribute_bytes",
        "quiver_filter_overfetch_retries_total"})
    EXPECT_EQ(before.count(std::string(series) + "{collection=\"demo\"}"), 1u) << series;
  for (const char *path : {"exact", "index"})
    EXPECT_EQ(
        before.count(std::string("quiver_filtered_queries_total{collection=\"demo\",path=\"") +
                     path + "\"}"),
        1u)
        << path;
  EXPECT_GT(before["process_resident_memory_bytes"], 1e6);
  EXPECT_GT(before["process_open_fds"], 3);
  Client cl(srv.target());
  std::vector<float> sc(7 * 10);
  std::vector<int64_t> ids(7 * 10);
  qv_error e{};
  ASSERT_EQ(qv_client_search(cl.c, "demo", q.f.data(), 7, 128, 10, 8, 0, sc.data(), ids.data(), &e),
            QV_OK);
  EXPECT_EQ(qv_client_search(cl.c, "nope", q.f.data(), 1, 128, 10, 8, 0, sc.data(), ids.data(), &e),
            QV_ENOTFOUND);
  auto after = scrape(port);
  EXPECT_EQ(after[ok], 1);
  EXPECT_EQ(after["quiver_requests_total{method=\"Search\",code=\"NOT_FOUND\"}"], 1);
  EXPECT_EQ(after["quiver_queries_total"] - before["quiver_queries_total"], 7);
  EXPECT_EQ(after["quiver_request_duration_seconds_count{method=\"Search\"}"], 2);
  // Histograms: cumulative buckets, +Inf equal to the count.
  double prev = 0;
  for (const char *le : {"0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"}) {
    double v = after[std::string("quiver_request_duration_seconds_bucket{method=\"Search\",le=\"") +
                     le + "\"}"];
    EXPECT_GE(v, prev) << le;
    prev = v;
  }
  EXPECT_EQ(prev, 2);
  EXPECT_EQ(after["quiver_batch_queries_count{collection=\"demo\"}"], 1);
  EXPECT_EQ(after["quiver_batch_queries_sum{collection=\"demo\"}"], 7);
  EXPECT_EQ(after["quiver_builds_total{kind=\"build\",outcome=\"ok\"}"],
            0); // the demo is built at start
  EXPECT_EQ(http_get(port, "/other").substr(0, 3), "404");
}

TEST_F(Ops, BearerTokensGateCallsByRoleAndHealthStaysOpen) {
  const std::string read_tok = "r3ad-7f0c2a9e51b84d6c", admin_tok = "adm1n-0e7d9a5c3b1f4862";
  const std::string tokens = tmp.sub("tokens.txt");
  {
    std::ofstream f(tokens);
    f << "# role token\nread " << read_tok << "\n\nadmin " << admin_tok << "\n";
  }
  auto flags = demo();
  flags.insert(flags.end(), {"--auth-tokens", tokens, "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  auto client = [&](const char *token) {
    qv_client_opts o;
    qv_client_opts_init(&o);
    std::string target = srv.target();
    o.target = target.c_str();
    o.token = token;
    qv_client *c = nullptr;
    qv_error e{};
    EXPECT_EQ(qv_client_connect(&c, &o, &e), QV_OK) << e.msg;
    return c;
  };
  std::vector<float> sc(10);
  std::vector<int64_t> ids(10);
  qv_error e{};
  qv_client *none = client(nullptr), *wrong = client("not-a-token-at-all-00"),
            *reader = client(read_tok.c_str()), *admin = client(admin_tok.c_str());
  EXPECT_EQ(qv_client_search(none, "demo", q.f.data(), 1, 128, 10, 8, 0, sc.data(), ids.data(), &e),
            QV_EUNAUTHENTICATED);
  EXPECT_NE(std::string(e.msg).find("UNAUTHENTICATED"), std::string::npos) << e.msg;
  EXPECT_EQ(
      qv_client_search(wrong, "demo", q.f.data(), 1, 128, 10, 8, 0, sc.data(), ids.data(), &e),
      QV_EUNAUTHENTICATED);
  EXPECT_EQ(
      qv_client_search(reader, "demo", q.f.data(), 1, 128, 10, 8, 0, sc.data(), ids.data(), &e),
      QV_OK)
      << e.msg;
  qv_collection_info info;
  EXPECT_EQ(qv_client_describe(reader, "demo", &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(qv_client_build(reader, "demo", 0, nullptr, nullptr, nullptr, &e), QV_EPERMISSION);
  EXPECT_NE(std::string(e.msg).find("PERMISSION_DENIED"), std::string::npos) << e.msg;
  EXPECT_EQ(qv_client_drop(reader, "demo", &e), QV_EPERMISSION);
  EXPECT_EQ(qv_client_build(admin, "demo", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  int serving = 0;
  EXPECT_EQ(qv_client_health(none, "", &serving, &e), QV_OK) << e.msg;
  EXPECT_EQ(serving, 1);
  for (qv_client *c : {none, wrong, reader, admin})
    qv_client_close(c);
  // The CLI takes --token and $QUIVER_TOKEN.
  const std::string quiver = std::string(QUIVER_BIN_DIR) + "/quiver --server " + srv.target();
  EXPECT_NE(run(quiver + " list"), 0);
  EXPECT_EQ(run(quiver + " --token " + read_tok + " list"), 0);
  EXPECT_EQ(run("QUIVER_TOKEN=" + read_tok + " " + quiver + " describe demo"), 0);
  auto m = scrape(metrics_port(srv));
  EXPECT_EQ(m["quiver_requests_total{method=\"Search\",code=\"UNAUTHENTICATED\"}"], 2);
  EXPECT_EQ(m["quiver_requests_total{method=\"BuildIndex\",code=\"PERMISSION_DENIED\"}"], 1);
  ASSERT_EQ(srv.stop(SIGTERM), 0);
  EXPECT_EQ(srv.log().find(read_tok), std::string::npos) << "a token reached the log";
  EXPECT_EQ(srv.log().find(admin_tok), std::string::npos) << "a token reached the log";
  // A broken token file stops the start with the line to fix.
  {
    std::ofstream f(tokens, std::ios::trunc);
    f << "read " << read_tok << "\nwriter " << admin_tok << "\n";
  }
  Quiverd bad;
  qvtest::CmdResult r = qvtest::run_command(std::string(QUIVER_BIN_DIR) +
                                            "/quiverd --listen 127.0.0.1:0 --data-dir " +
                                            tmp.sub("bad") + " --auth-tokens " + tokens);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("line 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(admin_tok), std::string::npos) << r.out;
}

namespace {

// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made by openssl.
struct Pki {
  std::string dir, ca, ca_key, srv_cert, srv_key, cli_cert, cli_key, other_ca;
  bool ok = false;
  explicit Pki(const std::string &d) : dir(d) {
    ca = d + "/ca.pem";
    ca_key = d + "/ca.key";
    srv_cert = d + "/server.pem";
    srv_key = d + "/server.key";
    cli_cert = d + "/client.pem";
    cli_key = d + "/client.key";
    other_ca = d + "/other-ca.pem";
    std::string q = " 2>&1";
    std::string ext = d + "/san.ext";
    {
      std::ofstream f(ext);
      f << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    }
    ok = run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=quiver-test-ca -keyout " +
             ca_key + " -out " + ca + q) == 0 &&
         run("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout " + srv_key +
             " -out " + d + "/server.csr" + q) == 0 &&
         run("openssl x509 -req -in " + d + "/server.csr -CA " + ca + " -CAkey " + ca_key +
             " -CAcreateserial -days 2 -extfile " + ext + " -out " + srv_cert + q) == 0 &&
         run("openssl req -newkey rsa:2048 -nodes -subj /CN=quiver-client -keyout " + cli_key +
             " -out " + d + "/client.csr" + q) == 0 &&
         run("openssl x509 -req -in " + d + "/client.csr -CA " + ca + " -CAkey " + ca_key +
             " -CAcreateserial -days 2 -out " + cli_cert + q) == 0 &&
         run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=another-ca -keyout " + d +
             "/other-ca.key -out " + other_ca + q) == 0;
  }
};

qv_status health(const std::string &target, const char *ca, const char *cert, const char *key,
                 qv_error *e) {
  qv_client_opts o;
  qv_client_opts_init(&o);
  o.target = target.c_str();
  o.timeout_ms = 5000;
  o.tls_ca = ca;
  o.tls_cert = cert;
  o.tls_key = key;
  qv_client *c = nullptr;
  qv_status st = qv_client_connect(&c, &o, e);
  if (st != QV_OK)
    return st;
  int serving = 0;
  st = qv_client_health(c, "", &serving, e);
  qv_client_close(c);
  return st == QV_OK && !serving ? QV_EUNAVAILABLE : st;
}

} // namespace

TEST_F(Ops, TlsAnswersTlsClientsAndRefusesPlaintext) {
  std::filesystem::create_directories(tmp.sub("pki"));
  Pki pki(tmp.sub("pki"));
  ASSERT_TRUE(pki.ok) << "openssl could not make the test certificates";
  auto flags = demo();
  flags.insert(flags.end(), {"--tls-cert", pki.srv_cert, "--tls-key", pki.srv_key});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  // The certificate's IP name: a minimal machine without /etc/hosts cannot resolve localhost
  // (gRPC's c-ares resolver then fails), and the tests must pass there too.
  const std::string target = "127.0.0.1:" + std::to_string(srv.port);
  qv_error e{};
  EXPECT_EQ(health(target, pki.ca.c_str(), nullptr, nullptr, &e), QV_OK) << e.msg;
  EXPECT_NE(health(target, nullptr, nullptr, nullptr, &e), QV_OK) << "plaintext was answered";
  EXPECT_NE(health(target, pki.other_ca.c_str(), nullptr, nullptr, &e), QV_OK)
      << "a client that does not trust the server's CA connected";
  // A search over TLS, through the CLI's --tls-ca.
  const std::string quiver = std::string(QUIVER_BIN_DIR) + "/quiver --server " + target;
  EXPECT_EQ(run(quiver + " --tls-ca " + pki.ca + " search demo --queries " +
                qvtest::data_path("sift5k/sift5k_query.fvecs") + " --k 5 >/dev/null"),
            0);
  EXPECT_NE(run(quiver + " health >/dev/null 2>&1"), 0);
  ASSERT_EQ(srv.stop(SIGTERM), 0);
  // Mutual TLS: a client without a certificate from the client CA is refused.
  flags.insert(flags.end(), {"--tls-client-ca", pki.ca});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  const std::string target2 = "127.0.0.1:" + std::to_string(srv.port);
  EXPECT_EQ(health(target2, pki.ca.c_str(), pki.cli_cert.c_str(), pki.cli_key.c_str(), &e), QV_OK)
      << e.msg;
  EXPECT_NE(health(target2, pki.ca.c_str(), nullptr, nullptr, &e), QV_OK)
      << "a client without a certificate passed mutual TLS";
  EXPECT_EQ(health(target2, pki.ca.c_str(), pki.cli_cert.c_str(), nullptr, &e), QV_EINVAL);
}

TEST_F(Ops, StructuredLogsAreOneRecordPerLineAndSlowQueriesAreLogged) {
  for (const char *fmt : {"json", "logfmt"}) {
    SCOPED_TRACE(fmt);
    Quiverd s;
    auto flags = demo();
    flags.insert(flags.end(), {"--log-format", fmt, "--slow-query-ms", "1"});
    ASSERT_TRUE(s.start(tmp.sub(std::string("data-") + fmt), flags));
    {
      Client cl(s.target());
      std::vector<float> sc(100 * 10);
      std::vector<int64_t> ids(100 * 10);
      qv_error e{};
      // 100 queries probing every list: several ms on any machine.
      ASSERT_EQ(qv_client_search(cl.c, "demo", q.f.data(), 100, 128, 10, 64, 1, sc.data(),
                                 ids.data(), &e),
                QV_OK);
      qv_collection_info info;
      EXPECT_EQ(qv_client_describe(cl.c, "nope", &info, &e), QV_ENOTFOUND);
    }
    ASSERT_EQ(s.stop(SIGTERM), 0);
    std::istringstream in(s.log());
    std::string line;
    size_t lines = 0, slow = 0;
    std::regex json(
        R"re(^\{"time": "[0-9T:.Z-]+", "level": "(debug|info|warn|error)", "msg": ".*"(, "[a-z_0-9]+": "[^"]*")*\}$)re");
    std::regex logfmt(
        R"re(^time=[0-9T:.Z-]+ level=(debug|info|warn|error) msg=".*"( [a-z_0-9]+="[^"]*")*$)re");
    while (std::getline(in, line)) {
      lines++;
      EXPECT_TRUE(std::regex_match(line, std::string(fmt) == "json" ? json : logfmt)) << line;
      if (line.find("slow query") != std::string::npos) {
        slow++;
        EXPECT_NE(line.find(std::string(fmt) == "json" ? "\"collection\": \"demo\""
                                                       : "collection=\"demo\""),
                  std::string::npos)
            << line;
      }
    }
    EXPECT_GT(lines, 3u);
    EXPECT_EQ(slow, 1u) << s.log();
  }
}

// quiverd raises its open-file soft limit to the hard limit: with the common 1024 a burst of
// idle connections ran accept() out of descriptors (and gRPC 1.51 then stopped accepting).
TEST_F(Ops, TheOpenFileLimitIsRaisedToTheHardLimit) {
  struct rlimit mine;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max <= 256)
    GTEST_SKIP() << "the hard open-file limit is only " << mine.rlim_max;
  struct rlimit low = mine;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const bool up = srv.start(tmp.sub("data")); // the child inherits the low soft limit
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(up);
  std::ifstream lim("/proc/" + std::to_string(srv.pid) + "/limits");
  std::string line, soft, hard;
  while (std::getline(lim, line))
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream ss(line.substr(14));
      ss >> soft >> hard;
    }
  EXPECT_EQ(soft, hard) << line;
  EXPECT_EQ(soft, mine.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(mine.rlim_max));
  EXPECT_NE(srv.log().find("open-file limit raised from 256"), std::string::npos) << srv.log();
  EXPECT_EQ(srv.stop(), 0);
}

namespace {
long status_kb(pid_t pid, const char *field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0)
      return std::atol(line.c_str() + std::strlen(field));
  return -1;
}
} // namespace

// A request over --max-message-mb is refused (RESOURCE_EXHAUSTED) without quiverd holding the
// whole of it first: gRPC 1.51 buffers a message whole before its size filter looks, and the
// outside probe watched a 1 GiB Search take quiverd to 1,040 MiB before the refusal, with no token
// needed. quiverd bounds what gRPC may buffer (a resource quota, --grpc-memory-mb).
TEST_F(Ops, AMessageOverTheLimitIsRefusedWithoutBeingHeldWhole) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--max-message-mb", "4", "--grpc-memory-mb", "64"}));
  const long before = status_kb(srv.pid, "VmHWM:");
  ASSERT_GT(before, 0);
  std::string details;
  const std::string body(size_t(512) << 20, '\x01');
  grpc_init();
  const grpc_status_code code =
      qvtest::raw_call(srv.target(), "/quiver.v1.Retrieval/Search", body, &details);
  grpc_shutdown();
  EXPECT_EQ(code, GRPC_STATUS_RESOURCE_EXHAUSTED) << details;
  const long grew_mb = (status_kb(srv.pid, "VmHWM:") - before) / 1024;
  EXPECT_LT(grew_mb, 200) << "quiverd's peak RSS grew by " << grew_mb
                          << " MiB for a 512 MiB message";
  // And it still answers.
  Client cl(srv.target());
  int serving = 0;
  qv_error e{};
  EXPECT_EQ(qv_client_health(cl.c, "", &serving, &e), QV_OK) << e.msg;
  EXPECT_EQ(srv.stop(), 0);
}

namespace {
// The 100 sift5k queries repeated to n rows.
std::vector<float> repeat_rows(const Matrix &q, size_t n) {
  std::vector<float> out(n * q.cols);
  for (size_t r = 0; r < n; r++)
    std::copy(q.f.begin() + (r % q.rows) * q.cols, q.f.begin() + (r % q.rows + 1) * q.cols,
              out.begin() + r * q.cols);
  return out;
}
} // namespace

// Admission by estimated work (--max-search-gwork): the probe's 16,384-query searches with a
// rerank over 4,096 candidates were ~30 minutes of work in one request. What is over the bound
// is refused before any of it runs; what is under runs.
TEST_F(Ops, ASearchIsAdmittedByItsEstimatedWork) {
  auto flags = demo();
  flags.insert(flags.end(), {"--max-search-gwork", "1"});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  Client cl(srv.target());
  const size_t d = q.cols;
  std::vector<float> sc(2000 * 100);
  std::vector<int64_t> ids(2000 * 100);
  qv_error e{};
  // Exact, 100 queries x 5,000 vectors x 128: 0.06 G.
  EXPECT_EQ(qv_client_search(cl.c, "demo", q.f.data(), 100, d, 10, 0, 1, sc.data(), ids.data(), &e),
            QV_OK)
      << e.msg;
  // Exact, 2,000 queries: 1.3 G.
  std::vector<float> many = repeat_rows(q, 2000);
  EXPECT_EQ(
      qv_client_search(cl.c, "demo", many.data(), 2000, d, 10, 0, 1, sc.data(), ids.data(), &e),
      QV_ENOMEM);
  EXPECT_NE(std::strstr(e.msg, "--max-search-gwork"), nullptr) << e.msg;
  // MMR, 100 queries, k 100 over 4,096 candidates: 100 x 100 x 4096 x 128 = 5.2 G.
  qv_client_rerank rr{};
  rr.candidates = 4096;
  rr.mmr_lambda = 0.5f;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "demo", q.f.data(), 100, d, 100, 0, &rr, sc.data(),
                                    ids.data(), &e),
            QV_ENOMEM);
  // The same with k 10 over 64 candidates: admitted, and answered.
  rr.candidates = 64;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "demo", q.f.data(), 100, d, 10, 0, &rr, sc.data(),
                                    ids.data(), &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(srv.stop(), 0);
}

// A long search stops at its deadline instead of running on for the client that left, health
// checks are answered while it runs (with one polling thread, which it holds), and SIGTERM stops
// quiverd within its grace period while one runs.
TEST_F(Ops, ALongSearchStopsAtItsDeadlineWhileHealthIsAnswered) {
  auto flags = demo();
  flags.insert(flags.end(),
               {"--threads", "1", "--max-search-gwork", "0", "--shutdown-grace-ms", "2000"});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  const size_t n = 4000, k = 100;
  std::vector<float> many = repeat_rows(q, n);
  // MMR over 4,096 candidates: ~5e7 multiply-adds a query, minutes for all of them here.
  auto long_search = [&](int64_t timeout_ms, qv_status *st, std::string *msg, double *secs) {
    Client cl(srv.target(), timeout_ms);
    std::vector<float> sc(n * k);
    std::vector<int64_t> ids(n * k);
    qv_client_rerank rr{};
    rr.candidates = 4096;
    rr.mmr_lambda = 0.5f;
    qv_error e{};
    auto t0 = std::chrono::steady_clock::now();
    *st = qv_client_search_rerank(cl.c, "demo", many.data(), n, q.cols, k, 0, &rr, sc.data(),
                                  ids.data(), &e);
    *secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *msg = e.msg;
  };
  qv_status st = QV_OK;
  std::string msg;
  double secs = 0;
  std::atomic<bool> done{false};
  std::thread t([&] {
    long_search(3000, &st, &msg, &secs);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  {
    Client h(srv.target(), 2000);
    int serving = 0;
    qv_error e{};
    EXPECT_EQ(qv_client_health(h.c, "", &serving, &e), QV_OK) << e.msg;
    EXPECT_EQ(serving, 1);
    EXPECT_FALSE(done) << "the long search ended before the health check: nothing was shown";
  }
  t.join();
  EXPECT_EQ(st, QV_EDEADLINE) << msg;
  // The server stopped the work too: it says so once the deadline passes (within a step).
  bool said = false;
  for (int i = 0; i < 100 && !said; i++) {
    said = srv.log().find("the deadline passed after") != std::string::npos;
    if (!said)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(said) << srv.log();
  // A stop while another long search runs (its deadline a minute away).
  std::thread t2([&] { long_search(60000, &st, &msg, &secs); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  double stop_s = 0;
  EXPECT_EQ(srv.stop(SIGTERM, &stop_s), 0) << srv.log();
  // The whole search is minutes of work; a stop waits at most for the grace and one step (a
  // step is ~0.5 G multiply-adds: seconds under ASan on a loaded machine).
  EXPECT_LT(stop_s, 2.0 + 15.0) << "grace 2 s";
  t2.join();
  EXPECT_NE(st, QV_OK);
}

// After accept() ran out of descriptors, gRPC 1.51 never accepted again (grpc/grpc#20418): the
// probe saw quiverd alive at 0 % CPU, deaf to every new client 120 s later. Its watchdog notices:
// health says NOT_SERVING and it stops with exit status 1, for its supervisor to restart it.
// The property: once the flood is gone it answers again, or it exits 1 saying why; never alive
// and deaf.
TEST_F(Ops, AServerThatStoppedAcceptingSaysSoAndExits) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--accept-check-s", "1"}));
  // A Health/Watch (quiver health --watch: a process of its own, so that the checks below make
  // connections of their own) on a connection made before the flood: when the watchdog gives
  // up, the watch is told NOT_SERVING, not only at the stop that follows.
  const std::string wlog = tmp.sub("watch.out");
  const pid_t wpid = qvtest::spawn(
      {std::string(QUIVER_BIN_DIR) + "/quiver", "--server", srv.target(), "health", "--watch"},
      wlog);
  std::string wout;
  for (int i = 0; i < 300 && wout.find(" SERVING\n") == std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    wout = file_text(wlog);
  }
  ASSERT_NE(wout.find(" SERVING\n"), std::string::npos) << wout;
  struct rlimit low = {128, 128};
  ASSERT_EQ(prlimit(srv.pid, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(srv.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  for (int i = 0; i < 300; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      close(fd);
      break; /* the backlog is full */
    }
    (void)!send(fd, preface, sizeof preface - 1, MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  EXPECT_GT(fds.size(), 128u);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (int fd : fds)
    close(fd);
  bool answered = false, exited = false;
  int status = 0;
  for (int i = 0; i < 60 && !answered && !exited; i++) {
    if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
      exited = true;
      srv.pid = -1;
      break;
    }
    Client h(srv.target(), 1000);
    int serving = 0;
    qv_error e{};
    answered = qv_client_health(h.c, "", &serving, &e) == QV_OK && serving;
    if (!answered)
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ASSERT_TRUE(answered || exited) << "quiverd is alive but answers nobody; log:\n" << srv.log();
  if (exited) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
    EXPECT_NE(srv.log().find("stopped accepting connections"), std::string::npos) << srv.log();
    EXPECT_NE(srv.log().find("NOT_SERVING (the listener stopped accepting), told to 1 open"),
              std::string::npos)
        << srv.log();
  } else {
    EXPECT_EQ(srv.stop(), 0);
  }
  int wst = 0;
  ASSERT_EQ(waitpid(wpid, &wst, 0), wpid);
  wout = file_text(wlog);
  EXPECT_TRUE(WIFEXITED(wst) && WEXITSTATUS(wst) == 0) << wst << "\n" << wout;
  EXPECT_NE(wout.find(" SERVING\n"), std::string::npos) << wout;
  EXPECT_NE(wout.find(" NOT_SERVING\n"), std::string::npos) << wout;
}

// A metrics address that cannot be bound fails the start with a clear error and exit 1. It
// aborted (SIGABRT, gRPC's "ShutdownCalled() || listeners_.empty()") when the endpoint was
// started after the gRPC port was bound: a server with a bound port may not be destroyed unstarted.
TEST(OpsStart, AnUnbindableMetricsAddressFailsTheStartCleanly) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
  qvtest::TempDir tmp;
  const std::string log = tmp.sub("log");
  const std::string cmd = std::string(QUIVER_BIN_DIR) + "/quiverd --listen 127.0.0.1:0 " +
                          "--metrics-listen 127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                          " --data-dir " + tmp.sub("data") + " 2>" + log;
  const int st = std::system(cmd.c_str());
  close(fd);
  std::ifstream f(log);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(st)) << "quiverd died by a signal; its log:\n" << text;
  EXPECT_EQ(WEXITSTATUS(st), 1) << text;
  EXPECT_NE(text.find("ERROR"), std::string::npos) << text;
}
