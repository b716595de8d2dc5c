// Item attributes and filters through the quiver CLI and the C client against the real quiverd:
// create --attr, upsert --attrs (JSON Lines), describe, search --filter on both filter paths
// (equal to brute force over the matching rows), get --fields attributes, and the mistakes a
// user makes in an --attrs file (named by line and key).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/server.h"
#include "quiver/client.h"
#include "quiver/vecfile.h"

namespace {

using qvtest::CmdResult;

constexpr size_t kN = 600, kDim = 8, kQ = 12, kK = 10;
const char *const kBrands[] = {"acme", "zeta", ""};

// Row i's attributes, made up from i.
int64_t category(size_t i) {
  return int64_t(i % 5);
}
double price(size_t i) {
  return double((i * 37) % 100) / 2.0;
}
bool sold_out(size_t i) {
  return i % 3 == 0;
}
const char *brand(size_t i) {
  return kBrands[(i / 2) % 3];
}
// In sorted order: a set of tags may come back sorted or as given, the same either way.
std::vector<std::string> tags(size_t i) {
  std::vector<std::string> t;
  if (i % 7 == 0)
    t.push_back("sale");
  if (i % 2)
    t.push_back("summer");
  return t;
}

// 'category in (1, 3) and price < 30 and not sold_out and tags has "summer"'
const char *kFilter = "category in (1, 3) and price < 30 and not sold_out and tags has \"summer\"";
bool matches(size_t i) {
  auto t = tags(i);
  return (category(i) == 1 || category(i) == 3) && price(i) < 30 && !sold_out(i) &&
         std::find(t.begin(), t.end(), "summer") != t.end();
}

// The same without the price test (the C client's collection has no price).
bool matches_any_price(size_t i) {
  auto t = tags(i);
  return (category(i) == 1 || category(i) == 3) && !sold_out(i) &&
         std::find(t.begin(), t.end(), "summer") != t.end();
}

CmdResult quiver(const std::string &server, const std::string &args) {
  return qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver --server " + server + " " +
                             args);
}

// The row as a JSON Lines object.
std::string json_row(size_t i) {
  std::string s = "{\"category\": " + std::to_string(category(i)) +
                  ", \"price\": " + std::to_string(price(i)) +
                  ", \"sold_out\": " + (sold_out(i) ? "true" : "false") + ", \"brand\": \"" +
                  brand(i) + "\", \"tags\": [";
  auto t = tags(i);
  for (size_t j = 0; j < t.size(); j++)
    s += (j ? ", \"" : "\"") + t[j] + "\"";
  return s + "]}";
}

void write_lines(const std::string &path, const std::vector<std::string> &lines) {
  std::ofstream f(path);
  for (auto &l : lines)
    f << l << "\n";
}

// Exact top-k squared L2 of each query over the rows that match (ids = row numbers), padded -1.
std::vector<int64_t> brute_force(const std::vector<float> &base, const std::vector<float> &q,
                                 size_t nq, size_t k, bool (*keep)(size_t)) {
  std::vector<int64_t> out(nq * k, -1);
  for (size_t a = 0; a < nq; a++) {
    std::vector<std::pair<float, int64_t>> d;
    for (size_t i = 0; i < kN; i++) {
      if (!keep(i))
        continue;
      float s = 0;
      for (size_t t = 0; t < kDim; t++) {
        float x = base[i * kDim + t] - q[a * kDim + t];
        s += x * x;
      }
      d.emplace_back(s, int64_t(i));
    }
    std::sort(d.begin(), d.end());
    for (size_t j = 0; j < k && j < d.size(); j++)
      out[a * k + j] = d[j].second;
  }
  return out;
}

std::vector<int64_t> read_ids(const std::string &path, size_t rows, size_t cols) {
  qv_error e{};
  qv_vecfile *vf = nullptr;
  std::vector<int64_t> got(rows * cols, -2);
  EXPECT_EQ(qv_vecfile_open(&vf, path.c_str(), &e), QV_OK) << e.msg;
  if (vf == nullptr)
    return got;
  EXPECT_EQ(qv_vecfile_rows(vf), rows);
  EXPECT_EQ(qv_vecfile_cols(vf), cols);
  EXPECT_EQ(qv_vecfile_read_i64(vf, 0, rows, got.data(), &e), QV_OK) << e.msg;
  qv_vecfile_close(vf);
  return got;
}

class CliAttrs : public ::testing::Test {
protected:
  qvtest::TempDir tmp;
  qvtest::Quiverd srv;
  std::string s, vecs, queries, attrs;
  std::vector<float> base = qvtest::randn(kN * kDim, 7), q = qvtest::randn(kQ * kDim, 8);
  void SetUp() override {
    ASSERT_TRUE(srv.start(tmp.sub("data")));
    s = srv.target();
    vecs = tmp.sub("v.npy");
    queries = tmp.sub("q.npy");
    attrs = tmp.sub("a.jsonl");
    qv_error e{};
    ASSERT_EQ(qv_npy_write(vecs.c_str(), QV_DTYPE_F32, kN, kDim, base.data(), &e), QV_OK);
    ASSERT_EQ(qv_npy_write(queries.c_str(), QV_DTYPE_F32, kQ, kDim, q.data(), &e), QV_OK);
    std::vector<std::string> lines;
    for (size_t i = 0; i < kN; i++)
      lines.push_back(json_row(i));
    write_lines(attrs, lines);
  }
};

} // namespace

TEST_F(CliAttrs, CreateUpsertSearchGetWithAttributes) {
  CmdResult r = quiver(s, "create shop --dim 8 --attr category:int64 --attr price:float "
                          "--attr sold_out:bool --attr brand:keyword --attr tags:tags");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("attributes: category int64, price float, sold_out bool, brand keyword, "
                       "tags tags"),
            std::string::npos)
      << r.out;
  r = quiver(s, "upsert shop --input " + vecs + " --attrs " + attrs + " --chunk-mb 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("upserted 600 vectors with their attributes"), std::string::npos) << r.out;
  r = quiver(s, "describe shop --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"attributes\": [{\"name\": \"category\", \"type\": \"int64\"}, "
                       "{\"name\": \"price\", \"type\": \"float\"}"),
            std::string::npos)
      << r.out;

  const std::vector<int64_t> want = brute_force(base, q, kQ, kK, matches);
  size_t n_match = 0;
  for (size_t i = 0; i < kN; i++)
    n_match += matches(i);
  ASSERT_GT(n_match, kK) << "the filter should leave more than k rows";
  for (const char *path : {"exact", "index", "auto"}) {
    std::string out = tmp.sub(std::string("res_") + path + ".npy");
    r = quiver(s, "search shop --queries " + queries + " --k 10 --filter '" + kFilter +
                      "' --filter-path " + path + " --output " + out + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(std::string("\"filter_path\": \"") + path + "\""), std::string::npos)
        << r.out;
    EXPECT_EQ(read_ids(out, kQ, kK), want) << path;
  }
  // Item-to-item under a filter: row 1 matches; it is left out of its own answer.
  ASSERT_TRUE(matches(1));
  std::string out = tmp.sub("res_ids.npy");
  r = quiver(s,
             "search shop --ids 1 --k 5 --filter '" + std::string(kFilter) + "' --output " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<float> q1(base.begin() + kDim, base.begin() + 2 * kDim);
  std::vector<int64_t> w1 = brute_force(base, q1, 1, 6, matches);
  w1.erase(std::remove(w1.begin(), w1.end(), int64_t(1)), w1.end());
  w1.resize(5);
  EXPECT_EQ(read_ids(out, 1, 5), w1);

  r = quiver(s, "get shop --ids 7,1,9999 --fields attributes --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("{\"id\": 7, \"attributes\": {\"category\": 2, \"price\": 29.5, "
                       "\"sold_out\": false, \"brand\": \"acme\", \"tags\": [\"sale\", "
                       "\"summer\"]}}"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"missing_ids\": [9999]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"vector\""), std::string::npos) << r.out;
  r = quiver(s, "get shop --ids 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("attributes {\"category\": 0, \"price\": 0, \"sold_out\": true, "
                       "\"brand\": \"acme\", \"tags\": [\"sale\"]}"),
            std::string::npos)
      << r.out;

  // A filter that is wrong, or on a collection without attributes: the server's status.
  r = quiver(s, "search shop --queries " + queries + " --filter 'colour = 3'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("column"), std::string::npos) << r.out;
  ASSERT_EQ(quiver(s, "create plain --dim 8").code, 0);
  ASSERT_EQ(quiver(s, "upsert plain --input " + vecs).code, 0);
  r = quiver(s, "search plain --queries " + queries + " --filter 'category = 1'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("FAILED_PRECONDITION"), std::string::npos) << r.out;
  r = quiver(s, "upsert plain --input " + vecs + " --attrs " + attrs);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("has no attributes"), std::string::npos) << r.out;
}

TEST_F(CliAttrs, BadAttrsFilesNameTheLineAndKey) {
  ASSERT_EQ(quiver(s, "create shop --dim 8 --attr category:int64 --attr tags:tags").code, 0);
  std::vector<float> three(base.begin(), base.begin() + 3 * kDim);
  std::string v3 = tmp.sub("v3.npy"), bad = tmp.sub("bad.jsonl");
  qv_error e{};
  ASSERT_EQ(qv_npy_write(v3.c_str(), QV_DTYPE_F32, 3, kDim, three.data(), &e), QV_OK);
  struct Case {
    std::vector<std::string> lines;
    std::string needle;
  } cases[] = {
      {{"{\"category\": 1}", "{\"category\": \"x\"}", "{}"},
       "bad.jsonl line 2: \"category\" is int64: it takes an integer, not a string"},
      {{"{}", "{}", "{\"tags\": [\"a\", 3]}"}, "bad.jsonl line 3: \"tags\" is tags"},
      {{"{}", "{\"price\": 1}", "{}"}, "bad.jsonl line 2: unknown attribute \"price\""},
      {{"{}", "nope", "{}"}, "bad.jsonl line 2: not JSON"},
      {{"{}", "{}"}, "bad.jsonl has 2 line(s)"},
  };
  for (const auto &c : cases) {
    write_lines(bad, c.lines);
    CmdResult r = quiver(s, "upsert shop --input " + v3 + " --attrs " + bad);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.needle << "\n" << r.out;
  }
  CmdResult r = quiver(s, "describe shop --json");
  EXPECT_NE(r.out.find("\"count\": 0"), std::string::npos) << "nothing was written\n" << r.out;
  r = quiver(s, "create other --dim 8 --attr category:text");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("unknown attribute type 'text'"), std::string::npos) << r.out;
  r = quiver(s, "create other --dim 8 --attr 'and:int64'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  r = quiver(s, "search shop --queries " + queries + " --filter-path exact");
  EXPECT_EQ(r.code, 2) << r.out;
}

// The C client's side: columns split over many small messages (tags included), get's columns,
// and its statuses.
TEST_F(CliAttrs, ClientUpsertGetAndFilter) {
  qvtest::Client cl(s);
  qv_client_attr_field schema[3] = {{"category", QV_CLIENT_ATTR_INT64},
                                    {"sold_out", QV_CLIENT_ATTR_BOOL},
                                    {"tags", QV_CLIENT_ATTR_TAGS}};
  qv_create_opts co{};
  co.name = "capi";
  co.dim = kDim;
  co.metric = QV_METRIC_L2;
  co.attrs = schema;
  co.n_attrs = 3;
  qv_collection_info info{};
  qv_error e{};
  ASSERT_EQ(qv_client_create(cl.c, &co, &info, &e), QV_OK) << e.msg;
  ASSERT_EQ(info.n_attrs, 3u);
  EXPECT_STREQ(info.attrs[2].name, "tags");
  EXPECT_EQ(info.attrs[1].type, QV_CLIENT_ATTR_BOOL);

  std::vector<int64_t> ids = qvtest::seq_ids(kN), cat(kN), so(kN);
  std::vector<uint32_t> counts(kN);
  std::vector<std::string> tag_store;
  for (size_t i = 0; i < kN; i++) {
    cat[i] = category(i);
    so[i] = sold_out(i);
    auto t = tags(i);
    counts[i] = uint32_t(t.size());
    tag_store.insert(tag_store.end(), t.begin(), t.end());
  }
  std::vector<const char *> tag_ptrs;
  for (auto &t : tag_store)
    tag_ptrs.push_back(t.c_str());
  qv_client_attr_column cols[3] = {};
  cols[0] = {"category", QV_CLIENT_ATTR_INT64, cat.data(), nullptr, nullptr, nullptr};
  cols[1] = {"sold_out", QV_CLIENT_ATTR_BOOL, so.data(), nullptr, nullptr, nullptr};
  cols[2] = {"tags", QV_CLIENT_ATTR_TAGS, nullptr, nullptr, tag_ptrs.data(), counts.data()};
  qv_client_upsert_opts uo;
  qv_client_upsert_opts_init(&uo);
  uo.attrs = cols;
  uo.n_attrs = 3;
  uo.chunk_bytes = 7 * (kDim * 4 + 40); // a few rows per message: the tags must be cut right
  uint64_t count = 0;
  ASSERT_EQ(qv_client_upsert_ex(cl.c, "capi", kN, kDim, ids.data(), base.data(), &uo, &count, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(count, kN);

  const int64_t want_ids[] = {14, 3, 77777, 1};
  qv_client_items it;
  ASSERT_EQ(qv_client_get(cl.c, "capi", 4, want_ids, QV_CLIENT_GET_ATTRIBUTES, &it, &e), QV_OK)
      << e.msg;
  ASSERT_EQ(it.n, 3u);
  ASSERT_EQ(it.n_attrs, 3u);
  EXPECT_EQ(it.vectors, nullptr);
  EXPECT_STREQ(it.attrs[0].name, "category");
  EXPECT_EQ(it.attrs[0].type, QV_CLIENT_ATTR_INT64);
  EXPECT_EQ(it.attrs[1].type, QV_CLIENT_ATTR_BOOL);
  EXPECT_EQ(it.attrs[2].type, QV_CLIENT_ATTR_TAGS);
  size_t at = 0;
  for (size_t r = 0; r < it.n; r++) {
    const size_t row = size_t(it.ids[r]);
    EXPECT_EQ(it.attrs[0].ints[r], category(row));
    EXPECT_EQ(it.attrs[1].ints[r], sold_out(row) ? 1 : 0);
    auto t = tags(row);
    ASSERT_EQ(it.attrs[2].counts[r], t.size()) << row;
    std::vector<std::string> got(it.attrs[2].strs + at, it.attrs[2].strs + at + t.size());
    std::sort(got.begin(), got.end());
    std::sort(t.begin(), t.end());
    EXPECT_EQ(got, t) << row;
    at += t.size();
  }
  qv_client_items_free(&it);
  qv_client_items_free(&it); // twice is harmless: it was zeroed

  qv_client_search_opts so_opts;
  qv_client_search_opts_init(&so_opts);
  so_opts.filter = "category in (1, 3) and not sold_out and tags has \"summer\"";
  so_opts.filter_path = QV_CLIENT_FILTER_EXACT;
  std::vector<float> scores(kQ * kK);
  std::vector<int64_t> got(kQ * kK);
  ASSERT_EQ(qv_client_search_ex(cl.c, "capi", q.data(), kQ, kDim, kK, &so_opts, scores.data(),
                                got.data(), nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(got, brute_force(base, q, kQ, kK, matches_any_price));
  so_opts.filter = "category >";
  EXPECT_EQ(qv_client_search_ex(cl.c, "capi", q.data(), kQ, kDim, kK, &so_opts, scores.data(),
                                got.data(), nullptr, 0, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("column"), std::string::npos) << e.msg;

  // A column of no attribute: the server refuses it, nothing is applied.
  qv_client_attr_column unknown = {"colour", QV_CLIENT_ATTR_INT64, cat.data(), nullptr, nullptr,
                                   nullptr};
  uo.attrs = &unknown;
  uo.n_attrs = 1;
  EXPECT_EQ(qv_client_upsert_ex(cl.c, "capi", 2, kDim, ids.data(), base.data(), &uo, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("colour"), std::string::npos) << e.msg;
  // Client-side checks: no values, an unknown type.
  qv_client_attr_column empty = {"category", QV_CLIENT_ATTR_INT64, nullptr, nullptr, nullptr,
                                 nullptr};
  uo.attrs = &empty;
  EXPECT_EQ(qv_client_upsert_ex(cl.c, "capi", 2, kDim, ids.data(), base.data(), &uo, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("ints is NULL"), std::string::npos) << e.msg;
  empty.type = qv_client_attr_type(9);
  EXPECT_EQ(qv_client_upsert_ex(cl.c, "capi", 2, kDim, ids.data(), base.data(), &uo, nullptr, &e),
            QV_EINVAL);
  ASSERT_EQ(qv_client_describe(cl.c, "capi", &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.count, kN);
  EXPECT_GT(info.attribute_bytes, 0u);

  // A filter on a collection without attributes.
  co.name = "capi_plain";
  co.attrs = nullptr;
  co.n_attrs = 0;
  ASSERT_EQ(qv_client_create(cl.c, &co, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.n_attrs, 0u);
  ASSERT_EQ(qv_client_upsert_ex(cl.c, "capi_plain", kN, kDim, ids.data(), base.data(), nullptr,
                                nullptr, &e),
            QV_OK)
      << e.msg;
  so_opts.filter = "category = 1";
  EXPECT_EQ(qv_client_search_ex(cl.c, "capi_plain", q.data(), kQ, kDim, kK, &so_opts, scores.data(),
                                got.data(), nullptr, 0, nullptr, &e),
            QV_EPRECONDITION)
      << e.msg;
  // The names the CLI parses.
  qv_client_attr_type t;
  EXPECT_EQ(qv_client_attr_type_parse("keyword", &t, &e), QV_OK);
  EXPECT_EQ(t, QV_CLIENT_ATTR_KEYWORD);
  EXPECT_EQ(qv_client_attr_type_parse("Keyword", &t, &e), QV_EINVAL);
  EXPECT_STREQ(qv_client_attr_type_name(QV_CLIENT_ATTR_TAGS), "tags");
  EXPECT_EQ(qv_client_attr_type_name(qv_client_attr_type(0)), nullptr);
  qv_client_filter_path p;
  EXPECT_EQ(qv_client_filter_path_parse("index", &p, &e), QV_OK);
  EXPECT_EQ(p, QV_CLIENT_FILTER_INDEX);
  EXPECT_STREQ(qv_client_filter_path_name(QV_CLIENT_FILTER_EXACT), "exact");
}
