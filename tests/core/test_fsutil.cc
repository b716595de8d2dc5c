// Tests for quiver/fsutil.h: atomic writes, whole-file reads, CRC-32, mkdir -p and rm -rf.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/scratch.h"
#include "quiver/fsutil.h"
#include "quiver/status.h"

namespace {

class FsutilTest : public qvtest::ScratchDirTest {
protected:
  FsutilTest() : ScratchDirTest("quiver_test_fsutil_") {}

  // Names in `d` (without . and ..), sorted.
  static std::vector<std::string> List(const std::string &d) {
    std::vector<std::string> names;
    DIR *dp = opendir(d.c_str());
    if (dp == nullptr)
      return names;
    while (struct dirent *e = readdir(dp)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.push_back(e->d_name);
    }
    closedir(dp);
    std::sort(names.begin(), names.end());
    return names;
  }

  static bool Exists(const std::string &p) {
    struct stat sb;
    return lstat(p.c_str(), &sb) == 0;
  }
  static bool IsDir(const std::string &p) {
    struct stat sb;
    return stat(p.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
  }
};

// Plain bitwise CRC-32 (reflected 0xEDB88320), independent of zlib.
uint32_t RefCrc32(const std::string &s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

TEST_F(FsutilTest, AtomicWriteThenReadAll) {
  const std::string path = P("a.bin");
  std::string data = "hello\0world", more(100000, 'z');
  data.push_back('\0');
  data += more;
  ASSERT_EQ(qv_file_write_atomic(path.c_str(), data.data(), data.size(), &err_), QV_OK) << err_.msg;
  char *buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(qv_file_read_all(path.c_str(), 1 << 20, &buf, &len, &err_), QV_OK) << err_.msg;
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(len, data.size());
  EXPECT_EQ(std::string(buf, len), data);
  EXPECT_EQ(buf[len], '\0');
  std::free(buf);
  // Only the final file remains: no "<path>.tmp.<pid>".
  EXPECT_EQ(List(dir_), std::vector<std::string>{"a.bin"});
}

TEST_F(FsutilTest, AtomicWriteReplacesExisting) {
  const std::string path = P("cfg.json");
  ASSERT_EQ(qv_file_write_atomic(path.c_str(), "first version", 13, &err_), QV_OK) << err_.msg;
  ASSERT_EQ(qv_file_write_atomic(path.c_str(), "v2", 2, &err_), QV_OK) << err_.msg;
  char *buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(qv_file_read_all(path.c_str(), 100, &buf, &len, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(std::string(buf, len), "v2");
  std::free(buf);
  EXPECT_EQ(List(dir_), std::vector<std::string>{"cfg.json"});
}

TEST_F(FsutilTest, AtomicWriteEmpty) {
  const std::string path = P("empty");
  ASSERT_EQ(qv_file_write_atomic(path.c_str(), nullptr, 0, &err_), QV_OK) << err_.msg;
  char *buf = nullptr;
  size_t len = 7;
  ASSERT_EQ(qv_file_read_all(path.c_str(), 0, &buf, &len, &err_), QV_OK) << err_.msg;
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(buf[0], '\0');
  std::free(buf);
}

TEST_F(FsutilTest, AtomicWriteIntoMissingDirFails) {
  const std::string path = P("no/such/dir/file");
  EXPECT_EQ(qv_file_write_atomic(path.c_str(), "x", 1, &err_), QV_EIO);
  EXPECT_EQ(err_.code, QV_EIO);
  EXPECT_NE(std::strstr(err_.msg, "no/such/dir/file"), nullptr) << err_.msg;
  EXPECT_EQ(qv_file_write_atomic(path.c_str(), "x", 1, nullptr), QV_EIO);
  EXPECT_TRUE(List(dir_).empty());
}

TEST_F(FsutilTest, AtomicWriteFailedRenameLeavesNoTemp) {
  // The target is a non-empty directory, so the rename fails after the temp file was written.
  const std::string path = P("target");
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
  WriteRaw(P("target/inside"), "x");
  EXPECT_EQ(qv_file_write_atomic(path.c_str(), "data", 4, &err_), QV_EIO);
  EXPECT_EQ(List(dir_), std::vector<std::string>{"target"});
}

TEST_F(FsutilTest, AtomicWriteRejectsNullData) {
  EXPECT_EQ(qv_file_write_atomic(P("x").c_str(), nullptr, 3, &err_), QV_EINVAL);
  EXPECT_EQ(qv_file_write_atomic(nullptr, "x", 1, &err_), QV_EINVAL);
  EXPECT_FALSE(Exists(P("x")));
}

TEST_F(FsutilTest, ReadAllMissingIsNotFound) {
  char *buf = reinterpret_cast<char *>(0x1);
  size_t len = 5;
  EXPECT_EQ(qv_file_read_all(P("missing").c_str(), 100, &buf, &len, &err_), QV_ENOTFOUND);
  EXPECT_EQ(err_.code, QV_ENOTFOUND);
  EXPECT_EQ(buf, nullptr);
  EXPECT_NE(std::strstr(err_.msg, "missing"), nullptr) << err_.msg;
}

TEST_F(FsutilTest, ReadAllOverLimitIsCorrupt) {
  const std::string path = P("big");
  WriteRaw(path, std::string(1000, 'b'));
  char *buf = nullptr;
  size_t len = 0;
  EXPECT_EQ(qv_file_read_all(path.c_str(), 999, &buf, &len, &err_), QV_ECORRUPT);
  EXPECT_EQ(buf, nullptr);
  EXPECT_EQ(qv_file_read_all(path.c_str(), 0, &buf, &len, nullptr), QV_ECORRUPT);
  EXPECT_EQ(buf, nullptr);
  // Exactly at the limit is fine.
  ASSERT_EQ(qv_file_read_all(path.c_str(), 1000, &buf, &len, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(len, 1000u);
  std::free(buf);
}

TEST_F(FsutilTest, ReadAllDirectoryFails) {
  char *buf = nullptr;
  size_t len = 0;
  EXPECT_EQ(qv_file_read_all(dir_.c_str(), 100, &buf, &len, &err_), QV_EIO);
  EXPECT_EQ(buf, nullptr);
}

TEST_F(FsutilTest, Crc32KnownValue) {
  const std::string path = P("check");
  ASSERT_EQ(qv_file_write_atomic(path.c_str(), "123456789", 9, &err_), QV_OK) << err_.msg;
  uint32_t crc = 0;
  uint64_t size = 0;
  ASSERT_EQ(qv_file_crc32(path.c_str(), &crc, &size, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(crc, 0xCBF43926u);
  EXPECT_EQ(size, 9u);
  EXPECT_EQ(RefCrc32("123456789"), 0xCBF43926u);
  // size may be NULL
  crc = 0;
  ASSERT_EQ(qv_file_crc32(path.c_str(), &crc, nullptr, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(crc, 0xCBF43926u);
}

TEST_F(FsutilTest, Crc32EmptyAndMultiChunk) {
  const std::string empty = P("empty");
  WriteRaw(empty, "");
  uint32_t crc = 1;
  uint64_t size = 1;
  ASSERT_EQ(qv_file_crc32(empty.c_str(), &crc, &size, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(crc, 0u);
  EXPECT_EQ(size, 0u);

  // Larger than the 1 MiB read chunk, with a ragged tail.
  std::string data((3u << 20) + 12345, '\0');
  uint32_t x = 12345;
  for (char &ch : data) {
    x = x * 1103515245u + 12345u;
    ch = static_cast<char>(x >> 24);
  }
  const std::string big = P("big");
  WriteRaw(big, data);
  ASSERT_EQ(qv_file_crc32(big.c_str(), &crc, &size, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(size, data.size());
  EXPECT_EQ(crc, RefCrc32(data));
}

TEST_F(FsutilTest, Crc32MissingIsNotFound) {
  uint32_t crc = 0;
  EXPECT_EQ(qv_file_crc32(P("nope").c_str(), &crc, nullptr, &err_), QV_ENOTFOUND);
  EXPECT_EQ(err_.code, QV_ENOTFOUND);
}

TEST_F(FsutilTest, MkdirsNestedAndIdempotent) {
  const std::string deep = P("a/b/c/d");
  ASSERT_EQ(qv_mkdirs(deep.c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_TRUE(IsDir(deep));
  struct stat sb;
  ASSERT_EQ(stat(deep.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0700, 0700u);
  ASSERT_EQ(qv_mkdirs(deep.c_str(), &err_), QV_OK) << err_.msg;
  ASSERT_EQ(qv_mkdirs(P("a/b").c_str(), nullptr), QV_OK);
  // trailing and doubled slashes
  ASSERT_EQ(qv_mkdirs((dir_ + "//x//y/").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_TRUE(IsDir(P("x/y")));
  // an existing directory, relative paths are fine too
  ASSERT_EQ(qv_mkdirs("/tmp", &err_), QV_OK) << err_.msg;
}

TEST_F(FsutilTest, MkdirsThroughFileFails) {
  WriteRaw(P("file"), "x");
  EXPECT_EQ(qv_mkdirs(P("file").c_str(), &err_), QV_EIO);
  EXPECT_EQ(err_.code, QV_EIO);
  EXPECT_EQ(qv_mkdirs(P("file/sub").c_str(), &err_), QV_EIO);
  EXPECT_NE(std::strstr(err_.msg, "file/sub"), nullptr) << err_.msg;
}

TEST_F(FsutilTest, RemoveTreeNested) {
  ASSERT_EQ(qv_mkdirs(P("t/a/b/c").c_str(), &err_), QV_OK) << err_.msg;
  ASSERT_EQ(qv_mkdirs(P("t/x").c_str(), &err_), QV_OK) << err_.msg;
  ASSERT_EQ(qv_mkdirs(P("t/empty").c_str(), &err_), QV_OK) << err_.msg;
  WriteRaw(P("t/top.txt"), "1");
  WriteRaw(P("t/a/one"), "2");
  WriteRaw(P("t/a/b/two"), "3");
  WriteRaw(P("t/a/b/c/three"), "4");
  WriteRaw(P("t/x/.hidden"), "5");
  ASSERT_EQ(qv_remove_tree(P("t").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_FALSE(Exists(P("t")));
  EXPECT_TRUE(List(dir_).empty());
}

TEST_F(FsutilTest, RemoveTreeDoesNotFollowSymlinks) {
  ASSERT_EQ(qv_mkdirs(P("keep").c_str(), &err_), QV_OK) << err_.msg;
  WriteRaw(P("keep/precious"), "do not delete");
  ASSERT_EQ(qv_mkdirs(P("t/sub").c_str(), &err_), QV_OK) << err_.msg;
  ASSERT_EQ(symlink(P("keep").c_str(), P("t/sub/link").c_str()), 0);
  ASSERT_EQ(symlink(P("keep/precious").c_str(), P("t/filelink").c_str()), 0);
  ASSERT_EQ(qv_remove_tree(P("t").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_FALSE(Exists(P("t")));
  EXPECT_TRUE(Exists(P("keep/precious")));

  // A symlink given as the root is removed itself, not its target.
  ASSERT_EQ(symlink(P("keep").c_str(), P("rootlink").c_str()), 0);
  ASSERT_EQ(qv_remove_tree(P("rootlink").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_FALSE(Exists(P("rootlink")));
  EXPECT_TRUE(Exists(P("keep/precious")));
}

TEST_F(FsutilTest, RemoveTreeAbsentAndPlainFile) {
  EXPECT_EQ(qv_remove_tree(P("absent").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(qv_remove_tree(P("absent/deeper").c_str(), nullptr), QV_OK);
  WriteRaw(P("plain"), "x");
  EXPECT_EQ(qv_remove_tree(P("plain").c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_FALSE(Exists(P("plain")));
}

TEST_F(FsutilTest, Fsync) {
  const std::string path = P("f");
  WriteRaw(path, "abc");
  EXPECT_EQ(qv_file_fsync(path.c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(qv_dir_fsync(dir_.c_str(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(qv_file_fsync(P("missing").c_str(), &err_), QV_EIO);
  EXPECT_EQ(err_.code, QV_EIO);
  EXPECT_EQ(qv_dir_fsync(P("missing").c_str(), &err_), QV_EIO);
  EXPECT_EQ(qv_dir_fsync(path.c_str(), nullptr), QV_EIO); // not a directory
}

} // namespace
