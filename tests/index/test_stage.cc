// A collection directory received file by file through quiver/stage.h: what a push sends arrives
// intact and opens, and every chunk that could damage or overfill the stage is refused before a
// byte of it is written.
#include <gtest/gtest.h>

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/stage.h"

namespace fs = std::filesystem;
using qvtest::Col;
using qvtest::Matrix;
using qvtest::TempDir;

namespace {

uint32_t crc(const std::string &s) {
  return uint32_t(crc32(0L, reinterpret_cast<const Bytef *>(s.data()), uInt(s.size())));
}

std::string slurp(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A stage closed (and its directory removed) at scope exit.
struct Stage {
  qv_stage *s = nullptr;
  ~Stage() {
    qv_stage_free(s);
  }
};

Matrix grid(size_t rows, size_t dim) {
  Matrix m;
  m.rows = rows;
  m.cols = dim;
  for (size_t i = 0; i < rows * dim; i++)
    m.f.push_back(float((i * 7919) % 1000) / 100.0f);
  return m;
}

} // namespace

TEST(Stage, ACollectionPushedInChunksOpensAndAnswersAsTheOriginal) {
  TempDir tmp;
  Col a;
  qvtest::make(a, 16, QV_METRIC_L2, "IVF4,Flat", 4);
  Matrix base = grid(400, 16);
  qvtest::add_all(a, base);
  qvtest::build(a);
  qv_error e{};
  const std::string src = tmp.sub("src");
  ASSERT_EQ(qv_collection_save(a.c, src.c_str(), &e), QV_OK) << e.msg;

  Stage st;
  ASSERT_EQ(qv_stage_create(&st.s, tmp.path.c_str(), "demo", nullptr, &e), QV_OK) << e.msg;
  EXPECT_EQ(fs::path(qv_stage_dir(st.s)).parent_path(), fs::path(tmp.path));
  uint64_t sent = 0;
  uint32_t files = 0;
  for (const auto &ent : fs::recursive_directory_iterator(src)) {
    if (!ent.is_regular_file())
      continue;
    const std::string rel = fs::relative(ent.path(), src).string();
    const std::string body = slurp(ent.path());
    files++;
    for (size_t off = 0; off < body.size(); off += 1000) { /* chunks in order, as a push sends */
      const std::string chunk = body.substr(off, 1000);
      ASSERT_EQ(qv_stage_write(st.s, rel.c_str(), off, chunk.data(), chunk.size(), crc(chunk), &e),
                QV_OK)
          << rel << ": " << e.msg;
      sent += chunk.size();
    }
  }
  EXPECT_EQ(qv_stage_bytes(st.s), sent);
  EXPECT_EQ(qv_stage_files(st.s), files);

  Col b;
  ASSERT_EQ(qv_collection_open(&b.c, qv_stage_dir(st.s), &e), QV_OK) << e.msg;
  EXPECT_EQ(qvtest::stats(b.c).count, 400u);
  Matrix q = grid(20, 16);
  EXPECT_EQ(qvtest::search(a.c, q, 5, 0).ids, qvtest::search(b.c, q, 5, 0).ids);

  const std::string dir = qv_stage_dir(st.s);
  qv_stage_free(st.s);
  st.s = nullptr;
  EXPECT_FALSE(fs::exists(dir)) << "freeing a stage removes its directory";
}

TEST(Stage, OnlyTheFilesOfTheDirectoryFormatAreTaken) {
  EXPECT_TRUE(qv_collection_file_ok("MANIFEST.json"));
  for (const char *f : {"index.faiss", "vectors.npy", "ids.npy", "features.npy", "MANIFEST.json"})
    EXPECT_TRUE(qv_collection_file_ok((std::string("v000012/") + f).c_str())) << f;
  TempDir tmp;
  Stage st;
  qv_error e{};
  ASSERT_EQ(qv_stage_create(&st.s, tmp.path.c_str(), "demo", nullptr, &e), QV_OK) << e.msg;
  const std::string data = "x";
  for (const char *bad : {"", "../MANIFEST.json", "v000001/../../x", "v00001/index.faiss",
                          "v0000a1/index.faiss", "v000001/other.bin", "v000001/", "wal/seg-1",
                          "MANIFEST.json.tmp", "v000001/index.faiss/x", "/etc/passwd"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(qv_collection_file_ok(bad));
    e = qv_error{};
    EXPECT_EQ(qv_stage_write(st.s, bad, 0, data.data(), data.size(), crc(data), &e), QV_EINVAL);
    EXPECT_NE(std::string(e.msg).find("not part of a collection directory"), std::string::npos)
        << e.msg;
  }
  EXPECT_TRUE(fs::is_empty(qv_stage_dir(st.s))) << "a refused name wrote nothing";
  EXPECT_EQ(qv_stage_files(st.s), 0u);
}

TEST(Stage, AChunkDamagedInTransitOrOutOfOrderIsRefused) {
  TempDir tmp;
  Stage st;
  qv_error e{};
  ASSERT_EQ(qv_stage_create(&st.s, tmp.path.c_str(), "demo", nullptr, &e), QV_OK) << e.msg;
  const std::string a = "first chunk", b = "second chunk";
  EXPECT_EQ(qv_stage_write(st.s, "v000001/ids.npy", 0, a.data(), a.size(), crc(a) ^ 1, &e),
            QV_ECORRUPT);
  EXPECT_NE(std::string(e.msg).find("CRC-32"), std::string::npos) << e.msg;
  EXPECT_FALSE(fs::exists(fs::path(qv_stage_dir(st.s)) / "v000001/ids.npy"))
      << "a damaged chunk is checked before it is written";

  ASSERT_EQ(qv_stage_write(st.s, "v000001/ids.npy", 0, a.data(), a.size(), crc(a), &e), QV_OK)
      << e.msg;
  e = qv_error{};
  EXPECT_EQ(qv_stage_write(st.s, "v000001/ids.npy", 0, b.data(), b.size(), crc(b), &e), QV_EINVAL)
      << "a chunk that does not start where the file ends";
  EXPECT_NE(std::string(e.msg).find("in order"), std::string::npos) << e.msg;
  ASSERT_EQ(qv_stage_write(st.s, "v000001/ids.npy", a.size(), b.data(), b.size(), crc(b), &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(slurp(fs::path(qv_stage_dir(st.s)) / "v000001/ids.npy"), a + b);
  EXPECT_EQ(qv_stage_files(st.s), 1u);
  EXPECT_EQ(qv_stage_bytes(st.s), a.size() + b.size());
}

TEST(Stage, ItsLimitsAreNamedAsTheCallerNamesThem) {
  TempDir tmp;
  qv_error e{};
  qv_stage_limits lim{};
  lim.max_bytes = 10;
  lim.max_bytes_name = "--memory-budget-mb";
  Stage st;
  ASSERT_EQ(qv_stage_create(&st.s, tmp.path.c_str(), "demo", &lim, &e), QV_OK) << e.msg;
  const std::string six = "123456";
  ASSERT_EQ(qv_stage_write(st.s, "MANIFEST.json", 0, six.data(), 6, crc(six), &e), QV_OK);
  EXPECT_EQ(qv_stage_write(st.s, "MANIFEST.json", 6, six.data(), 6, crc(six), &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("--memory-budget-mb"), std::string::npos) << e.msg;
  EXPECT_EQ(fs::file_size(fs::path(qv_stage_dir(st.s)) / "MANIFEST.json"), 6u)
      << "the chunk past the limit was not written";

  qv_stage_limits disk{};
  disk.min_free_bytes = uint64_t(1) << 62; /* more than any disk has */
  disk.min_free_name = "--import-min-free-mb";
  Stage full;
  ASSERT_EQ(qv_stage_create(&full.s, tmp.path.c_str(), "demo", &disk, &e), QV_OK) << e.msg;
  EXPECT_EQ(qv_stage_write(full.s, "MANIFEST.json", 0, six.data(), 6, crc(six), &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("--import-min-free-mb"), std::string::npos) << e.msg;
  EXPECT_FALSE(fs::exists(fs::path(qv_stage_dir(full.s)) / "MANIFEST.json"));
}

TEST(Stage, CleaningRemovesTheStagesAStoppedProcessLeftAndNothingElse) {
  TempDir tmp;
  qv_error e{};
  qv_stage *left = nullptr, *other = nullptr;
  ASSERT_EQ(qv_stage_create(&left, tmp.path.c_str(), "a", nullptr, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_stage_create(&other, tmp.path.c_str(), "b", nullptr, &e), QV_OK) << e.msg;
  const std::string s = "abc";
  ASSERT_EQ(qv_stage_write(left, "MANIFEST.json", 0, s.data(), s.size(), crc(s), &e), QV_OK);
  const std::string d1 = qv_stage_dir(left), d2 = qv_stage_dir(other);
  fs::create_directory(tmp.sub("kept"));
  fs::create_directory(tmp.sub(".hidden"));
  EXPECT_EQ(qv_stage_clean(tmp.path.c_str()), 2u);
  EXPECT_FALSE(fs::exists(d1));
  EXPECT_FALSE(fs::exists(d2));
  EXPECT_TRUE(fs::exists(tmp.sub("kept")));
  EXPECT_TRUE(fs::exists(tmp.sub(".hidden")));
  qv_stage_free(left); /* their directories are gone: freeing them is still safe */
  qv_stage_free(other);
  qv_stage_free(nullptr);
}

TEST(Stage, AParentThatCannotTakeAStageIsAnError) {
  TempDir tmp;
  qv_error e{};
  qv_stage *st = nullptr;
  EXPECT_EQ(qv_stage_create(&st, tmp.sub("missing").c_str(), "demo", nullptr, &e), QV_EIO);
  EXPECT_EQ(st, nullptr);
  EXPECT_NE(std::string(e.msg).find("staging directory"), std::string::npos) << e.msg;
}
