// Item attributes and filters in the index layer: the schema, writes and reads of every type,
// consistency through deletes (rows move), replacements, saves, the write-ahead log and imports;
// the filter language's errors (with their columns); and filtered search on every path (exact,
// an IVF's list scan, over-fetch through HNSW and Flat) against brute force over the matching
// rows of sift5k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"

using qvtest::Col;
using qvtest::Matrix;
using qvtest::TempDir;

namespace {

const qv_attr_field kSchema[] = {{"category", QV_ATTR_INT64},
                                 {"price", QV_ATTR_FLOAT},
                                 {"sold_out", QV_ATTR_BOOL},
                                 {"brand", QV_ATTR_KEYWORD},
                                 {"tags", QV_ATTR_TAGS}};
const size_t kNA = sizeof kSchema / sizeof *kSchema;

// What the test wrote for one item, to compute expected answers from.
struct Item {
  int64_t category = 0;
  double price = 0;
  bool sold_out = false;
  std::string brand;
  std::vector<std::string> tags;
};

Item item_for(int64_t id, int salt = 0) {
  Item it;
  it.category = (id * 7 + salt) % 10;
  it.price = double((id * 13 + salt) % 100) + 0.25;
  it.sold_out = (id + salt) % 3 == 0;
  it.brand = "brand" + std::to_string((id + salt) % 5);
  if ((id + salt) % 4 != 0)
    it.tags.push_back("t" + std::to_string((id + salt) % 4));
  it.tags.push_back("u" + std::to_string((id + salt) % 7));
  return it;
}

// The columns of a batch of items (owning the storage the qv_attr_column pointers use).
struct Columns {
  std::vector<int64_t> cat, sold;
  std::vector<double> price;
  std::vector<std::string> brand_s, tag_s;
  std::vector<const char *> brand, tag;
  std::vector<uint32_t> counts;
  std::vector<qv_attr_column> cols;
  qv_attr_batch batch{};
  explicit Columns(const std::vector<Item> &items, bool with_tags = true) {
    for (const Item &it : items) {
      cat.push_back(it.category);
      sold.push_back(it.sold_out);
      price.push_back(it.price);
      brand_s.push_back(it.brand);
      counts.push_back(uint32_t(it.tags.size()));
      for (const auto &t : it.tags)
        tag_s.push_back(t);
    }
    for (auto &s : brand_s)
      brand.push_back(s.c_str());
    for (auto &s : tag_s)
      tag.push_back(s.c_str());
    cols.push_back({"category", QV_ATTR_INT64, cat.data(), nullptr, nullptr, nullptr});
    cols.push_back({"price", QV_ATTR_FLOAT, nullptr, price.data(), nullptr, nullptr});
    cols.push_back({"sold_out", QV_ATTR_BOOL, sold.data(), nullptr, nullptr, nullptr});
    cols.push_back({"brand", QV_ATTR_KEYWORD, nullptr, nullptr, brand.data(), nullptr});
    if (with_tags)
      cols.push_back({"tags", QV_ATTR_TAGS, nullptr, nullptr, tag.data(), counts.data()});
    batch = {cols.size(), cols.data(), nullptr};
  }
};

void make_attrs(Col &col, size_t dim, const char *spec, qv_metric m = QV_METRIC_L2) {
  qv_collection_opts o = qvtest::opts(dim, spec, m);
  o.n_attrs = kNA;
  o.attrs = kSchema;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
}

void upsert_items(qv_collection *c, const Matrix &base, const std::vector<int64_t> &ids,
                  const std::vector<Item> &items) {
  Columns cols(items);
  std::vector<float> v(ids.size() * base.cols);
  for (size_t i = 0; i < ids.size(); i++)
    std::memcpy(&v[i * base.cols], &base.f[size_t(ids[i]) * base.cols], base.cols * sizeof(float));
  qv_error e{};
  ASSERT_EQ(qv_collection_upsert(c, ids.size(), ids.data(), v.data(), nullptr, &cols.batch, &e),
            QV_OK)
      << e.msg;
}

// Reads every attribute of ids back.
std::vector<Item> get_items(qv_collection *c, const std::vector<int64_t> &ids,
                            std::vector<uint8_t> *found_out = nullptr) {
  std::vector<uint8_t> found(ids.size());
  qv_attr_batch b{};
  qv_error e{};
  EXPECT_EQ(qv_collection_get_items_attrs(c, ids.size(), ids.data(), nullptr, nullptr, found.data(),
                                          nullptr, &b, &e),
            QV_OK)
      << e.msg;
  std::vector<Item> out(ids.size());
  EXPECT_EQ(b.n_columns, kNA);
  for (size_t j = 0; j < b.n_columns; j++) {
    const qv_attr_column &col = b.columns[j];
    EXPECT_STREQ(col.name, kSchema[j].name);
    EXPECT_EQ(col.type, kSchema[j].type);
    size_t s = 0;
    for (size_t i = 0; i < ids.size(); i++) {
      Item &it = out[i];
      switch (col.type) {
      case QV_ATTR_INT64:
        it.category = col.ints[i];
        break;
      case QV_ATTR_FLOAT:
        it.price = col.floats[i];
        break;
      case QV_ATTR_BOOL:
        it.sold_out = col.ints[i] != 0;
        break;
      case QV_ATTR_KEYWORD:
        it.brand = col.strs[i];
        break;
      case QV_ATTR_TAGS:
        for (uint32_t u = 0; u < col.counts[i]; u++)
          it.tags.push_back(col.strs[s++]);
        break;
      }
    }
  }
  qv_attr_batch_free(&b);
  for (const Item &it : out) // a set comes back sorted
    EXPECT_TRUE(std::is_sorted(it.tags.begin(), it.tags.end()));
  if (found_out)
    *found_out = found;
  return out;
}

void expect_item(const Item &got, const Item &want, int64_t id) {
  EXPECT_EQ(got.category, want.category) << "id " << id;
  EXPECT_EQ(got.price, want.price) << "id " << id;
  EXPECT_EQ(got.sold_out, want.sold_out) << "id " << id;
  EXPECT_EQ(got.brand, want.brand) << "id " << id;
  std::set<std::string> a(got.tags.begin(), got.tags.end()), b(want.tags.begin(), want.tags.end());
  EXPECT_EQ(a, b) << "id " << id;
}

qv_status parse(qv_collection *c, const char *text, qv_filter **f, qv_error *e) {
  return qv_filter_parse(c, text, f, e);
}

// The parse error of text: its code and message.
std::string parse_error(qv_collection *c, const char *text, qv_status want = QV_EINVAL) {
  qv_filter *f = nullptr;
  qv_error e{};
  EXPECT_EQ(parse(c, text, &f, &e), want) << text;
  EXPECT_EQ(f, nullptr);
  qv_filter_free(f);
  return e.msg;
}

struct Fixture {
  qvtest::DataSet ds;
  std::vector<Item> items; // by id (ids 0 .. n-1)
};

Fixture &sift() {
  static Fixture fx = [] {
    Fixture f;
    f.ds = qvtest::load_set("sift5k");
    for (size_t i = 0; i < f.ds.base.rows; i++)
      f.items.push_back(item_for(int64_t(i)));
    return f;
  }();
  return fx;
}

void fill(Col &col, const char *spec, qv_metric m = QV_METRIC_L2) {
  Fixture &fx = sift();
  make_attrs(col, fx.ds.base.cols, spec, m);
  if (::testing::Test::HasFatalFailure())
    return;
  upsert_items(col.c, fx.ds.base, qvtest::seq_ids(fx.ds.base.rows), fx.items);
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
}

// Brute force: the exact top-k of query q over the items pred accepts (L2), as ids.
std::vector<int64_t> brute(const Matrix &base, const float *q, size_t k,
                           const std::function<bool(int64_t)> &pred) {
  std::vector<std::pair<float, int64_t>> all;
  for (size_t r = 0; r < base.rows; r++) {
    if (!pred(int64_t(r)))
      continue;
    float s = 0;
    for (size_t t = 0; t < base.cols; t++) {
      float d = q[t] - base.f[r * base.cols + t];
      s += d * d;
    }
    all.push_back({s, int64_t(r)});
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> out;
  for (size_t i = 0; i < k; i++)
    out.push_back(i < all.size() ? all[i].second : -1);
  return out;
}

struct Case {
  const char *text;
  std::function<bool(const Item &)> pred;
};

std::vector<Case> cases() {
  auto has = [](const Item &it, const char *t) {
    return std::find(it.tags.begin(), it.tags.end(), t) != it.tags.end();
  };
  return {
      {"category in (3, 7) and price < 50 and not sold_out",
       [](const Item &it) {
         return (it.category == 3 || it.category == 7) && it.price < 50 && !it.sold_out;
       }},
      {"tags has \"t1\" or brand = 'brand2'",
       [=](const Item &it) { return has(it, "t1") || it.brand == "brand2"; }},
      {"price >= 10.5 AND (category != 0) and tags has any ('u1', 'u3')",
       [=](const Item &it) {
         return it.price >= 10.5 && it.category != 0 && (has(it, "u1") || has(it, "u3"));
       }},
      {"category = 4", [](const Item &it) { return it.category == 4; }}, // 10 %
      {"category = 4 and price < 10",
       [](const Item &it) { return it.category == 4 && it.price < 10; }},
      {"sold_out", [](const Item &it) { return it.sold_out; }}, // a third
      {"brand not in ('brand0', 'brand1') and tags has all (\"t2\", \"u4\")",
       [=](const Item &it) {
         return it.brand != "brand0" && it.brand != "brand1" && has(it, "t2") && has(it, "u4");
       }},
      {"category in (1, 2.0, 99)",
       [](const Item &it) { return it.category == 1 || it.category == 2; }},
      {"brand = 'nobody'", [](const Item &) { return false; }},
      {"not (tags has 'nothing')", [](const Item &) { return true; }},
  };
}

// Every result matches, the answer is the brute-force one (exact) or close to it (recall).
void check_filtered(qv_collection *c, qv_filter_path path, double min_recall, const char *label,
                    uint32_t nprobe = 0) {
  Fixture &fx = sift();
  const size_t k = 10, nq = 40;
  for (const Case &cs : cases()) {
    qv_filter *f = nullptr;
    qv_error e{};
    ASSERT_EQ(parse(c, cs.text, &f, &e), QV_OK) << cs.text << ": " << e.msg;
    uint64_t nmatch = 0;
    ASSERT_EQ(qv_collection_filter_count(c, f, &nmatch, &e), QV_OK) << e.msg;
    uint64_t want_n = 0;
    for (const Item &it : fx.items)
      want_n += cs.pred(it);
    EXPECT_EQ(nmatch, want_n) << cs.text;
    qv_search_params p{k, nprobe, 0, f, path};
    std::vector<float> sc(nq * k);
    std::vector<int64_t> ids(nq * k);
    ASSERT_EQ(qv_collection_search(c, fx.ds.q.f.data(), nq, &p, sc.data(), ids.data(), &e), QV_OK)
        << label << " " << cs.text << ": " << e.msg;
    size_t hits = 0, want_total = 0;
    for (size_t qi = 0; qi < nq; qi++) {
      auto want = brute(fx.ds.base, &fx.ds.q.f[qi * fx.ds.q.cols], k,
                        [&](int64_t id) { return cs.pred(fx.items[size_t(id)]); });
      for (size_t j = 0; j < k; j++) {
        int64_t id = ids[qi * k + j];
        if (want[j] < 0) {
          EXPECT_EQ(id, -1) << label << " " << cs.text << ": padding expected";
          continue;
        }
        want_total++;
        ASSERT_GE(id, 0) << label << " " << cs.text << ": fewer than k of " << nmatch;
        EXPECT_TRUE(cs.pred(fx.items[size_t(id)])) << label << " " << cs.text << ": id " << id;
        hits += std::find(want.begin(), want.end(), id) != want.end();
      }
    }
    double rec = want_total ? double(hits) / double(want_total) : 1.0;
    EXPECT_GE(rec, min_recall) << label << " " << cs.text << " (" << nmatch << " match)";
    qv_filter_free(f);
  }
}

} // namespace

TEST(Attrs, SchemasAreCheckedAtCreate) {
  struct Bad {
    std::vector<qv_attr_field> f;
    const char *says;
  } bad[] = {
      {{{"a", QV_ATTR_INT64}, {"a", QV_ATTR_FLOAT}}, "twice"},
      {{{"and", QV_ATTR_INT64}}, "keyword"},
      {{{"9lives", QV_ATTR_INT64}}, "9lives"},
      {{{"a-b", QV_ATTR_INT64}}, "a-b"},
      {{{"", QV_ATTR_INT64}}, "name"},
      {{{"a", qv_attr_type(9)}}, "unknown type"},
  };
  for (const Bad &b : bad) {
    qv_collection_opts o = qvtest::opts(4, "Flat");
    o.n_attrs = b.f.size();
    o.attrs = b.f.data();
    qv_collection *c = nullptr;
    qv_error e{};
    EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL) << b.says;
    EXPECT_NE(std::strstr(e.msg, b.says), nullptr) << e.msg;
    EXPECT_EQ(c, nullptr);
  }
  std::vector<qv_attr_field> many(QV_MAX_ATTRS + 1);
  for (size_t i = 0; i < many.size(); i++)
    snprintf(many[i].name, sizeof many[i].name, "a%zu", i), many[i].type = QV_ATTR_INT64;
  qv_collection_opts o = qvtest::opts(4, "Flat");
  o.n_attrs = many.size();
  o.attrs = many.data();
  qv_collection *c = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL);
  o.n_attrs = QV_MAX_ATTRS;
  ASSERT_EQ(qv_collection_create(&c, &o, &e), QV_OK) << e.msg;
  qv_collection_stats s = qvtest::stats(c);
  EXPECT_EQ(s.n_attrs, size_t(QV_MAX_ATTRS));
  EXPECT_STREQ(s.attrs[31].name, "a31");
  qv_collection_close(c);
  qv_attr_type t;
  EXPECT_EQ(qv_attr_type_parse("keyword", &t, nullptr), QV_OK);
  EXPECT_EQ(t, QV_ATTR_KEYWORD);
  EXPECT_EQ(qv_attr_type_parse("string", &t, &e), QV_EINVAL);
  EXPECT_STREQ(qv_attr_type_name(QV_ATTR_TAGS), "tags");
}

TEST(Attrs, WritesReadsDeletesAndReplacementsKeepEachItemsAttributes) {
  Fixture &fx = sift();
  Col col;
  make_attrs(col, fx.ds.base.cols, "Flat");
  std::vector<int64_t> ids = qvtest::seq_ids(200);
  std::vector<Item> items(fx.items.begin(), fx.items.begin() + 200);
  upsert_items(col.c, fx.ds.base, ids, items);
  auto got = get_items(col.c, ids);
  for (size_t i = 0; i < ids.size(); i++)
    expect_item(got[i], items[i], ids[i]);
  // Deletes move the last rows into the holes: every survivor keeps its own attributes.
  std::vector<int64_t> del;
  for (int64_t i = 0; i < 200; i += 3)
    del.push_back(i);
  qv_error e{};
  ASSERT_EQ(qv_collection_delete(col.c, del.size(), del.data(), nullptr, &e), QV_OK) << e.msg;
  std::vector<uint8_t> found;
  got = get_items(col.c, ids, &found);
  for (size_t i = 0; i < ids.size(); i++) {
    EXPECT_EQ(found[i], i % 3 != 0) << i;
    expect_item(got[i], i % 3 ? items[i] : Item{}, ids[i]); // a missing id answers defaults
  }
  // A replacement replaces every attribute; one without the tags column gets no tags.
  std::vector<int64_t> rep = {1, 2, 5};
  std::vector<Item> newer = {item_for(1, 3), item_for(2, 3), item_for(5, 3)};
  {
    Columns cols(newer, /*with_tags=*/false);
    std::vector<float> v(rep.size() * fx.ds.base.cols, 0.5f);
    ASSERT_EQ(
        qv_collection_upsert(col.c, rep.size(), rep.data(), v.data(), nullptr, &cols.batch, &e),
        QV_OK)
        << e.msg;
  }
  got = get_items(col.c, rep);
  for (size_t i = 0; i < rep.size(); i++) {
    Item want = newer[i];
    want.tags.clear();
    expect_item(got[i], want, rep[i]);
  }
  // One without attributes at all: every attribute its default.
  std::vector<float> v(fx.ds.base.cols, 0.25f);
  int64_t id7 = 7;
  ASSERT_EQ(qv_collection_add(col.c, 1, &id7, v.data(), &e), QV_OK) << e.msg;
  expect_item(get_items(col.c, {7})[0], Item{}, 7);
  // A batch with a repeated id: the last wins, attributes included.
  std::vector<int64_t> twice = {300, 300};
  std::vector<Item> two = {item_for(300, 1), item_for(300, 2)};
  {
    Columns cols(two);
    std::vector<float> vv(2 * fx.ds.base.cols, 1.0f);
    ASSERT_EQ(qv_collection_upsert(col.c, 2, twice.data(), vv.data(), nullptr, &cols.batch, &e),
              QV_OK);
  }
  expect_item(get_items(col.c, {300})[0], two[1], 300);
  EXPECT_GT(qvtest::stats(col.c).attr_bytes, 0u);
  // Filters see the same items (keyword and tag tests go through the postings, which deletes,
  // row moves and replacements keep): counts equal a model of what was written.
  std::map<int64_t, Item> model;
  for (int64_t i = 0; i < 200; i++)
    if (i % 3 != 0)
      model[i] = items[size_t(i)];
  for (size_t i = 0; i < rep.size(); i++) {
    model[rep[i]] = newer[i];
    model[rep[i]].tags.clear();
  }
  model[7] = Item{};
  model[300] = two[1];
  auto has = [](const Item &it, const char *t) {
    return std::find(it.tags.begin(), it.tags.end(), t) != it.tags.end();
  };
  const Case checks[] = {
      {"brand = 'brand2'", [](const Item &it) { return it.brand == "brand2"; }},
      {"brand != 'brand2'", [](const Item &it) { return it.brand != "brand2"; }},
      {"brand = ''", [](const Item &it) { return it.brand.empty(); }},
      {"brand in ('brand1', '', 'nobody')",
       [](const Item &it) { return it.brand == "brand1" || it.brand.empty(); }},
      {"brand not in ('brand1')", [](const Item &it) { return it.brand != "brand1"; }},
      {"tags has 'u3'", [=](const Item &it) { return has(it, "u3"); }},
      {"tags has any ('t1', 'u0')", [=](const Item &it) { return has(it, "t1") || has(it, "u0"); }},
      {"tags has all ('t1', 'u1')", [=](const Item &it) { return has(it, "t1") && has(it, "u1"); }},
      {"tags has all ('t1', 'nothing')", [](const Item &) { return false; }},
      {"not tags has 't2' and category >= 5",
       [=](const Item &it) { return !has(it, "t2") && it.category >= 5; }},
  };
  for (const Case &cs : checks) {
    qv_filter *f = nullptr;
    ASSERT_EQ(qv_filter_parse(col.c, cs.text, &f, &e), QV_OK) << cs.text << ": " << e.msg;
    uint64_t n = 0, want = 0;
    ASSERT_EQ(qv_collection_filter_count(col.c, f, &n, &e), QV_OK);
    for (const auto &kv : model)
      want += cs.pred(kv.second);
    EXPECT_EQ(n, want) << cs.text;
    qv_filter_free(f);
  }
}

TEST(Attrs, BadColumnsAreRefusedNamingTheColumn) {
  Col col;
  make_attrs(col, 4, "Flat");
  std::vector<float> v(8, 1.0f);
  std::vector<int64_t> ids = {1, 2};
  std::vector<int64_t> ints = {1, 2}, bools = {0, 2};
  std::vector<double> nan = {1.0, NAN};
  std::string longs(QV_MAX_ATTR_STRING + 1, 'x');
  const char *strs[] = {"ok", longs.c_str()};
  std::vector<uint32_t> too_many = {QV_MAX_TAGS + 1, 0};
  struct Bad {
    qv_attr_column c;
    const char *says;
  } bad[] = {
      {{"colour", QV_ATTR_INT64, ints.data(), nullptr, nullptr, nullptr}, "colour"},
      {{"price", QV_ATTR_INT64, ints.data(), nullptr, nullptr, nullptr}, "float"},
      {{"sold_out", QV_ATTR_BOOL, bools.data(), nullptr, nullptr, nullptr}, "0 or 1"},
      {{"price", QV_ATTR_FLOAT, nullptr, nan.data(), nullptr, nullptr}, "NaN"},
      {{"brand", QV_ATTR_KEYWORD, nullptr, nullptr, strs, nullptr}, "bytes"},
      {{"tags", QV_ATTR_TAGS, nullptr, nullptr, strs, too_many.data()}, "tags"},
  };
  for (const Bad &b : bad) {
    qv_attr_batch batch{1, &b.c, nullptr};
    qv_error e{};
    EXPECT_EQ(qv_collection_upsert(col.c, 2, ids.data(), v.data(), nullptr, &batch, &e), QV_EINVAL)
        << b.says;
    EXPECT_NE(std::strstr(e.msg, b.says), nullptr) << e.msg;
  }
  qv_attr_column twice[2] = {{"category", QV_ATTR_INT64, ints.data(), nullptr, nullptr, nullptr},
                             {"category", QV_ATTR_INT64, ints.data(), nullptr, nullptr, nullptr}};
  qv_attr_batch tb{2, twice, nullptr};
  qv_error e{};
  EXPECT_EQ(qv_collection_upsert(col.c, 2, ids.data(), v.data(), nullptr, &tb, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "twice"), nullptr) << e.msg;
  EXPECT_EQ(qvtest::stats(col.c).count, 0u); // nothing of a refused write is applied
  // A collection without a schema takes no attributes, and no filter.
  Col plain;
  qvtest::make(plain, 4, QV_METRIC_L2, "Flat");
  EXPECT_EQ(qv_collection_upsert(plain.c, 2, ids.data(), v.data(), nullptr, &tb, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "no attributes"), nullptr) << e.msg;
  std::string msg = parse_error(plain.c, "category = 1", QV_EPRECONDITION);
  EXPECT_NE(msg.find("no attributes"), std::string::npos) << msg;
}

TEST(Attrs, FilterErrorsNameTheColumnOfTheMistake) {
  Col col;
  make_attrs(col, 4, "Flat");
  struct Bad {
    const char *text;
    const char *col; // "column N"
    const char *says;
  } bad[] = {
      {"colour = 3", "column 1:", "unknown attribute 'colour'"},
      {"category = 3 and prize < 2", "column 18:", "unknown attribute 'prize'"},
      {"price < 'cheap'", "column 9:", "compare it with a number"},
      {"brand < 'x'", "column 7:", "only on int64 and float"},
      {"category in (1, 2", "column 18:", "expected ',' or ')'"},
      {"category = 1 or", "column 16:", "expected an attribute name"},
      {"(category = 1", "column 1:", "not closed"},
      {"brand = \"acme", "column 9:", "not closed"},
      {"tags = 'x'", "column 6:", "has"},
      {"sold_out = 1", "column 12:", "true or false"},
      {"price in (1, 2)", "column 7:", "'in' works on int64 and keyword"},
      {"category has 'x'", "column 10:", "'has' works on tags"},
      {"category 3", "column 10:", "expected an operator"},
      {"category = 1 category = 2", "column 14:", "expected 'and', 'or' or the end"},
      {"category = 1 & price < 3", "column 14:", "unexpected character '&'"},
      {"", "column 1:", "empty"},
      {"category = 99999999999999999999", "column 12:", "int64 range"},
  };
  for (const Bad &b : bad) {
    std::string msg = parse_error(col.c, b.text);
    EXPECT_NE(msg.find(b.col), std::string::npos) << b.text << " -> " << msg;
    EXPECT_NE(msg.find(b.says), std::string::npos) << b.text << " -> " << msg;
  }
  std::string deep(40, '(');
  deep += "sold_out" + std::string(40, ')');
  EXPECT_NE(parse_error(col.c, deep.c_str()).find("deeper than 32"), std::string::npos);
  std::string big(QV_MAX_FILTER + 1, ' ');
  EXPECT_NE(parse_error(col.c, big.c_str()).find("longer"), std::string::npos);
  // Keywords are case-insensitive; every form of the grammar parses.
  for (const char *ok : {"sold_out", "NOT sold_out", "category IN (1,2) Or price <= 3e1",
                         "tags HAS ANY ('a', \"b\") and tags has all ('a')", "category <> 3",
                         "brand == 'it\\'s'", "price > -1.5 and category >= -3"}) {
    qv_filter *f = nullptr;
    qv_error e{};
    EXPECT_EQ(parse(col.c, ok, &f, &e), QV_OK) << ok << ": " << e.msg;
    if (f) {
      EXPECT_STREQ(qv_filter_text(f), ok);
    }
    qv_filter_free(f);
  }
  // A filter is bound to its schema: another collection's is refused by a search.
  Col other;
  qv_collection_opts o = qvtest::opts(4, "Flat");
  qv_attr_field one = {"category", QV_ATTR_FLOAT};
  o.n_attrs = 1;
  o.attrs = &one;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&other.c, &o, &e), QV_OK);
  qv_filter *f = nullptr;
  ASSERT_EQ(parse(col.c, "category = 1", &f, &e), QV_OK);
  float q[4] = {0, 0, 0, 0}, sc[1];
  int64_t id[1];
  qv_search_params p{1, 0, 0, f, QV_FILTER_AUTO};
  EXPECT_EQ(qv_collection_search(other.c, q, 1, &p, sc, id, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "schema"), nullptr) << e.msg;
  p.filter_path = qv_filter_path(7);
  EXPECT_EQ(qv_collection_search(col.c, q, 1, &p, sc, id, &e), QV_EINVAL);
  qv_filter_free(f);
}

TEST(Attrs, FilteredSearchOnFlatIsTheBruteForceAnswer) {
  if (!qvtest::have_data("sift5k/sift5k_base.fvecs"))
    GTEST_SKIP() << "no sift5k in the shared data";
  Col col;
  fill(col, "Flat");
  check_filtered(col.c, QV_FILTER_AUTO, 1.0, "Flat auto");
  check_filtered(col.c, QV_FILTER_INDEX, 1.0, "Flat over-fetch");
}

TEST(Attrs, FilteredSearchOnIvfExactAndListScan) {
  if (!qvtest::have_data("sift5k/sift5k_base.fvecs"))
    GTEST_SKIP() << "no sift5k in the shared data";
  Col col;
  fill(col, "IVF32,Flat");
  check_filtered(col.c, QV_FILTER_EXACT, 1.0, "IVF exact");
  check_filtered(col.c, QV_FILTER_INDEX, 0.85, "IVF list scan", 8);
  check_filtered(col.c, QV_FILTER_AUTO, 0.85, "IVF auto", 8);
  qv_collection_stats s = qvtest::stats(col.c);
  EXPECT_GT(s.filtered_exact, 0u);
  EXPECT_GT(s.filtered_index, 0u);
  // SQ8 codes: the list scan scores from the store's full vectors all the same.
  Col sq;
  fill(sq, "IVF32,SQ8");
  check_filtered(sq.c, QV_FILTER_INDEX, 0.85, "IVF SQ8 list scan", 8);
}

TEST(Attrs, FilteredSearchOnHnswOverFetches) {
  if (!qvtest::have_data("sift5k/sift5k_base.fvecs"))
    GTEST_SKIP() << "no sift5k in the shared data";
  Col col;
  fill(col, "HNSW32");
  check_filtered(col.c, QV_FILTER_INDEX, 0.85, "HNSW over-fetch", 256);
  check_filtered(col.c, QV_FILTER_AUTO, 0.85, "HNSW auto", 256);
  // Tombstones (an HNSW never removes): deleted items never come back, replaced ones are
  // re-scored from the store, and their attributes are the new ones.
  Fixture &fx = sift();
  std::vector<int64_t> del;
  for (int64_t i = 0; i < 5000; i += 2)
    del.push_back(i);
  qv_error e{};
  ASSERT_EQ(qv_collection_delete(col.c, del.size(), del.data(), nullptr, &e), QV_OK);
  qv_filter *f = nullptr;
  ASSERT_EQ(parse(col.c, "category in (1, 3, 5)", &f, &e), QV_OK);
  const size_t k = 10, nq = 20;
  std::vector<float> sc(nq * k);
  std::vector<int64_t> ids(nq * k);
  qv_search_params p{k, 256, 0, f, QV_FILTER_INDEX};
  ASSERT_EQ(qv_collection_search(col.c, fx.ds.q.f.data(), nq, &p, sc.data(), ids.data(), &e),
            QV_OK);
  for (int64_t id : ids) {
    ASSERT_GE(id, 0);
    EXPECT_EQ(id % 2, 1) << id;
    int64_t cat = fx.items[size_t(id)].category;
    EXPECT_TRUE(cat == 1 || cat == 3 || cat == 5) << id;
  }
  qv_filter_free(f);
}

TEST(Attrs, AttributesSurviveSavesTheLogAndImports) {
  Fixture &fx = sift();
  TempDir tmp;
  const std::string dir = tmp.sub("c");
  std::vector<int64_t> ids = qvtest::seq_ids(300);
  std::vector<Item> items(fx.items.begin(), fx.items.begin() + 300);
  {
    Col col;
    make_attrs(col, fx.ds.base.cols, "IVF4,Flat");
    upsert_items(col.c, fx.ds.base, ids, items);
    qv_error e{};
    ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_wal_attach(col.c, dir.c_str(), nullptr, nullptr, &e), QV_OK);
    // After the snapshot: replacements with attributes, one without, a delete (all in the log).
    std::vector<int64_t> rep = {10, 11};
    std::vector<Item> newer = {item_for(10, 5), item_for(11, 5)};
    upsert_items(col.c, fx.ds.base, rep, newer);
    items[10] = newer[0];
    items[11] = newer[1];
    int64_t id12 = 12, id13 = 13;
    ASSERT_EQ(qv_collection_add(col.c, 1, &id12, &fx.ds.base.f[12 * fx.ds.base.cols], &e), QV_OK);
    items[12] = Item{};
    ASSERT_EQ(qv_collection_delete(col.c, 1, &id13, nullptr, &e), QV_OK);
  } // closed without a save: the log holds the rest
  std::vector<int64_t> live;
  for (int64_t i = 0; i < 300; i++)
    if (i != 13)
      live.push_back(i);
  {
    Col col;
    qv_error e{};
    ASSERT_EQ(qv_collection_open(&col.c, dir.c_str(), &e), QV_OK) << e.msg;
    qv_wal_replay r{};
    ASSERT_EQ(qv_collection_wal_attach(col.c, dir.c_str(), nullptr, &r, &e), QV_OK) << e.msg;
    EXPECT_EQ(r.records, 3u);
    EXPECT_EQ(qvtest::stats(col.c).n_attrs, kNA);
    auto got = get_items(col.c, live);
    for (size_t i = 0; i < live.size(); i++)
      expect_item(got[i], items[size_t(live[i])], live[i]);
    // Saved again (the log folded into a snapshot) and reopened: the same.
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  }
  Col col;
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&col.c, dir.c_str(), &e), QV_OK) << e.msg;
  auto got = get_items(col.c, live);
  for (size_t i = 0; i < live.size(); i++)
    expect_item(got[i], items[size_t(live[i])], live[i]);
  // A filter still finds them.
  qv_filter *f = nullptr;
  ASSERT_EQ(parse(col.c, "brand = 'brand0' and tags has 'u3'", &f, &e), QV_OK);
  uint64_t n = 0, want = 0;
  ASSERT_EQ(qv_collection_filter_count(col.c, f, &n, &e), QV_OK);
  for (int64_t id : live)
    want += items[size_t(id)].brand == "brand0" &&
            std::count(items[size_t(id)].tags.begin(), items[size_t(id)].tags.end(), "u3");
  EXPECT_EQ(n, want);
  EXPECT_GT(n, 0u);
  qv_filter_free(f);
  // An import without attributes keeps those of the ids it keeps (new ids: defaults).
  Col src;
  qv_collection_opts o = qvtest::opts(fx.ds.base.cols, "IVF4,Flat");
  ASSERT_EQ(qv_collection_create(&src.c, &o, &e), QV_OK);
  std::vector<int64_t> sids = qvtest::seq_ids(400);
  ASSERT_EQ(qv_collection_add(src.c, 400, sids.data(), fx.ds.base.f.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_build(src.c, nullptr, nullptr, &e), QV_OK);
  ASSERT_EQ(qv_collection_replace(col.c, src.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  auto after = get_items(col.c, {0, 10, 12, 13, 350});
  expect_item(after[0], items[0], 0);
  expect_item(after[1], items[10], 10);
  expect_item(after[2], Item{}, 12);
  expect_item(after[3], Item{}, 13);
  expect_item(after[4], Item{}, 350);
  // Staging (a new empty collection of the same schema takes the imported state): the imported
  // state adopts the serving one's attributes first, by id.
  Col staged, src2;
  make_attrs(staged, fx.ds.base.cols, "Flat");
  ASSERT_EQ(qv_collection_create(&src2.c, &o, &e), QV_OK);
  ASSERT_EQ(qv_collection_add(src2.c, 400, sids.data(), fx.ds.base.f.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_build(src2.c, nullptr, nullptr, &e), QV_OK);
  ASSERT_EQ(qv_collection_adopt_attrs(src2.c, col.c, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_replace(staged.c, src2.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  auto st_items = get_items(staged.c, {0, 10, 350});
  expect_item(st_items[0], items[0], 0);
  expect_item(st_items[1], items[10], 10);
  expect_item(st_items[2], Item{}, 350);
  qv_filter *sf = nullptr;
  ASSERT_EQ(parse(staged.c, "brand = 'brand0'", &sf, &e), QV_OK);
  uint64_t sn = 0, swant = 0;
  ASSERT_EQ(qv_collection_filter_count(staged.c, sf, &sn, &e), QV_OK);
  for (int64_t id = 0; id < 400; id++)
    swant += id < 300 && id != 13 && id != 12 ? items[size_t(id)].brand == "brand0" : 0;
  EXPECT_EQ(sn, swant);
  qv_filter_free(sf);
  // Another schema is refused by a swap.
  Col third;
  qvtest::make(third, fx.ds.base.cols, QV_METRIC_L2, "Flat");
  EXPECT_EQ(qv_collection_swap(col.c, third.c, &e), QV_EINVAL);
}

TEST(Attrs, DamagedAttrsBinIsCorrupt) {
  Fixture &fx = sift();
  TempDir tmp;
  const std::string dir = tmp.sub("c");
  {
    Col col;
    make_attrs(col, fx.ds.base.cols, "Flat");
    upsert_items(col.c, fx.ds.base, qvtest::seq_ids(50),
                 std::vector<Item>(fx.items.begin(), fx.items.begin() + 50));
    qv_error e{};
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
    qv_collection_set_keep_versions(col.c, 1, &e);
  }
  const std::string bin = dir + "/v000001/attrs.bin";
  ASSERT_TRUE(std::filesystem::exists(bin));
  {
    FILE *fp = fopen(bin.c_str(), "r+b");
    ASSERT_NE(fp, nullptr);
    fseek(fp, 40, SEEK_SET);
    fputc(0x7f, fp);
    fclose(fp);
  }
  Col col;
  qv_error e{};
  EXPECT_EQ(qv_collection_open(&col.c, dir.c_str(), &e), QV_ECORRUPT);
  EXPECT_NE(std::strstr(e.msg, "attrs.bin"), nullptr) << e.msg;
}

// int64 and float tests go through the sorted columns built at a save, with the rows written
// since (a delta re-tested from the columns), and through a column scan once the delta is large:
// both answer what a model of the writes says, at every operator.
TEST(Attrs, NumberTestsThroughTheSortedColumnsEqualAModel) {
  Fixture &fx = sift();
  TempDir tmp;
  Col col;
  make_attrs(col, fx.ds.base.cols, "Flat");
  const int64_t n = 3000;
  std::map<int64_t, Item> model;
  std::vector<int64_t> ids = qvtest::seq_ids(size_t(n));
  std::vector<Item> items(fx.items.begin(), fx.items.begin() + n);
  items[17].price = -0.0; // sorts and compares as 0
  upsert_items(col.c, fx.ds.base, ids, items);
  for (int64_t i = 0; i < n; i++)
    model[i] = items[size_t(i)];
  qv_error e{};
  ASSERT_EQ(qv_collection_save(col.c, tmp.sub("c").c_str(), &e), QV_OK) << e.msg; // sorts
  const Case checks[] = {
      {"category < 3", [](const Item &it) { return it.category < 3; }},
      {"category >= 7", [](const Item &it) { return it.category >= 7; }},
      {"category = 4", [](const Item &it) { return it.category == 4; }},
      {"category != 4", [](const Item &it) { return it.category != 4; }},
      {"category <= -1", [](const Item &) { return false; }},
      {"category > 9223372036854775807", [](const Item &) { return false; }},
      {"category >= -9223372036854775808", [](const Item &) { return true; }},
      {"category in (1, 5, 9)",
       [](const Item &it) { return it.category == 1 || it.category == 5 || it.category == 9; }},
      {"category not in (2, 3)",
       [](const Item &it) { return it.category != 2 && it.category != 3; }},
      {"category < 2.5", [](const Item &it) { return it.category < 2.5; }},
      {"price > 50.25", [](const Item &it) { return it.price > 50.25; }},
      {"price <= 10.25", [](const Item &it) { return it.price <= 10.25; }},
      {"price = 30.25", [](const Item &it) { return it.price == 30.25; }},
      {"price = 0", [](const Item &it) { return it.price == 0; }},
      {"price < 0", [](const Item &it) { return it.price < 0; }},
      {"price >= -1e300 and price < 1e300", [](const Item &) { return true; }},
      {"not (price > 20) or category = 3",
       [](const Item &it) { return !(it.price > 20) || it.category == 3; }},
  };
  auto check_all = [&](const char *when) {
    for (const Case &cs : checks) {
      qv_filter *f = nullptr;
      ASSERT_EQ(qv_filter_parse(col.c, cs.text, &f, &e), QV_OK) << cs.text << ": " << e.msg;
      uint64_t got = 0, want = 0;
      ASSERT_EQ(qv_collection_filter_count(col.c, f, &got, &e), QV_OK);
      for (const auto &kv : model)
        want += cs.pred(kv.second);
      EXPECT_EQ(got, want) << when << ": " << cs.text;
      qv_filter_free(f);
    }
  };
  check_all("sorted");
  // A few writes since the sort: replacements, deletes (rows move), new items.
  auto write = [&](int64_t from, int64_t to, int salt) {
    std::vector<int64_t> w;
    std::vector<Item> its;
    for (int64_t id = from; id < to; id++) {
      w.push_back(id);
      its.push_back(item_for(id, salt));
      model[id] = its.back();
    }
    upsert_items(col.c, fx.ds.base, w, its);
  };
  write(100, 160, 3);
  std::vector<int64_t> del;
  for (int64_t id = 500; id < 540; id++) {
    del.push_back(id);
    model.erase(id);
  }
  ASSERT_EQ(qv_collection_delete(col.c, del.size(), del.data(), nullptr, &e), QV_OK);
  write(n, n + 1, 1); // id 3000: row n .. (past what was sorted)
  check_all("sorted + delta");
  // Many writes: the delta passes count / 8 and the tests scan the columns.
  write(1000, 2000, 2);
  check_all("scan");
  ASSERT_EQ(qv_collection_save(col.c, tmp.sub("c").c_str(), &e), QV_OK) << e.msg; // sorts again
  check_all("sorted again");
}
