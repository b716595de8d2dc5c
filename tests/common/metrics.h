// Scraping quiverd's /metrics in tests: a plain HTTP GET and a strict parse of the Prometheus
// text exposition. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "common/server.h"

namespace qvtest {

// GET http://127.0.0.1:port/path; returns "STATUS\nBODY" ("" when it cannot connect).
inline std::string http_get(int port, const std::string &path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    close(fd);
    return "";
  }
  std::string all;
  char buf[65536];
  ssize_t k;
  while ((k = read(fd, buf, sizeof buf)) > 0)
    all.append(buf, size_t(k));
  close(fd);
  size_t sp = all.find(' '), body = all.find("\r\n\r\n");
  if (sp == std::string::npos || body == std::string::npos)
    return "";
  return all.substr(sp + 1, 3) + "\n" + all.substr(body + 4);
}

// The metrics port quiverd logged ("metrics on http://...: (port N)").
inline int metrics_port(const Quiverd &srv) {
  std::smatch m;
  std::string log = srv.log();
  std::regex re("metrics on http://[^ ]+ \\(port ([0-9]+)\\)");
  return std::regex_search(log, m, re) ? std::stoi(m[1]) : 0;
}

// Parses the exposition strictly: every sample line is NAME{LABELS} VALUE with a TYPE declared
// for its family. Returns sample -> value; an empty map with a failure on any bad line.
inline std::map<std::string, double> parse_metrics(const std::string &text) {
  std::map<std::string, double> out;
  std::map<std::string, std::string> types;
  std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
  std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary)$)");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0)
      continue;
    if (std::regex_match(line, m, type)) {
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, sample)) {
      ADD_FAILURE() << "not a Prometheus sample line: '" << line << "'";
      return {};
    }
    std::string family = m[1];
    for (const char *suffix : {"_bucket", "_sum", "_count"})
      if (!types.count(family) && family.size() > std::strlen(suffix) &&
          family.compare(family.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        family = family.substr(0, family.size() - std::strlen(suffix));
    EXPECT_TRUE(types.count(family)) << "no # TYPE for " << m[1];
    out[std::string(m[1]) + std::string(m[2])] = std::stod(m[3]);
  }
  return out;
}

inline std::map<std::string, double> scrape(int port) {
  std::string r = http_get(port, "/metrics");
  EXPECT_EQ(r.substr(0, 3), "200") << r.substr(0, 200);
  return parse_metrics(r.size() > 4 ? r.substr(4) : "");
}

} // namespace qvtest
