// The write-ahead log: writes survive without a save, a save empties the log, replay skips what
// the snapshot holds, a torn tail is cut and everything before it kept.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"

using qvtest::Col;
using qvtest::stats;
using qvtest::TempDir;

namespace {

const size_t kDim = 8;

std::vector<float> vec_for(int64_t id, float salt) {
  std::vector<float> v(kDim);
  for (size_t t = 0; t < kDim; t++)
    v[t] = float(id) + 0.5f * float(t) + salt;
  return v;
}

void create_saved(Col &col, const std::string &dir, const qv_wal_opts *wo) {
  qv_collection_opts o = qvtest::opts(kDim, "Flat");
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_wal_attach(col.c, dir.c_str(), wo, nullptr, &e), QV_OK) << e.msg;
}

void upsert(qv_collection *c, int64_t id, float salt) {
  std::vector<float> v = vec_for(id, salt);
  qv_error e{};
  ASSERT_EQ(qv_collection_add(c, 1, &id, v.data(), &e), QV_OK) << e.msg;
}

void reopen(Col &col, const std::string &dir, qv_wal_replay *r) {
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&col.c, dir.c_str(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_wal_attach(col.c, dir.c_str(), nullptr, r, &e), QV_OK) << e.msg;
}

void expect_vector(qv_collection *c, int64_t id, float salt) {
  std::vector<float> got(kDim), want = vec_for(id, salt);
  qv_error e{};
  ASSERT_EQ(qv_collection_get(c, id, got.data(), &e), QV_OK) << "id " << id << ": " << e.msg;
  EXPECT_EQ(got, want) << "id " << id;
}

// A saved Flat collection in dir whose log holds ids 0 .. n-1 (salt 0); returns the log's size
// after the first `mark` of them.
uintmax_t logged(const std::string &dir, int64_t mark, int64_t n) {
  uintmax_t at = 0;
  Col col;
  create_saved(col, dir, nullptr);
  for (int64_t id = 0; id < n; id++) {
    if (id == mark)
      at = std::filesystem::file_size(dir + "/wal.log");
    upsert(col.c, id, 0);
  }
  return at;
}

// Flips (xor 0x5a) the byte of path at offset off from whence (SEEK_SET, SEEK_END).
void flip_byte(const std::string &path, long off, int whence) {
  FILE *f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, off, whence);
  int ch = std::fgetc(f);
  std::fseek(f, off, whence);
  std::fputc(ch ^ 0x5a, f);
  std::fclose(f);
}

} // namespace

TEST(Wal, WritesSurviveWithoutASave) {
  for (int always : {1, 0}) {
    SCOPED_TRACE(always ? "sync always" : "sync every 100 ms");
    TempDir tmp;
    std::string dir = tmp.sub("c");
    qv_wal_opts wo;
    qv_wal_opts_init(&wo);
    wo.sync_always = always;
    {
      Col col;
      create_saved(col, dir, &wo);
      for (int64_t id = 0; id < 20; id++)
        upsert(col.c, id, 0);
      upsert(col.c, 5, 100); // replaced
      int64_t gone[2] = {7, 12345};
      size_t deleted = 0;
      qv_error e{};
      ASSERT_EQ(qv_collection_delete(col.c, 2, gone, &deleted, &e), QV_OK);
      EXPECT_EQ(deleted, 1u);
      qv_collection_stats s = stats(col.c);
      EXPECT_EQ(s.wal_records, 22u);
      EXPECT_GT(s.wal_bytes, 20 * kDim * sizeof(float));
    } // closed without a save: only the log has these writes
    Col back;
    qv_wal_replay r{};
    reopen(back, dir, &r);
    EXPECT_EQ(r.records, 22u);
    EXPECT_EQ(r.upserted, 21u);
    EXPECT_EQ(r.deleted, 2u);
    EXPECT_EQ(r.dropped_bytes, 0u);
    EXPECT_EQ(stats(back.c).count, 19u);
    expect_vector(back.c, 5, 100);
    expect_vector(back.c, 19, 0);
    std::vector<float> v(kDim);
    EXPECT_EQ(qv_collection_get(back.c, 7, v.data(), nullptr), QV_ENOTFOUND);
  }
}

TEST(Wal, SaveEmptiesTheLogAndReplaySkipsWhatTheSnapshotHolds) {
  TempDir tmp;
  std::string dir = tmp.sub("c");
  std::string wal = dir + "/wal.log";
  {
    Col col;
    create_saved(col, dir, nullptr);
    for (int64_t id = 0; id < 10; id++)
      upsert(col.c, id, 0);
    // Keep the log as it was before the save, to put it back after (a crash between the
    // manifest switch and the log's truncation).
    std::filesystem::copy_file(wal, tmp.sub("wal.before"));
    qv_error e{};
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
    EXPECT_EQ(std::filesystem::file_size(wal), 0u);
    upsert(col.c, 3, 50); // after the save: only in the log
  }
  {
    Col back;
    qv_wal_replay r{};
    reopen(back, dir, &r);
    EXPECT_EQ(r.records, 1u);
    EXPECT_EQ(stats(back.c).count, 10u);
    expect_vector(back.c, 3, 50);
  }
  // The stale pre-save log: every record is in the snapshot already, none is applied again.
  std::filesystem::copy_file(tmp.sub("wal.before"), wal,
                             std::filesystem::copy_options::overwrite_existing);
  Col again;
  qv_wal_replay r{};
  reopen(again, dir, &r);
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(stats(again.c).count, 10u);
  expect_vector(again.c, 3, 0); // the snapshot's (the later upsert's log was replaced)
}

TEST(Wal, ATornTailIsCutAndEarlierRecordsKept) {
  TempDir tmp;
  std::string dir = tmp.sub("c");
  std::string wal = dir + "/wal.log";
  const uintmax_t after_five = logged(dir, 5, 6);
  uintmax_t full = std::filesystem::file_size(wal);
  ASSERT_GT(full, after_five);
  // The sixth record half written: a crash mid-append.
  std::filesystem::resize_file(wal, after_five + (full - after_five) / 2);
  {
    Col back;
    qv_wal_replay r{};
    reopen(back, dir, &r);
    EXPECT_EQ(r.records, 5u);
    EXPECT_EQ(r.dropped_bytes, (full - after_five) / 2);
    EXPECT_EQ(stats(back.c).count, 5u);
    expect_vector(back.c, 4, 0);
    EXPECT_EQ(std::filesystem::file_size(wal), after_five); // cut at the last good record
    upsert(back.c, 6, 0);                                   // appends continue after the cut
  }
  // A flipped byte inside the last record: its CRC fails, the same way.
  ASSERT_NO_FATAL_FAILURE(flip_byte(wal, -3, SEEK_END));
  Col last;
  qv_wal_replay r{};
  reopen(last, dir, &r);
  EXPECT_EQ(r.records, 5u);
  EXPECT_GT(r.dropped_bytes, 0u);
  std::vector<float> v(kDim);
  EXPECT_EQ(qv_collection_get(last.c, 6, v.data(), nullptr), QV_ENOTFOUND);
  expect_vector(last.c, 4, 0);
}

// Damage in the middle (a flipped byte in a record with whole records after it) is not a torn
// tail: opening fails with a clear error and the log is left as it is, so the acknowledged
// records after the damage are not cut away.
TEST(Wal, DamageInTheMiddleIsRefusedNotCut) {
  TempDir tmp;
  std::string dir = tmp.sub("c");
  std::string wal = dir + "/wal.log";
  const uintmax_t after_two = logged(dir, 2, 5);
  const uintmax_t full = std::filesystem::file_size(wal);
  // Inside the third record's body.
  ASSERT_NO_FATAL_FAILURE(flip_byte(wal, long(after_two) + 20, SEEK_SET));
  Col back;
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(qv_collection_wal_attach(back.c, dir.c_str(), nullptr, nullptr, &e), QV_ECORRUPT);
  EXPECT_NE(std::string(e.msg).find("whole records follow"), std::string::npos) << e.msg;
  EXPECT_EQ(std::filesystem::file_size(wal), full); // nothing cut
}
