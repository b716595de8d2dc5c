// Tests for quiver/vecfile.h: reading .fvecs/.ivecs/.bvecs/.npy, writing .npy/.ivecs/.fvecs, and
// refusing every malformed or unsupported file with the documented status.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/scratch.h"
#include "quiver/fsutil.h"
#include "quiver/status.h"
#include "quiver/vecfile.h"

namespace {

class VecfileTest : public qvtest::ScratchDirTest {
protected:
  VecfileTest() : ScratchDirTest("quiver_test_vecfile_") {}

  static std::string ReadRaw(const std::string &p) {
    std::string s;
    FILE *f = std::fopen(p.c_str(), "rb");
    if (f == nullptr)
      return s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      s.append(buf, n);
    std::fclose(f);
    return s;
  }
  size_t CountEntries() const {
    size_t n = 0;
    DIR *dp = opendir(dir_.c_str());
    if (dp == nullptr)
      return 0;
    while (struct dirent *e = readdir(dp))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        n++;
    closedir(dp);
    return n;
  }

  // Opens `path` expecting `want`; on failure also checks that *out is NULL, err carries the code,
  // and the message names the file. Returns the handle (NULL unless want == QV_OK).
  qv_vecfile *Open(const std::string &path, qv_status want) {
    qv_vecfile *f = reinterpret_cast<qv_vecfile *>(0x1);
    qv_error_clear(&err_);
    qv_status st = qv_vecfile_open(&f, path.c_str(), &err_);
    EXPECT_EQ(st, want) << qv_status_name(st) << ": " << err_.msg;
    if (st != QV_OK) {
      EXPECT_EQ(f, nullptr);
      EXPECT_EQ(err_.code, st);
      EXPECT_NE(std::strstr(err_.msg, path.c_str()), nullptr) << err_.msg;
      // NULL err gives the same answer
      qv_vecfile *g = nullptr;
      EXPECT_EQ(qv_vecfile_open(&g, path.c_str(), nullptr), st);
      EXPECT_EQ(g, nullptr);
      return nullptr;
    }
    EXPECT_NE(f, nullptr);
    return f;
  }
};

template <typename T>
std::string Bytes(const std::vector<T> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
}

std::string I32(int32_t v) {
  return std::string(reinterpret_cast<const char *>(&v), 4);
}

// One *vecs row: int32 dim, then the values.
template <typename T>
std::string VecsRow(const std::vector<T> &vals, int32_t dim) {
  return I32(dim) + Bytes(vals);
}
template <typename T>
std::string VecsRow(const std::vector<T> &vals) {
  return VecsRow(vals, static_cast<int32_t>(vals.size()));
}

// A .npy file: magic, version major.0, header length (uint16 for 1.x, uint32 otherwise), the dict
// padded with spaces to a 64-byte boundary plus '\n', then `data`.
std::string Npy(const std::string &dict, const std::string &data, int major = 1) {
  const size_t pre = major == 1 ? 10 : 12;
  std::string h = dict;
  while ((pre + h.size() + 1) % 64 != 0)
    h.push_back(' ');
  h.push_back('\n');
  std::string s("\x93NUMPY", 6);
  s.push_back(static_cast<char>(major));
  s.push_back('\0');
  uint32_t n = static_cast<uint32_t>(h.size());
  s.push_back(static_cast<char>(n & 0xff));
  s.push_back(static_cast<char>((n >> 8) & 0xff));
  if (major != 1) {
    s.push_back(static_cast<char>((n >> 16) & 0xff));
    s.push_back(static_cast<char>((n >> 24) & 0xff));
  }
  return s + h + data;
}

// ---- round trips ----------------------------------------------------------------------------

TEST_F(VecfileTest, NpyF32RoundTrip) {
  const size_t rows = 5, cols = 7;
  std::vector<float> v(rows * cols);
  for (size_t i = 0; i < v.size(); i++)
    v[i] = static_cast<float>(i) * 0.25f - 3.5f;
  v[3] = std::numeric_limits<float>::infinity();
  v[4] = -0.0f;
  v[5] = 1e-40f; // subnormal float32
  const std::string path = P("m.npy");
  ASSERT_EQ(qv_npy_write(path.c_str(), QV_DTYPE_F32, rows, cols, v.data(), &err_), QV_OK)
      << err_.msg;
  EXPECT_EQ(CountEntries(), 1u); // no temp file left behind

  // The header: format 1.0, data on a 64-byte boundary, '\n' before the data.
  std::string raw = ReadRaw(path);
  ASSERT_GE(raw.size(), 10u);
  EXPECT_EQ(raw.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  size_t hlen = static_cast<unsigned char>(raw[8]) | (static_cast<unsigned char>(raw[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  EXPECT_EQ(raw[10 + hlen - 1], '\n');
  EXPECT_NE(raw.find("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 7), }"),
            std::string::npos);
  EXPECT_EQ(raw.size(), 10 + hlen + v.size() * 4);

  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), rows);
  EXPECT_EQ(qv_vecfile_cols(f), cols);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_F32);
  EXPECT_EQ(qv_vecfile_format_of(f), QV_VECFILE_NPY);
  EXPECT_STREQ(qv_vecfile_path(f), path.c_str());
  std::vector<float> got(rows * cols, 42.0f);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, rows, got.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(std::memcmp(got.data(), v.data(), v.size() * 4), 0);
  // a sub-range
  std::vector<float> part(2 * cols);
  ASSERT_EQ(qv_vecfile_read_f32(f, 3, 2, part.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(std::memcmp(part.data(), v.data() + 3 * cols, part.size() * 4), 0);
  // n == 0 with out == NULL is fine, also at the end
  EXPECT_EQ(qv_vecfile_read_f32(f, rows, 0, nullptr, &err_), QV_OK) << err_.msg;
  // read_i64 refuses a float file, naming the dtype
  std::vector<int64_t> i(cols);
  EXPECT_EQ(qv_vecfile_read_i64(f, 0, 1, i.data(), &err_), QV_EINVAL);
  EXPECT_NE(std::strstr(err_.msg, "f32"), nullptr) << err_.msg;
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyI32RoundTrip) {
  std::vector<int32_t> v = {0,  1,        -1, std::numeric_limits<int32_t>::max(),
                            -7, 16777217, 5,  std::numeric_limits<int32_t>::min()};
  const std::string path = P("ids.npy");
  ASSERT_EQ(qv_npy_write(path.c_str(), QV_DTYPE_I32, 2, 4, v.data(), &err_), QV_OK) << err_.msg;
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 2u);
  EXPECT_EQ(qv_vecfile_cols(f), 4u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_I32);
  std::vector<int64_t> got(8);
  ASSERT_EQ(qv_vecfile_read_i64(f, 0, 2, got.data(), &err_), QV_OK) << err_.msg;
  for (size_t k = 0; k < v.size(); k++)
    EXPECT_EQ(got[k], v[k]) << k;
  std::vector<float> fl(4);
  ASSERT_EQ(qv_vecfile_read_f32(f, 1, 1, fl.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(fl[0], -7.0f);
  EXPECT_EQ(fl[1], 16777216.0f); // nearest float32
  EXPECT_EQ(fl[2], 5.0f);
  EXPECT_EQ(fl[3], -2147483648.0f);
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyI64RoundTripAndOneDimensional) {
  std::vector<int64_t> v = {0,
                            -1,
                            (int64_t)1 << 40,
                            std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<int64_t>::min(),
                            123};
  const std::string path = P("labels.npy");
  ASSERT_EQ(qv_npy_write(path.c_str(), QV_DTYPE_I64, v.size(), 0, v.data(), &err_), QV_OK)
      << err_.msg;
  EXPECT_NE(ReadRaw(path).find("'shape': (6,), }"), std::string::npos);
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 6u);
  EXPECT_EQ(qv_vecfile_cols(f), 1u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_I64);
  std::vector<int64_t> got(6);
  ASSERT_EQ(qv_vecfile_read_i64(f, 0, 6, got.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(got, v);
  float x = 0;
  ASSERT_EQ(qv_vecfile_read_f32(f, 2, 1, &x, &err_), QV_OK) << err_.msg;
  EXPECT_EQ(x, 1099511627776.0f);
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyWriteZeroRowsAndErrors) {
  const std::string path = P("empty.npy");
  ASSERT_EQ(qv_npy_write(path.c_str(), QV_DTYPE_F32, 0, 16, nullptr, &err_), QV_OK) << err_.msg;
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 0u);
  EXPECT_EQ(qv_vecfile_cols(f), 16u);
  EXPECT_EQ(qv_vecfile_read_f32(f, 0, 0, nullptr, &err_), QV_OK) << err_.msg;
  float x;
  EXPECT_EQ(qv_vecfile_read_f32(f, 0, 1, &x, &err_), QV_EINVAL);
  qv_vecfile_close(f);

  uint16_t h[2] = {0, 0};
  EXPECT_EQ(qv_npy_write(P("h.npy").c_str(), QV_DTYPE_F16, 1, 2, h, &err_), QV_EINVAL);
  EXPECT_EQ(qv_npy_write(P("n.npy").c_str(), QV_DTYPE_F32, 2, 2, nullptr, &err_), QV_EINVAL);
  EXPECT_EQ(qv_npy_write(nullptr, QV_DTYPE_F32, 1, 1, h, &err_), QV_EINVAL);
  EXPECT_EQ(qv_npy_write(P("no/dir/x.npy").c_str(), QV_DTYPE_F32, 1, 1, h, &err_), QV_EIO);
  EXPECT_EQ(CountEntries(), 1u);
}

TEST_F(VecfileTest, FvecsRoundTrip) {
  const size_t rows = 4, cols = 3;
  std::vector<float> v = {1, 2, 3, 4.5f, -5, 6, 0, 0, 0, 1e30f, -1e-30f, 7};
  const std::string path = P("base.fvecs");
  ASSERT_EQ(qv_fvecs_write(path.c_str(), rows, cols, v.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(CountEntries(), 1u);
  std::string expect;
  for (size_t r = 0; r < rows; r++)
    expect += VecsRow(std::vector<float>(v.begin() + r * cols, v.begin() + (r + 1) * cols));
  EXPECT_EQ(ReadRaw(path), expect);

  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), rows);
  EXPECT_EQ(qv_vecfile_cols(f), cols);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_F32);
  EXPECT_EQ(qv_vecfile_format_of(f), QV_VECFILE_FVECS);
  std::vector<float> got(rows * cols);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, rows, got.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(got, v);
  std::vector<float> two(2 * cols);
  ASSERT_EQ(qv_vecfile_read_f32(f, 2, 2, two.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(two, std::vector<float>(v.begin() + 2 * cols, v.end()));
  int64_t i;
  EXPECT_EQ(qv_vecfile_read_i64(f, 0, 1, &i, &err_), QV_EINVAL);
  EXPECT_NE(std::strstr(err_.msg, "f32"), nullptr) << err_.msg;
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, FvecsLargeRoundTrip) {
  // More than the writer's 1 MiB staging buffer, and rows larger than it.
  for (size_t cols : {size_t(100), size_t(300000)}) {
    const size_t rows = cols == 100 ? 3000 : 3;
    std::vector<float> v(rows * cols);
    for (size_t k = 0; k < v.size(); k++)
      v[k] = static_cast<float>(k % 1000);
    const std::string path = P("big.fvecs");
    ASSERT_EQ(qv_fvecs_write(path.c_str(), rows, cols, v.data(), &err_), QV_OK) << err_.msg;
    qv_vecfile *f = Open(path, QV_OK);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(qv_vecfile_rows(f), rows);
    EXPECT_EQ(qv_vecfile_cols(f), cols);
    std::vector<float> got(v.size());
    ASSERT_EQ(qv_vecfile_read_f32(f, 0, rows, got.data(), &err_), QV_OK) << err_.msg;
    EXPECT_TRUE(got == v);
    qv_vecfile_close(f);
  }
}

TEST_F(VecfileTest, IvecsRoundTrip) {
  std::vector<int32_t> v = {5, 4, 3, 2, 1, -1, 0, std::numeric_limits<int32_t>::max()};
  const std::string path = P("gt.ivecs");
  ASSERT_EQ(qv_ivecs_write(path.c_str(), 2, 4, v.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(ReadRaw(path), VecsRow(std::vector<int32_t>(v.begin(), v.begin() + 4)) +
                               VecsRow(std::vector<int32_t>(v.begin() + 4, v.end())));
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 2u);
  EXPECT_EQ(qv_vecfile_cols(f), 4u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_I32);
  EXPECT_EQ(qv_vecfile_format_of(f), QV_VECFILE_IVECS);
  std::vector<int64_t> got(8);
  ASSERT_EQ(qv_vecfile_read_i64(f, 0, 2, got.data(), &err_), QV_OK) << err_.msg;
  for (size_t k = 0; k < v.size(); k++)
    EXPECT_EQ(got[k], v[k]);
  std::vector<float> fl(4);
  ASSERT_EQ(qv_vecfile_read_f32(f, 1, 1, fl.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(fl, (std::vector<float>{1, -1, 0, 2147483648.0f}));
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, VecsWriteErrors) {
  int32_t one = 1;
  EXPECT_EQ(qv_ivecs_write(P("a.ivecs").c_str(), 1, 0, &one, &err_), QV_EINVAL);
  EXPECT_EQ(qv_ivecs_write(P("a.ivecs").c_str(), 1, 1, nullptr, &err_), QV_EINVAL);
  EXPECT_EQ(qv_fvecs_write(nullptr, 1, 1, reinterpret_cast<float *>(&one), &err_), QV_EINVAL);
  EXPECT_EQ(qv_fvecs_write(P("x/y.fvecs").c_str(), 1, 1, reinterpret_cast<float *>(&one), &err_),
            QV_EIO);
  EXPECT_EQ(CountEntries(), 0u);
  // zero rows: an empty file, which reads back as 0 x 0
  ASSERT_EQ(qv_fvecs_write(P("e.fvecs").c_str(), 0, 0, nullptr, &err_), QV_OK) << err_.msg;
  qv_vecfile *f = Open(P("e.fvecs"), QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 0u);
  EXPECT_EQ(qv_vecfile_cols(f), 0u);
  EXPECT_EQ(qv_vecfile_read_f32(f, 0, 0, nullptr, &err_), QV_OK);
  qv_vecfile_close(f);
}

// ---- hand-built files -----------------------------------------------------------------------

TEST_F(VecfileTest, NpyFloat16KnownValues) {
  const std::vector<uint16_t> h = {
      0x3C00, // 1.0
      0xC000, // -2.0
      0x3555, // 0.333251953125
      0x7BFF, // 65504, the largest half
      0x0400, // 2^-14, the smallest normal
      0x0001, // 2^-24, the smallest subnormal
      0x03FF, // 1023 * 2^-24, the largest subnormal
      0x8001, // -2^-24
      0x7C00, // +inf
      0xFC00, // -inf
      0x8000, // -0.0
      0x7E00, // NaN
  };
  const std::string path = P("half.NPY"); // extension is case-insensitive
  WriteRaw(path, Npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 6), }", Bytes(h)));
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_rows(f), 2u);
  EXPECT_EQ(qv_vecfile_cols(f), 6u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_F16);
  std::vector<float> g(12);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, 2, g.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], -2.0f);
  EXPECT_EQ(g[2], 0.333251953125f);
  EXPECT_EQ(g[3], 65504.0f);
  EXPECT_EQ(g[4], std::ldexp(1.0f, -14));
  EXPECT_EQ(g[5], std::ldexp(1.0f, -24));
  EXPECT_EQ(g[6], std::ldexp(1023.0f, -24));
  EXPECT_EQ(g[7], -std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(g[8]) && g[8] > 0);
  EXPECT_TRUE(std::isinf(g[9]) && g[9] < 0);
  EXPECT_EQ(g[10], 0.0f);
  EXPECT_TRUE(std::signbit(g[10]));
  EXPECT_TRUE(std::isnan(g[11]));
  // second row alone
  std::vector<float> r1(6);
  ASSERT_EQ(qv_vecfile_read_f32(f, 1, 1, r1.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(r1[0], std::ldexp(1023.0f, -24));
  int64_t i;
  EXPECT_EQ(qv_vecfile_read_i64(f, 0, 1, &i, &err_), QV_EINVAL);
  EXPECT_NE(std::strstr(err_.msg, "f16"), nullptr) << err_.msg;
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyFloat16EveryValueMatchesReference) {
  // All 65536 half values against a straightforward arithmetic decoding.
  std::vector<uint16_t> h(65536);
  for (size_t k = 0; k < h.size(); k++)
    h[k] = static_cast<uint16_t>(k);
  const std::string path = P("allhalf.npy");
  WriteRaw(path, Npy("{'descr': '<f2', 'fortran_order': False, 'shape': (65536,), }", Bytes(h)));
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  std::vector<float> g(65536);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, 65536, g.data(), &err_), QV_OK) << err_.msg;
  for (uint32_t k = 0; k < 65536; k++) {
    const int e = (k >> 10) & 0x1f;
    const int m = k & 0x3ff;
    const bool neg = (k & 0x8000) != 0;
    if (e == 31) {
      if (m == 0)
        ASSERT_TRUE(std::isinf(g[k]) && std::signbit(g[k]) == neg) << k;
      else
        ASSERT_TRUE(std::isnan(g[k])) << k;
      continue;
    }
    double ref =
        e == 0 ? std::ldexp(static_cast<double>(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
    if (neg)
      ref = -ref;
    ASSERT_EQ(static_cast<double>(g[k]), ref) << k;
    ASSERT_EQ(std::signbit(g[k]), neg) << k;
  }
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyUint8) {
  std::vector<uint8_t> v = {0, 1, 127, 128, 254, 255};
  const std::string path = P("u8.npy");
  WriteRaw(path, Npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", Bytes(v)));
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_U8);
  EXPECT_EQ(qv_vecfile_rows(f), 2u);
  EXPECT_EQ(qv_vecfile_cols(f), 3u);
  std::vector<float> g(6);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, 2, g.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(g, (std::vector<float>{0, 1, 127, 128, 254, 255}));
  std::vector<int64_t> i(3);
  ASSERT_EQ(qv_vecfile_read_i64(f, 1, 1, i.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(i, (std::vector<int64_t>{128, 254, 255}));
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, Bvecs) {
  const std::string path = P("b.bvecs");
  WriteRaw(path,
           VecsRow(std::vector<uint8_t>{1, 2, 255}) + VecsRow(std::vector<uint8_t>{0, 9, 128}));
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(qv_vecfile_format_of(f), QV_VECFILE_BVECS);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_U8);
  EXPECT_EQ(qv_vecfile_rows(f), 2u);
  EXPECT_EQ(qv_vecfile_cols(f), 3u);
  std::vector<float> g(6);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, 2, g.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(g, (std::vector<float>{1, 2, 255, 0, 9, 128}));
  std::vector<int64_t> i(3);
  ASSERT_EQ(qv_vecfile_read_i64(f, 1, 1, i.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(i, (std::vector<int64_t>{0, 9, 128}));
  qv_vecfile_close(f);
}

TEST_F(VecfileTest, NpyVersion2And3Headers) {
  std::vector<int32_t> v = {1, 2, 3, 4, 5, 6};
  // Odd key order, extra whitespace, double quotes, trailing commas everywhere.
  const std::string dict =
      "{ \"shape\" : ( 2 , 3 , ) ,  'fortran_order':False,'descr':   '<i4' , }";
  for (int major : {2, 3}) {
    const std::string path = P("v" + std::to_string(major) + ".npy");
    WriteRaw(path, Npy(dict, Bytes(v), major));
    qv_vecfile *f = Open(path, QV_OK);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(qv_vecfile_rows(f), 2u);
    EXPECT_EQ(qv_vecfile_cols(f), 3u);
    std::vector<int64_t> g(6);
    ASSERT_EQ(qv_vecfile_read_i64(f, 0, 2, g.data(), &err_), QV_OK) << err_.msg;
    EXPECT_EQ(g, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
    qv_vecfile_close(f);
  }
}

TEST_F(VecfileTest, NpyShapeVariants) {
  struct Case {
    const char *shape;
    size_t rows, cols;
  } cases[] = {{"(6,)", 6, 1},  {"(2, 3)", 2, 3}, {"(3, 2,)", 3, 2},
               {"(6L,)", 6, 1}, {"(0, 4)", 0, 4}, {"(0,)", 0, 1}};
  for (const Case &c : cases) {
    const size_t n = c.rows * c.cols;
    std::vector<float> v(n);
    for (size_t k = 0; k < n; k++)
      v[k] = static_cast<float>(k);
    const std::string path = P("s.npy");
    WriteRaw(path,
             Npy(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + c.shape + "}",
                 Bytes(v)));
    qv_vecfile *f = Open(path, QV_OK);
    ASSERT_NE(f, nullptr) << c.shape;
    EXPECT_EQ(qv_vecfile_rows(f), c.rows) << c.shape;
    EXPECT_EQ(qv_vecfile_cols(f), c.cols) << c.shape;
    std::vector<float> g(n);
    ASSERT_EQ(qv_vecfile_read_f32(f, 0, c.rows, g.data(), &err_), QV_OK) << err_.msg;
    EXPECT_EQ(g, v);
    qv_vecfile_close(f);
  }
}

TEST_F(VecfileTest, EmptyVecsFileIsZeroByZero) {
  for (const char *name : {"e.fvecs", "e.ivecs", "e.bvecs"}) {
    WriteRaw(P(name), "");
    qv_vecfile *f = Open(P(name), QV_OK);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(qv_vecfile_rows(f), 0u);
    EXPECT_EQ(qv_vecfile_cols(f), 0u);
    qv_vecfile_close(f);
  }
}

// ---- refusals -------------------------------------------------------------------------------

TEST_F(VecfileTest, TruncatedFvecs) {
  const std::string row = VecsRow(std::vector<float>{1, 2, 3});
  WriteRaw(P("t.fvecs"), row + row.substr(0, 9));
  Open(P("t.fvecs"), QV_ECORRUPT);
  EXPECT_NE(std::strstr(err_.msg, "truncated"), nullptr) << err_.msg;
  WriteRaw(P("t2.fvecs"), row + row.substr(0, 2)); // not even the next row's dim
  Open(P("t2.fvecs"), QV_ECORRUPT);
  EXPECT_NE(std::strstr(err_.msg, "truncated"), nullptr) << err_.msg;
  WriteRaw(P("t3.fvecs"), std::string("\x03\x00", 2)); // shorter than one dim
  Open(P("t3.fvecs"), QV_ECORRUPT);
}

TEST_F(VecfileTest, FvecsDifferingDims) {
  WriteRaw(P("d.fvecs"), VecsRow(std::vector<float>{1, 2}) + VecsRow(std::vector<float>{1, 2, 3}));
  Open(P("d.fvecs"), QV_ECORRUPT);
  EXPECT_NE(std::strstr(err_.msg, "dimension"), nullptr) << err_.msg;
  // The same length overall, but the second row claims another dim.
  WriteRaw(P("d2.ivecs"),
           VecsRow(std::vector<int32_t>{1, 2}) + VecsRow(std::vector<int32_t>{1, 2}, 1) + I32(0));
  Open(P("d2.ivecs"), QV_ECORRUPT);
}

TEST_F(VecfileTest, ZeroOrNegativeDim) {
  WriteRaw(P("z.fvecs"), I32(0));
  Open(P("z.fvecs"), QV_ECORRUPT);
  WriteRaw(P("z2.fvecs"), I32(0) + I32(0) + I32(0));
  Open(P("z2.fvecs"), QV_ECORRUPT);
  WriteRaw(P("neg.ivecs"), I32(-1) + I32(5));
  Open(P("neg.ivecs"), QV_ECORRUPT);
  WriteRaw(P("huge.bvecs"), I32(std::numeric_limits<int32_t>::max()) + "abc");
  Open(P("huge.bvecs"), QV_ECORRUPT);
}

TEST_F(VecfileTest, NpyBadMagic) {
  std::string good = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", I32(0));
  std::string bad = good;
  bad[1] = 'X';
  WriteRaw(P("m.npy"), bad);
  Open(P("m.npy"), QV_ECORRUPT);
  WriteRaw(P("short.npy"), "\x93NUM");
  Open(P("short.npy"), QV_ECORRUPT);
  WriteRaw(P("empty.npy"), "");
  Open(P("empty.npy"), QV_ECORRUPT);
  // an unknown format version is unsupported, not corrupt
  std::string v9 = good;
  v9[6] = 9;
  WriteRaw(P("v9.npy"), v9);
  Open(P("v9.npy"), QV_EUNSUPPORTED);
}

TEST_F(VecfileTest, NpyFortranOrder) {
  WriteRaw(P("f.npy"), Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                           std::string(16, '\0')));
  Open(P("f.npy"), QV_EUNSUPPORTED);
  EXPECT_NE(std::strstr(err_.msg, "Fortran"), nullptr) << err_.msg;
}

TEST_F(VecfileTest, NpyRank) {
  WriteRaw(P("3d.npy"), Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }",
                            std::string(32, '\0')));
  Open(P("3d.npy"), QV_EUNSUPPORTED);
  WriteRaw(P("0d.npy"),
           Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", std::string(4, '\0')));
  Open(P("0d.npy"), QV_EUNSUPPORTED);
}

TEST_F(VecfileTest, NpyBigEndianAndOtherDtypes) {
  WriteRaw(P("be.npy"),
           Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0')));
  Open(P("be.npy"), QV_EUNSUPPORTED);
  EXPECT_NE(std::strstr(err_.msg, "big-endian"), nullptr) << err_.msg;
  for (const char *d : {"<f8", "|i1", "<u1", "<u4", "<c8", "|b1", "O"}) {
    WriteRaw(P("d.npy"),
             Npy(std::string("{'descr': '") + d + "', 'fortran_order': False, 'shape': (1,), }",
                 std::string(8, '\0')));
    Open(P("d.npy"), QV_EUNSUPPORTED);
    EXPECT_NE(std::strstr(err_.msg, d), nullptr) << d << ": " << err_.msg;
  }
  WriteRaw(P("rec.npy"), Npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                             std::string(4, '\0')));
  Open(P("rec.npy"), QV_EUNSUPPORTED);
}

TEST_F(VecfileTest, NpyDataLengthMustMatch) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  WriteRaw(P("short.npy"), Npy(dict, std::string(23, '\0')));
  Open(P("short.npy"), QV_ECORRUPT);
  EXPECT_NE(std::strstr(err_.msg, "truncated"), nullptr) << err_.msg;
  WriteRaw(P("long.npy"), Npy(dict, std::string(25, '\0')));
  Open(P("long.npy"), QV_ECORRUPT);
  WriteRaw(P("none.npy"), Npy(dict, ""));
  Open(P("none.npy"), QV_ECORRUPT);
  // a shape whose byte size overflows
  WriteRaw(
      P("ovf.npy"),
      Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", ""));
  Open(P("ovf.npy"), QV_ECORRUPT);
  WriteRaw(
      P("ovf2.npy"),
      Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", ""));
  Open(P("ovf2.npy"), QV_ECORRUPT);
}

TEST_F(VecfileTest, NpyHeaderLengthPastEof) {
  std::string s = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "");
  s[8] = static_cast<char>(0xff);
  s[9] = static_cast<char>(0x7f);
  WriteRaw(P("h.npy"), s);
  Open(P("h.npy"), QV_ECORRUPT);
  EXPECT_NE(std::strstr(err_.msg, "header length"), nullptr) << err_.msg;
  // version 2 with a 4-byte length past EOF
  std::string s2 = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "", 2);
  s2[11] = 1;
  WriteRaw(P("h2.npy"), s2);
  Open(P("h2.npy"), QV_ECORRUPT);
}

TEST_F(VecfileTest, NpyGarbageHeader) {
  const char *dicts[] = {
      "garbage",
      "",
      "{'descr': '<f4', 'fortran_order': False}",                                // no shape
      "{'descr': '<f4', 'shape': (1,)}",                                         // no order
      "{'fortran_order': False, 'shape': (1,)}",                                 // no descr
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",     // unknown key
      "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", // repeated
      "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
      "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} trailing",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
      "{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
  };
  for (const char *d : dicts) {
    WriteRaw(P("g.npy"), Npy(d, std::string(4, '\0')));
    Open(P("g.npy"), QV_ECORRUPT);
    EXPECT_NE(std::strstr(err_.msg, "header"), nullptr) << d << ": " << err_.msg;
  }
}

TEST_F(VecfileTest, UnknownExtension) {
  for (const char *name : {"v.txt", "noext", "v.fvecs.bak", "v.npz", "dir.npy/file"}) {
    const std::string path = P(name);
    qv_vecfile *f = reinterpret_cast<qv_vecfile *>(0x1);
    EXPECT_EQ(qv_vecfile_open(&f, path.c_str(), &err_), QV_EINVAL) << name;
    EXPECT_EQ(f, nullptr);
    EXPECT_NE(std::strstr(err_.msg, ".fvecs"), nullptr) << err_.msg;
    EXPECT_NE(std::strstr(err_.msg, ".npy"), nullptr) << err_.msg;
  }
}

TEST_F(VecfileTest, MissingFileAndBadArguments) {
  Open(P("missing.fvecs"), QV_EIO);
  Open(P("missing.npy"), QV_EIO);
  ASSERT_EQ(mkdir(P("adir.fvecs").c_str(), 0755), 0);
  Open(P("adir.fvecs"), QV_EIO);
  qv_vecfile *f = nullptr;
  EXPECT_EQ(qv_vecfile_open(nullptr, P("x.fvecs").c_str(), &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_open(&f, nullptr, &err_), QV_EINVAL);
  EXPECT_EQ(f, nullptr);
  qv_vecfile_close(nullptr);
}

TEST_F(VecfileTest, ReadRangeOutOfBounds) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const std::string path = P("r.fvecs");
  ASSERT_EQ(qv_fvecs_write(path.c_str(), 3, 2, v.data(), &err_), QV_OK) << err_.msg;
  qv_vecfile *f = Open(path, QV_OK);
  ASSERT_NE(f, nullptr);
  std::vector<float> out(8);
  EXPECT_EQ(qv_vecfile_read_f32(f, 0, 4, out.data(), &err_), QV_EINVAL);
  EXPECT_EQ(err_.code, QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(f, 2, 2, out.data(), &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(f, 4, 0, out.data(), &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(f, 1, SIZE_MAX, out.data(), &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(f, SIZE_MAX, 2, out.data(), nullptr), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(f, 0, 1, nullptr, &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_f32(nullptr, 0, 1, out.data(), &err_), QV_EINVAL);
  ASSERT_EQ(qv_vecfile_read_f32(f, 2, 1, out.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(out[0], 5.0f);
  EXPECT_EQ(out[1], 6.0f);
  qv_vecfile_close(f);

  std::vector<int32_t> iv = {1, 2, 3};
  ASSERT_EQ(qv_ivecs_write(P("r.ivecs").c_str(), 3, 1, iv.data(), &err_), QV_OK) << err_.msg;
  f = Open(P("r.ivecs"), QV_OK);
  ASSERT_NE(f, nullptr);
  std::vector<int64_t> io(4);
  EXPECT_EQ(qv_vecfile_read_i64(f, 1, 3, io.data(), &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_i64(f, 0, 1, nullptr, &err_), QV_EINVAL);
  EXPECT_EQ(qv_vecfile_read_i64(nullptr, 0, 1, io.data(), &err_), QV_EINVAL);
  ASSERT_EQ(qv_vecfile_read_i64(f, 1, 2, io.data(), &err_), QV_OK) << err_.msg;
  EXPECT_EQ(io[0], 2);
  EXPECT_EQ(io[1], 3);
  qv_vecfile_close(f);
}

// ---- the real data set ----------------------------------------------------------------------

TEST(VecfileRealData, Sift5k) {
  const std::string base = std::string(QUIVER_DATA_DIR) + "/sift5k/sift5k_base.fvecs";
  const std::string gt = std::string(QUIVER_DATA_DIR) + "/sift5k/sift5k_groundtruth.ivecs";
  if (access(base.c_str(), R_OK) != 0 || access(gt.c_str(), R_OK) != 0)
    GTEST_SKIP() << "sift5k data set not found under " << QUIVER_DATA_DIR
                 << " (expected ../shared/data/sift5k beside the checkout)";
  qv_error err;
  qv_error_clear(&err);
  qv_vecfile *f = nullptr;
  ASSERT_EQ(qv_vecfile_open(&f, base.c_str(), &err), QV_OK) << err.msg;
  EXPECT_EQ(qv_vecfile_rows(f), 5000u);
  EXPECT_EQ(qv_vecfile_cols(f), 128u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_F32);
  EXPECT_EQ(qv_vecfile_format_of(f), QV_VECFILE_FVECS);
  const size_t n = 100;
  std::vector<float> v(n * 128);
  ASSERT_EQ(qv_vecfile_read_f32(f, 0, n, v.data(), &err), QV_OK) << err.msg;
  double sum = 0;
  for (float x : v) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LE(x, 191.0f);
    ASSERT_EQ(x, std::floor(x));
    sum += x;
  }
  EXPECT_GT(sum, 0.0);
  std::vector<float> last(128);
  ASSERT_EQ(qv_vecfile_read_f32(f, 4999, 1, last.data(), &err), QV_OK) << err.msg;
  qv_vecfile_close(f);

  f = nullptr;
  ASSERT_EQ(qv_vecfile_open(&f, gt.c_str(), &err), QV_OK) << err.msg;
  EXPECT_EQ(qv_vecfile_rows(f), 100u);
  EXPECT_EQ(qv_vecfile_cols(f), 100u);
  EXPECT_EQ(qv_vecfile_dtype(f), QV_DTYPE_I32);
  std::vector<int64_t> ids(100 * 100);
  ASSERT_EQ(qv_vecfile_read_i64(f, 0, 100, ids.data(), &err), QV_OK) << err.msg;
  for (size_t q = 0; q < 100; q++) {
    std::vector<int64_t> row(ids.begin() + q * 100, ids.begin() + (q + 1) * 100);
    for (int64_t id : row) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, 5000);
    }
    std::sort(row.begin(), row.end());
    EXPECT_EQ(std::unique(row.begin(), row.end()), row.end()) << "duplicate ids in query " << q;
  }
  qv_vecfile_close(f);
}

} // namespace
