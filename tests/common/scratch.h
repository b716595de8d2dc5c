// A fixture for the tests of the core file layer: a scratch directory made at SetUp and removed
// through qv_remove_tree (which must succeed) at TearDown, and raw file writes. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "quiver/fsutil.h"
#include "quiver/status.h"

namespace qvtest {

class ScratchDirTest : public ::testing::Test {
protected:
  // The directory is /tmp/<prefix>XXXXXX.
  explicit ScratchDirTest(const char *prefix) : prefix_(prefix) {}

  void SetUp() override {
    std::string tmpl = "/tmp/" + prefix_ + "XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << std::strerror(errno);
    dir_ = tmpl;
    qv_error_clear(&err_);
  }
  void TearDown() override {
    if (!dir_.empty()) {
      qv_error e;
      EXPECT_EQ(qv_remove_tree(dir_.c_str(), &e), QV_OK) << e.msg;
    }
  }
  std::string P(const std::string &name) const {
    return dir_ + "/" + name;
  }

  static void WriteRaw(const std::string &p, const std::string &bytes) {
    FILE *f = std::fopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr) << p;
    ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    ASSERT_EQ(std::fclose(f), 0);
  }

  std::string prefix_;
  std::string dir_;
  qv_error err_;
};

} // namespace qvtest
