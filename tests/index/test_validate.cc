// Collection directories whose manifest sizes and CRC-32s are right but whose index.faiss is
// internally inconsistent (what an outside probe crafted): each is refused at open with
// QV_ECORRUPT naming the flaw, instead of crashing FAISS in a search, an add or a log replay.
// The crafted files are written with FAISS itself, and the manifests are fixed up so that only
// the structure is wrong; a rewrite that changes nothing must still open (the control).
#include <gtest/gtest.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/index_io_c.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/testdata.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"

using qvtest::TempDir;

namespace {

std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string &p, const std::string &s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

// Rewrites the size and crc32 of index.faiss in every manifest of a collection directory.
void fix_manifests(const std::string &dir, const std::string &index_path) {
  uint32_t crc = 0;
  uint64_t size = 0;
  qv_error e{};
  ASSERT_EQ(qv_file_crc32(index_path.c_str(), &crc, &size, &e), QV_OK) << e.msg;
  const std::regex entry("(\"index\\.faiss\": \\{\\s*\"crc32\": )\\d+(,\\s*\"size\": )\\d+");
  int fixed = 0;
  for (auto &p : std::filesystem::recursive_directory_iterator(dir)) {
    if (p.path().filename() != "MANIFEST.json")
      continue;
    std::string m = slurp(p.path());
    std::smatch g;
    ASSERT_TRUE(std::regex_search(m, g, entry)) << "no index.faiss entry in " << p.path();
    std::string n = g.prefix().str() + g[1].str() + std::to_string(crc) + g[2].str() +
                    std::to_string(size) + g.suffix().str();
    spit(p.path(), n);
    fixed++;
  }
  ASSERT_GT(fixed, 0);
}

// A saved collection: n vectors of dim 8, ids 0..n-1, under the spec, built unless told not to;
// returns its index path.
std::string save(const std::string &dir, const char *spec, size_t n = 64, bool build = true) {
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = 8;
  o.spec = spec;
  qv_collection *c = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_OK) << e.msg;
  std::vector<float> x(64 * 8);
  std::vector<int64_t> ids(64);
  for (size_t i = 0; i < 64; i++) {
    ids[i] = int64_t(i);
    for (int t = 0; t < 8; t++)
      x[i * 8 + t] = float((i * 31 + t * 7) % 97);
  }
  if (n > 0) {
    EXPECT_EQ(qv_collection_add(c, n, ids.data(), x.data(), &e), QV_OK) << e.msg;
  }
  if (build) {
    EXPECT_EQ(qv_collection_build(c, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  EXPECT_EQ(qv_collection_save(c, dir.c_str(), &e), QV_OK) << e.msg;
  qv_collection_close(c);
  return dir + "/v000001/index.faiss";
}

// Reads the index, lets `mutate` change it, writes it back and fixes the manifests.
void rewrite(const std::string &dir, const std::string &path,
             const std::function<void(FaissIndex *)> &mutate) {
  FaissIndex *idx = nullptr;
  ASSERT_EQ(faiss_read_index_fname(path.c_str(), 0, &idx), 0);
  mutate(idx);
  ASSERT_EQ(faiss_write_index_fname(idx, path.c_str()), 0);
  faiss_Index_free(idx);
  fix_manifests(dir, path);
}

void expect_opens(const std::string &dir) {
  qv_collection *c = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_collection_open(&c, dir.c_str(), &e), QV_OK) << e.msg;
  qv_collection_close(c);
}

void expect_corrupt(const std::string &dir, const char *needle) {
  qv_collection *c = reinterpret_cast<qv_collection *>(0x1);
  qv_error e{};
  EXPECT_EQ(qv_collection_open(&c, dir.c_str(), &e), QV_ECORRUPT) << e.msg;
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::strstr(e.msg, needle), nullptr) << "message: " << e.msg;
}

class Crafted : public ::testing::Test {
protected:
  TempDir tmp;
};

} // namespace

TEST_F(Crafted, ARewriteThatChangesNothingStillOpens) {
  for (const char *spec : {"Flat", "IVF4,Flat", "HNSW8", "HNSW8,SQ8", "IVF2,PQ4x4fs"}) {
    std::string dir = tmp.sub(std::string("same-") + spec);
    std::string p = save(dir, spec);
    rewrite(dir, p, [](FaissIndex *) {});
    expect_opens(dir);
  }
}

// An IndexIDMap whose id map is shorter than its entries (half, or empty): FAISS read it and then
// searched past the end of the map (SIGSEGV), or freed a corrupted heap at the next upsert.
TEST_F(Crafted, AFlatIndexWithAShortIdMapIsRefused) {
  for (size_t keep : {size_t(32), size_t(0)}) {
    std::string dir = tmp.sub("short-" + std::to_string(keep));
    std::string p = save(dir, "Flat");
    // The id map is the file's tail: a uint64 count, then that many int64 ids.
    std::string b = slurp(p);
    const size_t tail = 8 + 64 * 8;
    ASSERT_GT(b.size(), tail);
    uint64_t n = 0;
    std::memcpy(&n, &b[b.size() - tail], 8);
    ASSERT_EQ(n, 64u) << "unexpected IndexIDMap layout";
    uint64_t k = keep;
    std::memcpy(&b[b.size() - tail], &k, 8);
    b.resize(b.size() - (64 - keep) * 8);
    spit(p, b);
    fix_manifests(dir, p);
    expect_corrupt(dir, "id map");
  }
}

// Ids shifted past the store, negative, or repeated: searches returned ids the collection does
// not hold (recall 0).
TEST_F(Crafted, AFlatIndexWhoseIdsAreNotTheStoresIsRefused) {
  struct Case {
    const char *name, *needle;
    std::function<void(idx_t *, size_t)> f;
  } cases[] = {
      {"shifted", "not among the stored",
       [](idx_t *m, size_t n) {
         for (size_t i = 0; i < n; i++)
           m[i] += 1000;
       }},
      {"negative", "negative", [](idx_t *m, size_t) { m[5] = -3; }},
      {"repeated", "twice", [](idx_t *m, size_t) { m[7] = m[6]; }},
  };
  for (auto &cs : cases) {
    SCOPED_TRACE(cs.name);
    std::string dir = tmp.sub(std::string("ids-") + cs.name);
    std::string p = save(dir, "Flat");
    rewrite(dir, p, [&](FaissIndex *idx) {
      FaissIndexIDMap *m = faiss_IndexIDMap_cast(idx);
      ASSERT_NE(m, nullptr);
      idx_t *map = nullptr;
      size_t n = 0;
      faiss_IndexIDMap_id_map(m, &map, &n);
      ASSERT_EQ(n, 64u);
      cs.f(map, n);
    });
    expect_corrupt(dir, cs.needle);
  }
}

// A coarse quantizer with 5 centroids for 4 lists: a search threw inside an OpenMP region
// (abort), and a log replay's add wrote to list 4 (SIGSEGV in InvertedLists::add_entry).
TEST_F(Crafted, AnIvfIndexWithMoreCentroidsThanListsIsRefused) {
  std::string dir = tmp.sub("centroids");
  std::string p = save(dir, "IVF4,Flat");
  rewrite(dir, p, [](FaissIndex *idx) {
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(idx);
    ASSERT_NE(ivf, nullptr);
    float extra[8] = {500, 500, 500, 500, 500, 500, 500, 500};
    ASSERT_EQ(faiss_Index_add(faiss_IndexIVF_quantizer(ivf), 1, extra), 0);
  });
  expect_corrupt(dir, "coarse quantizer");
}

// IVF lists whose ids are not the store's (re-added under other ids), or that hold an entry twice.
TEST_F(Crafted, AnIvfIndexWhoseListIdsAreNotTheStoresIsRefused) {
  for (int shift : {1000, -1000}) {
    SCOPED_TRACE(shift);
    std::string dir = tmp.sub("ivf-ids" + std::to_string(shift));
    std::string p = save(dir, "IVF4,Flat");
    rewrite(dir, p, [&](FaissIndex *idx) {
      std::vector<float> x(64 * 8);
      std::vector<idx_t> ids(64);
      for (size_t i = 0; i < 64; i++) {
        ids[i] = idx_t(i) + shift; // -1000: negative ids
        for (int t = 0; t < 8; t++)
          x[i * 8 + t] = float((i * 31 + t * 7) % 97);
      }
      ASSERT_EQ(faiss_Index_reset(idx), 0);
      ASSERT_EQ(faiss_Index_add_with_ids(idx, 64, x.data(), ids.data()), 0);
    });
    expect_corrupt(dir, shift > 0 ? "not among the stored" : "negative");
  }
  std::string dir = tmp.sub("ivf-twice");
  std::string p = save(dir, "IVF4,Flat");
  rewrite(dir, p, [&](FaissIndex *idx) {
    std::vector<float> x(64 * 8);
    std::vector<idx_t> ids(64);
    for (size_t i = 0; i < 64; i++) {
      ids[i] = idx_t(i % 32); // each id twice, ntotal still 64
      for (int t = 0; t < 8; t++)
        x[i * 8 + t] = float((i * 31 + t * 7) % 97);
    }
    ASSERT_EQ(faiss_Index_reset(idx), 0);
    ASSERT_EQ(faiss_Index_add_with_ids(idx, 64, x.data(), ids.data()), 0);
  });
  expect_corrupt(dir, "twice");
}

// Byte-level crafting, below what FAISS's own writer can produce: FAISS's reader allocates every
// count it reads (a list size, a vector length, nlist) before it finds the file too short, so
// these are refused by the walk over the file that runs before FAISS reads it.
namespace {

// Offsets in an IVF4,Flat index.faiss of dim 8 (faiss/impl/index_write.cpp): fourcc 4, header
// d 4 + ntotal 8 + 2 dummies 16 + is_trained 1 + metric 4 = 37, so nlist is at byte 37.
constexpr size_t kIvfNlist = 4 + 4 + 8 + 8 + 8 + 1 + 4;

void patch(const std::string &dir, const std::string &path,
           const std::function<void(std::string &)> &edit) {
  std::string b = slurp(path);
  edit(b);
  spit(path, b);
  fix_manifests(dir, path);
}

} // namespace

TEST_F(Crafted, AnIvfFileWhoseCountsRunPastItsEndIsRefusedBeforeFaissReadsIt) {
  struct Case {
    const char *name;
    std::function<void(std::string &)> edit;
    const char *needle;
  };
  const uint64_t huge = uint64_t(1) << 36; // FAISS would reserve 512 GiB of list headers
  std::vector<Case> cases = {
      {"nlist", [&](std::string &b) { std::memcpy(&b[kIvfNlist], &huge, 8); }, "nlist"},
      // The legacy "IvFl" layout reads one id vector per list, sized by nlist, before anything.
      {"legacy", [](std::string &b) { b[1] = 'v'; }, "not an IVF layout"},
      {"truncated", [](std::string &b) { b.resize(b.size() - 9); }, "past the end"},
      {"trailing", [](std::string &b) { b += "junk"; }, "left over"},
      {"list-size",
       [&](std::string &b) {
         // The first list size sits after the lists' header: find it from the end instead:
         // codes and ids of 64 entries (8 floats + 1 id each) end the file.
         const size_t sizes_end = b.size() - 64 * (8 * 4 + 8);
         std::memcpy(&b[sizes_end - 4 * 8], &huge, 8);
       },
       "more entries"},
  };
  for (auto &c : cases) {
    SCOPED_TRACE(c.name);
    std::string dir = tmp.sub(std::string("bytes-") + c.name);
    std::string p = save(dir, "IVF4,Flat");
    patch(dir, p, c.edit);
    expect_corrupt(dir, c.needle);
  }
}

TEST_F(Crafted, AFlatFileWhoseIdMapLengthRunsPastItsEndIsRefused) {
  std::string dir = tmp.sub("flat-bytes");
  std::string p = save(dir, "Flat");
  patch(dir, p, [](std::string &b) {
    const uint64_t huge = uint64_t(1) << 39; // READVECTOR's own bound is 2^40 elements
    std::memcpy(&b[b.size() - 64 * 8 - 8], &huge, 8);
  });
  expect_corrupt(dir, "past the end");
}

// Collections saved before any build (an IVF index untrained and empty, a Flat one empty) and
// after vectors but no build: the walk over the file must let every state a save writes through.
// (It refused an empty IVF file, so a collection created just before a kill -9 was not served.)
TEST_F(Crafted, EveryStateASaveWritesOpensAgain) {
  for (const char *spec :
       {"Flat", "IVF4,Flat", "IVF4,SQ8", "IVF4,PQ4", "HNSW8", "HNSW8,SQ8", "IVF2,PQ4x4fs"}) {
    for (int n : {0, 64}) {
      SCOPED_TRACE(std::string(spec) + " with " + std::to_string(n) + " vectors, not built");
      std::string dir = tmp.sub(std::string("unbuilt-") + spec + std::to_string(n));
      save(dir, spec, size_t(n), false);
      expect_opens(dir);
    }
  }
}

// A graph index (HNSW) is walked link by link: a link to a node that does not exist would be
// followed by FAISS's search into memory past the graph.
TEST_F(Crafted, AGraphFileWithALinkOutsideTheGraphIsRefused) {
  struct Case {
    const char *name;
    std::function<void(std::string &)> edit;
    const char *needle;
  };
  // The file ends with the graph's last link, five ints (entry point, top level, efConstruction,
  // efSearch, upper beam), the flat storage (fourcc, header, a word count, 64 x 8 floats) and the
  // id map (a length, 64 ids).
  const size_t tail = 20 + (4 + 33 + 8 + 64 * 8 * 4) + (8 + 64 * 8);
  std::vector<Case> cases = {
      {"link",
       [&](std::string &b) {
         const int32_t far = 1000000;
         std::memcpy(&b[b.size() - tail - 4], &far, 4);
       },
       "outside the graph"},
      {"entry",
       [&](std::string &b) {
         const int32_t far = 64;
         std::memcpy(&b[b.size() - tail], &far, 4);
       },
       "entry point"},
      {"storage", [&](std::string &b) { b[b.size() - tail + 20 + 2] = 'Z'; }, "flat index"},
      {"truncated", [](std::string &b) { b.resize(b.size() - 9); }, "past the end"},
  };
  for (auto &c : cases) {
    SCOPED_TRACE(c.name);
    std::string dir = tmp.sub(std::string("graph-") + c.name);
    std::string p = save(dir, "HNSW8");
    patch(dir, p, c.edit);
    expect_corrupt(dir, c.needle);
  }
  // The same file untouched opens (the offsets above are right).
  std::string dir = tmp.sub("graph-control");
  std::string p = save(dir, "HNSW8");
  patch(dir, p, [](std::string &) {});
  expect_opens(dir);
}

// A fast-scan IVF's block lists: codes that do not fill their blocks, or more ids than the index
// counts, are refused before FAISS reads them.
TEST_F(Crafted, AFastScanFileWhoseBlocksDoNotAddUpIsRefused) {
  std::string dir = tmp.sub("fs-blocks");
  std::string p = save(dir, "IVF2,PQ4x4fs");
  // The last list ends the file: its codes' length (a size_t), then the codes, in blocks of
  // 32 x M2 / 2 = 32 bytes. Drop one block and say so in the length: the file is consistent,
  // but the list's 32 ids no longer have their codes.
  patch(dir, p, [](std::string &b) {
    for (uint64_t nc = 32; nc <= 64 * 32; nc += 32) {
      uint64_t got;
      std::memcpy(&got, &b[b.size() - nc - 8], 8);
      if (got == nc) {
        const uint64_t less = nc - 32;
        std::memcpy(&b[b.size() - nc - 8], &less, 8);
        b.resize(b.size() - 32);
        return;
      }
    }
    ADD_FAILURE() << "the last list's codes were not found";
  });
  expect_corrupt(dir, "do not fill its blocks");
}
