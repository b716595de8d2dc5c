// grpc.health.v1.Health/Watch through the real quiverd: the status at once, only changes after
// it, SERVICE_UNKNOWN on a stream that stays open, NOT_SERVING and the end of every watch at a
// stop (a stop that open watches do not hold until its grace period), watches that their clients
// cancel or abandon, open to all under --auth-tokens; and `quiver health --watch`.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/server.h"

using qvtest::Client;
using qvtest::Quiverd;
using qvtest::TempDir;

namespace {

// One qv_client_health_watch on a thread of its own, with what it saw.
class Watcher {
public:
  // stop_after: fn returns non-zero on that many messages (0: never).
  Watcher(const std::string &target, const std::string &service, double timeout_s = 0,
          size_t stop_after = 0)
      : stop_after_(stop_after) {
    t_ = std::thread([this, target, service, timeout_s] {
      Client c(target);
      qv_error e{};
      qv_status st =
          qv_client_health_watch(c.c, service.c_str(), timeout_s, &Watcher::on_status, this, &e);
      std::lock_guard<std::mutex> l(mu_);
      st_ = st;
      msg_ = e.msg;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~Watcher() {
    if (t_.joinable())
      t_.join();
  }
  // Until n statuses came (true) or secs passed or the watch ended without them (false).
  bool wait_seen(size_t n, double secs) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::duration<double>(secs),
                 [&] { return seen_.size() >= n || done_; });
    return seen_.size() >= n;
  }
  bool wait_done(double secs) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::duration<double>(secs), [&] { return done_; });
  }
  std::vector<qv_health_status> seen() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }
  bool done() {
    std::lock_guard<std::mutex> l(mu_);
    return done_;
  }
  qv_status status() {
    std::lock_guard<std::mutex> l(mu_);
    return st_;
  }
  std::string msg() {
    std::lock_guard<std::mutex> l(mu_);
    return msg_;
  }

private:
  static int on_status(void *user, qv_health_status s) {
    auto *w = static_cast<Watcher *>(user);
    std::lock_guard<std::mutex> l(w->mu_);
    w->seen_.push_back(s);
    w->cv_.notify_all();
    return w->stop_after_ > 0 && w->seen_.size() >= w->stop_after_;
  }
  size_t stop_after_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<qv_health_status> seen_;
  bool done_ = false;
  qv_status st_ = QV_OK;
  std::string msg_;
  std::thread t_;
};

// "SERVING NOT_SERVING": the statuses a watch saw, in order.
std::string names(const std::vector<qv_health_status> &v) {
  std::string s;
  for (auto x : v)
    s += std::string(s.empty() ? "" : " ") + qv_health_status_name(x);
  return s;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A long grace: a stop that waited for it because of an open watch would show.
const std::vector<std::string> kLongGrace = {"--shutdown-grace-ms", "30000"};

class HealthWatch : public ::testing::Test {
protected:
  TempDir tmp;
  Quiverd srv;
  // SIGTERM; the stop must end well within the 30 s grace (a busy 2-core machine, maybe ASan).
  void stop_promptly() {
    double secs = 0;
    EXPECT_EQ(srv.stop(SIGTERM, &secs), 0) << srv.log();
    EXPECT_LT(secs, 10.0) << "the stop waited for open watches; log:\n" << srv.log();
  }
};

} // namespace

TEST_F(HealthWatch, ServingAtOnceThenNotServingAndTheEndAtAStop) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), kLongGrace));
  Watcher all(srv.target(), ""), named(srv.target(), "quiver.v1.Retrieval");
  ASSERT_TRUE(all.wait_seen(1, 30)) << all.msg();
  ASSERT_TRUE(named.wait_seen(1, 30)) << named.msg();
  EXPECT_EQ(all.seen()[0], QV_HEALTH_SERVING);
  EXPECT_EQ(named.seen()[0], QV_HEALTH_SERVING);
  // Only changes are sent: nothing more while it keeps serving.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(all.seen().size(), 1u) << names(all.seen());
  EXPECT_FALSE(all.done()) << all.msg();
  stop_promptly();
  ASSERT_TRUE(all.wait_done(10));
  ASSERT_TRUE(named.wait_done(10));
  for (Watcher *w : {&all, &named}) {
    EXPECT_EQ(names(w->seen()), "SERVING NOT_SERVING");
    EXPECT_EQ(w->status(), QV_EUNAVAILABLE) << w->msg();
    EXPECT_NE(w->msg().find("shutting down"), std::string::npos) << w->msg();
  }
  EXPECT_NE(srv.log().find("NOT_SERVING (shutting down), told to 2 open watch(es)"),
            std::string::npos)
      << srv.log();
}

TEST_F(HealthWatch, AnUnknownServiceGetsServiceUnknownAndTheStreamStaysOpen) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), kLongGrace));
  Client cl(srv.target());
  int serving = 0;
  qv_error e{};
  EXPECT_EQ(qv_client_health(cl.c, "other.Service", &serving, &e),
            QV_ENOTFOUND); // Check: NOT_FOUND
  Watcher w(srv.target(), "other.Service");
  ASSERT_TRUE(w.wait_seen(1, 30)) << w.msg();
  EXPECT_EQ(w.seen()[0], QV_HEALTH_SERVICE_UNKNOWN);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_FALSE(w.done()) << "the watch of an unknown service ended: " << w.msg();
  EXPECT_EQ(w.seen().size(), 1u) << names(w.seen());
  // A stop ends it too: the server is going away.
  stop_promptly();
  ASSERT_TRUE(w.wait_done(10));
  EXPECT_EQ(names(w.seen()), "SERVICE_UNKNOWN NOT_SERVING");
  EXPECT_EQ(w.status(), QV_EUNAVAILABLE) << w.msg();
}

TEST_F(HealthWatch, CancelledAndTimedOutWatchesLeaveTheServerFine) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), kLongGrace));
  {
    // Cancelled by the caller right after the first message, several at once and in a row.
    std::vector<std::unique_ptr<Watcher>> ws;
    for (int i = 0; i < 10; i++)
      ws.push_back(std::make_unique<Watcher>(srv.target(), i % 2 ? "" : "nope", 0, 1));
    for (auto &w : ws) {
      ASSERT_TRUE(w->wait_done(30)) << "a cancelled watch did not return";
      EXPECT_EQ(w->status(), QV_OK) << w->msg();
      EXPECT_EQ(w->seen().size(), 1u);
    }
    // Ended by its deadline mid-stream (the server sees a cancel).
    Watcher timed(srv.target(), "", 0.5);
    ASSERT_TRUE(timed.wait_done(30));
    EXPECT_EQ(timed.status(), QV_EDEADLINE) << timed.msg();
    EXPECT_EQ(names(timed.seen()), "SERVING");
  }
  // The server still answers, and a new watch still works.
  Client cl(srv.target());
  int serving = 0;
  qv_error e{};
  EXPECT_EQ(qv_client_health(cl.c, "", &serving, &e), QV_OK) << e.msg;
  EXPECT_EQ(serving, 1);
  Watcher again(srv.target(), "");
  ASSERT_TRUE(again.wait_seen(1, 30)) << again.msg();
  EXPECT_EQ(again.seen()[0], QV_HEALTH_SERVING);
  // Under ASan/LSan a watch left behind would show as a leak at exit (exit status != 0).
  stop_promptly();
  ASSERT_TRUE(again.wait_done(10));
  EXPECT_EQ(names(again.seen()), "SERVING NOT_SERVING");
}

TEST_F(HealthWatch, FiftyWatchersAllGetNotServingAtAStop) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), kLongGrace));
  constexpr int kWatchers = 50;
  std::vector<std::unique_ptr<Watcher>> ws;
  for (int i = 0; i < kWatchers; i++)
    ws.push_back(std::make_unique<Watcher>(srv.target(), i % 5 == 4 ? "unknown.Svc" : ""));
  for (auto &w : ws)
    ASSERT_TRUE(w->wait_seen(1, 60)) << w->msg();
  stop_promptly();
  int ended = 0;
  for (int i = 0; i < kWatchers; i++) {
    Watcher &w = *ws[size_t(i)];
    ASSERT_TRUE(w.wait_done(10)) << "watcher " << i << " did not end";
    ended++;
    EXPECT_EQ(names(w.seen()), i % 5 == 4 ? "SERVICE_UNKNOWN NOT_SERVING" : "SERVING NOT_SERVING")
        << "watcher " << i;
    EXPECT_EQ(w.status(), QV_EUNAVAILABLE) << w.msg();
  }
  EXPECT_EQ(ended, kWatchers);
}

TEST_F(HealthWatch, WatchNeedsNoTokenUnderAuthTokens) {
  const std::string tokens = tmp.sub("tokens");
  {
    std::ofstream f(tokens);
    f << "admin 0123456789abcdef0123456789abcdef\nread fedcba9876543210fedcba9876543210\n";
  }
  std::vector<std::string> flags = kLongGrace;
  flags.insert(flags.end(), {"--auth-tokens", tokens});
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags));
  Watcher w(srv.target(), ""); // no token
  ASSERT_TRUE(w.wait_seen(1, 30)) << w.msg();
  EXPECT_EQ(w.seen()[0], QV_HEALTH_SERVING);
  stop_promptly();
  ASSERT_TRUE(w.wait_done(10));
  EXPECT_EQ(names(w.seen()), "SERVING NOT_SERVING");
}

// quiver health --watch: a timestamped line per status; exit 0 when the server's stop ends the
// stream after NOT_SERVING, and at --timeout; a watch killed with its process leaves the server
// fine.
TEST_F(HealthWatch, TheCliPrintsEachStatusAndExitsZeroAtAStop) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), kLongGrace));
  const std::string quiver = std::string(QUIVER_BIN_DIR) + "/quiver --server " + srv.target();
  // --timeout: the first line, then exit 0 when it passes.
  qvtest::CmdResult r = qvtest::run_command(quiver + " health --watch --timeout 1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Z SERVING\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--timeout passed"), std::string::npos) << r.out;
  // --watch belongs to health only.
  r = qvtest::run_command(quiver + " list --watch");
  EXPECT_EQ(r.code, 2) << r.out;
  // One killed while it watches: the server is not held by it.
  const std::string klog = tmp.sub("killed.out");
  pid_t killed = qvtest::spawn({std::string(QUIVER_BIN_DIR) + "/quiver", "--server", srv.target(),
                                "health", "--watch", "--service", "quiver.v1.Retrieval"},
                               klog);
  // And one that watches until the stop.
  const std::string out = tmp.sub("watch.out");
  pid_t watcher = qvtest::spawn(
      {std::string(QUIVER_BIN_DIR) + "/quiver", "--server", srv.target(), "health", "--watch"},
      out);
  std::string seen;
  for (int i = 0; i < 300; i++) { // up to 30 s for both first lines
    seen = slurp(out) + slurp(klog);
    size_t n = 0;
    for (size_t p = seen.find(" SERVING\n"); p != std::string::npos;
         p = seen.find(" SERVING\n", p + 1))
      n++;
    if (n >= 2)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(slurp(out).find(" SERVING\n"), std::string::npos) << seen;
  ASSERT_NE(slurp(klog).find(" SERVING\n"), std::string::npos) << seen;
  kill(killed, SIGKILL);
  int st = 0;
  ASSERT_EQ(waitpid(killed, &st, 0), killed);
  stop_promptly();
  ASSERT_EQ(waitpid(watcher, &st, 0), watcher);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << "\n" << slurp(out);
  const std::string text = slurp(out);
  // Two status lines, each "YYYY-MM-DDTHH:MM:SS.mmmZ STATUS", then how it ended (stderr).
  const size_t l1 = text.find('\n'), l2 = text.find('\n', l1 + 1);
  ASSERT_NE(l2, std::string::npos) << text;
  const std::string first = text.substr(0, l1), second = text.substr(l1 + 1, l2 - l1 - 1);
  EXPECT_EQ(first.size(), 24u + 1 + 7) << first;
  EXPECT_EQ(first.substr(first.size() - 9), "Z SERVING") << first;
  EXPECT_EQ(second.substr(second.size() - 13), "Z NOT_SERVING") << second;
  EXPECT_EQ(first[4], '-');
  EXPECT_EQ(first[10], 'T');
  EXPECT_NE(text.find("the watch ended: UNAVAILABLE: the server is shutting down"),
            std::string::npos)
      << text;
}
