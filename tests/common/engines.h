// The engines a cluster test needs, started and stopped by the test itself on loopback ports it
// picks, each bounded in time: an etcd cluster of N members (Debian etcd-server) and a NATS
// JetStream cluster of N servers (Debian nats-server). C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/testdata.h"

namespace qvtest {

// A loopback TCP port nobody listens on right now (the kernel's pick for port 0).
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

inline std::string slurp_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class EtcdCluster {
public:
  struct Member {
    std::string name, dir, log;
    int client_port = 0, peer_port = 0;
    pid_t pid = -1;
  };
  std::vector<Member> m;

  ~EtcdCluster() {
    stop();
  }

  // Starts n members under dir and waits (up to 30 s) until every one answers its health check.
  bool start(const std::string &dir, int n = 3) {
    std::string initial;
    for (int i = 0; i < n; i++) {
      Member x;
      x.name = "m" + std::to_string(i);
      x.dir = dir + "/" + x.name;
      x.log = dir + "/" + x.name + ".log";
      x.client_port = free_port();
      x.peer_port = free_port();
      initial += (i ? "," : "") + x.name + "=http://127.0.0.1:" + std::to_string(x.peer_port);
      m.push_back(x);
    }
    for (auto &x : m) {
      const std::string c = "http://127.0.0.1:" + std::to_string(x.client_port);
      const std::string p = "http://127.0.0.1:" + std::to_string(x.peer_port);
      x.pid = spawn({"etcd",
                     "--name",
                     x.name,
                     "--data-dir",
                     x.dir,
                     "--listen-client-urls",
                     c,
                     "--advertise-client-urls",
                     c,
                     "--listen-peer-urls",
                     p,
                     "--initial-advertise-peer-urls",
                     p,
                     "--initial-cluster",
                     initial,
                     "--initial-cluster-state",
                     "new",
                     "--initial-cluster-token",
                     "quiver-test-" + std::to_string(getpid()),
                     "--logger",
                     "zap",
                     "--log-level",
                     "warn"},
                    x.log);
    }
    for (int i = 0; i < 300; i++) { // up to 30 s
      if (etcdctl("endpoint health").code == 0)
        return true;
      for (auto &x : m) {
        int st;
        if (x.pid > 0 && waitpid(x.pid, &st, WNOHANG) == x.pid) {
          ADD_FAILURE() << "etcd " << x.name << " exited at start; log:\n" << slurp_file(x.log);
          x.pid = -1;
          return false;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "etcd did not become healthy; log of m0:\n" << slurp_file(m[0].log);
    return false;
  }

  // "127.0.0.1:a,127.0.0.1:b,..." of the members still running (all = also the stopped ones).
  std::string endpoints(bool all = true) const {
    std::string s;
    for (auto &x : m)
      if (all || x.pid > 0)
        s += (s.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(x.client_port);
    return s;
  }

  // etcdctl against the running members, bounded to 10 s.
  CmdResult etcdctl(const std::string &args) const {
    std::string eps;
    for (auto &x : m)
      if (x.pid > 0)
        eps += (eps.empty() ? "" : ",") + std::string("http://127.0.0.1:") +
               std::to_string(x.client_port);
    return run_command("ETCDCTL_API=3 timeout 10 etcdctl --endpoints=" + eps +
                       " --command-timeout=5s " + args);
  }

  // The index of the member that is the raft leader now, or -1.
  int leader() const {
    for (size_t i = 0; i < m.size(); i++) {
      if (m[i].pid <= 0)
        continue;
      CmdResult r =
          run_command("ETCDCTL_API=3 timeout 10 etcdctl --endpoints=http://127.0.0.1:" +
                      std::to_string(m[i].client_port) + " endpoint status --write-out=fields");
      // Fields output: "MemberID" : N ... "Leader" : N
      auto field = [&](const std::string &name) {
        size_t at = r.out.find("\"" + name + "\" : ");
        return at == std::string::npos ? std::string() : r.out.substr(at + name.size() + 5, 20);
      };
      std::string id = field("MemberID"), lead = field("Leader");
      if (!id.empty() && std::stoull(id) == std::stoull(lead.empty() ? "0" : lead))
        return int(i);
    }
    return -1;
  }

  void kill_member(size_t i, int sig = SIGKILL) {
    if (i < m.size() && m[i].pid > 0) {
      kill(m[i].pid, sig);
      int st;
      waitpid(m[i].pid, &st, 0);
      m[i].pid = -1;
    }
  }

  void stop() {
    for (size_t i = 0; i < m.size(); i++)
      kill_member(i, SIGTERM);
  }
};

// A NATS cluster of n servers with JetStream (Debian nats-server), routes between all of them.
class NatsCluster {
public:
  struct Server {
    std::string name, dir, log;
    int port = 0, route_port = 0;
    pid_t pid = -1;
  };
  std::vector<Server> s;

  ~NatsCluster() {
    stop();
  }

  // Starts n servers under dir and waits (up to 20 s) until each accepts connections; JetStream's
  // own leader election follows (qv_jslog_open waits for it).
  bool start(const std::string &dir, int n = 3) {
    for (int i = 0; i < n; i++) {
      Server x;
      x.name = "n" + std::to_string(i);
      x.dir = dir + "/" + x.name;
      x.log = dir + "/" + x.name + ".log";
      x.port = free_port();
      x.route_port = free_port();
      s.push_back(x);
    }
    for (size_t i = 0; i < s.size(); i++)
      launch(i);
    for (int t = 0; t < 200; t++) { // up to 20 s
      bool all = true;
      for (auto &x : s)
        all = all && port_open(x.port);
      if (all)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "nats-server did not come up; log of n0:\n" << slurp_file(s[0].log);
    return false;
  }

  // Starts server i again (after kill_server), with its store as it was.
  void launch(size_t i) {
    Server &x = s[i];
    std::string routes;
    for (size_t j = 0; j < s.size(); j++)
      if (j != i)
        routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") +
                  std::to_string(s[j].route_port);
    x.pid = spawn({"nats-server", "-a", "127.0.0.1", "-p", std::to_string(x.port), "-n", x.name,
                   "-js", "-sd", x.dir, "--cluster_name", "quiver-test", "--cluster",
                   "nats://127.0.0.1:" + std::to_string(x.route_port), "--routes", routes},
                  x.log);
  }

  // "nats://127.0.0.1:a,..." of every server.
  std::string urls() const {
    std::string u;
    for (auto &x : s)
      u += (u.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(x.port);
    return u;
  }

  void kill_server(size_t i, int sig = SIGKILL) {
    if (i < s.size() && s[i].pid > 0) {
      kill(s[i].pid, sig);
      int st;
      waitpid(s[i].pid, &st, 0);
      s[i].pid = -1;
    }
  }

  void stop() {
    for (size_t i = 0; i < s.size(); i++)
      kill_server(i, SIGTERM);
  }

  static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    if (fd >= 0)
      close(fd);
    return ok;
  }
};

} // namespace qvtest
