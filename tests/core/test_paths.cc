// Paths and the collection directory format's names (quiver/fsutil.h, quiver/dirformat.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/testdata.h"
#include "quiver/dirformat.h"
#include "quiver/fsutil.h"

namespace fs = std::filesystem;
using qvtest::TempDir;

namespace {

void write_file(const std::string &path, const std::string &body) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << body;
}

std::vector<std::string> push_files(const std::string &dir, qv_status *st, qv_error *e) {
  char files[QV_VERSION_NFILES + 2][QV_REL_MAX];
  int n = -1;
  *st = qv_collection_push_files(dir.c_str(), files, &n, e);
  std::vector<std::string> out;
  for (int i = 0; i < n; i++)
    out.emplace_back(files[i]);
  return out;
}

} // namespace

TEST(Paths, APathThatDoesNotFitIsEmptyAndAnError) {
  char out[QV_PATH_MAX];
  qv_error e{};
  ASSERT_EQ(qv_path_fmt(out, &e, "%s/%s", "/data", "c"), QV_OK);
  EXPECT_STREQ(out, "/data/c");
  const std::string fits(QV_PATH_MAX - 1, 'a'), over(QV_PATH_MAX, 'a');
  ASSERT_EQ(qv_path_fmt(out, &e, "%s", fits.c_str()), QV_OK);
  EXPECT_EQ(std::string(out), fits);
  EXPECT_EQ(qv_path_fmt(out, &e, "%s", over.c_str()), QV_EINVAL);
  EXPECT_STREQ(out, "") << "a truncated path could name another file";
  EXPECT_NE(std::string(e.msg).find("longer than"), std::string::npos) << e.msg;
  EXPECT_EQ(qv_path_fmt(out, nullptr, "%s/x", fits.c_str()), QV_EINVAL);
}

TEST(DirFormat, APushSendsTheVersionsFilesThenTheManifestLast) {
  TempDir tmp;
  const std::string d = tmp.sub("c");
  write_file(d + "/MANIFEST.json", R"({"format": "quiver-collection", "dir": "v000003"})");
  for (const char *f : {"index.faiss", "vectors.npy", "ids.npy", "MANIFEST.json"})
    write_file(d + "/v000003/" + f, "x");
  write_file(d + "/v000002/index.faiss", "old version: not sent");
  qv_error e{};
  qv_status st;
  std::vector<std::string> got = push_files(d, &st, &e);
  ASSERT_EQ(st, QV_OK) << e.msg;
  // No features.npy in this version (items without features): not listed.
  EXPECT_EQ(
      got, (std::vector<std::string>{"v000003/index.faiss", "v000003/vectors.npy",
                                     "v000003/ids.npy", "v000003/MANIFEST.json", "MANIFEST.json"}));
  for (const auto &f : got)
    EXPECT_TRUE(qv_collection_file_ok(f.c_str())) << f << ": a receiver must take what is sent";
}

TEST(DirFormat, ADirectoryWithoutAUsableManifestIsRefusedWithWhatToDo) {
  TempDir tmp;
  qv_error e{};
  qv_status st;
  EXPECT_TRUE(push_files(tmp.sub("none"), &st, &e).empty());
  EXPECT_EQ(st, QV_ENOTFOUND);
  EXPECT_NE(std::string(e.msg).find("quiver index build"), std::string::npos) << e.msg;
  for (const char *bad : {"not json", R"({"dir": 7})", R"({"dir": "../etc"})", R"({"dir": "v12"})",
                          R"({"version": 3})"}) {
    SCOPED_TRACE(bad);
    const std::string d = tmp.sub("bad");
    write_file(d + "/MANIFEST.json", bad);
    e = qv_error{};
    EXPECT_TRUE(push_files(d, &st, &e).empty());
    EXPECT_EQ(st, QV_ECORRUPT);
    EXPECT_NE(std::string(e.msg).find("names no version directory"), std::string::npos) << e.msg;
  }
}
