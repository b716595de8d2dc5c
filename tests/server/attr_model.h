// What the attribute tests share (tests/server/test_attrs.cc, tests/cluster/test_fleet.cc): the
// schema they create, the items they write (a row of sift5k's base and attributes computed from
// the id), the model of what a collection holds with the exact answer of a filtered search over
// it, and raw calls with the messages attr_msgs.c packs. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/server.h"
#include "server/attr_msgs.h"

namespace qvattr {

using qvtest::raw_call;

inline const char *const kCreate = "/quiver.v1.Retrieval/CreateCollection",
                         *const kUpsert = "/quiver.v1.Retrieval/Upsert",
                         *const kSearch = "/quiver.v1.Retrieval/Search",
                         *const kGet = "/quiver.v1.Retrieval/Get",
                         *const kDescribe = "/quiver.v1.Retrieval/DescribeCollection";

inline std::string bytes(uint8_t *p, size_t n) {
  std::string s(reinterpret_cast<const char *>(p), n);
  free(p);
  return s;
}

inline std::string text(char *p) {
  std::string s = p ? p : "(does not decode)";
  free(p);
  return s;
}

// The tests' schema.
inline const char *const kNames[] = {"category", "price", "sold_out", "brand", "tags"};
inline const int kTypes[] = {AM_INTS, AM_FLOATS, AM_BOOLS, AM_KEYWORDS, AM_TAGS};

// One item as the tests write it: its vector (a row of sift5k's base) and its attributes.
struct Item {
  int64_t row = 0;
  int64_t category = 0;
  double price = 0;
  bool sold_out = false;
  std::string brand;
  std::vector<std::string> tags; // sorted, no repeats
  bool has(const std::string &t) const {
    return std::find(tags.begin(), tags.end(), t) != tags.end();
  }
};

inline const char *const kBrands[] = {"acme", "globex", "initech", "umbrella"};

// Item `id` as first written (variant 0), as re-written (1), or with no attribute columns (the
// defaults: variant 2).
inline Item item_of(int64_t id, int variant = 0) {
  Item it;
  if (variant == 2) {
    it.row = (id + 1000) % 5000;
    return it;
  }
  if (variant == 1) {
    it.row = (id + 2500) % 5000;
    it.category = 100 + id % 3;
    it.price = 1000.5;
    it.sold_out = true;
    it.brand = "zeta";
    it.tags = {"vintage"};
    return it;
  }
  it.row = id % 5000; // a row of sift5k's base
  it.category = id % 7;
  it.price = double(id % 100) * 0.5 + 0.25;
  it.sold_out = id % 5 == 0;
  it.brand = kBrands[id % 4];
  if (id % 10 == 0)
    it.tags.push_back("new");
  if (id % 4 == 0)
    it.tags.push_back("sale");
  if (id % 3 == 0)
    it.tags.push_back("summer");
  if (id % 3 == 1)
    it.tags.push_back("winter");
  return it;
}

// The attribute columns of a list of items (what am_col points at lives here).
struct Cols {
  std::vector<int64_t> cat, sold;
  std::vector<double> price;
  std::vector<std::string> brand_s, tag_s;
  std::vector<const char *> brand, tags;
  std::vector<uint32_t> counts;
  std::vector<am_col> cols;
  explicit Cols(const std::vector<Item> &items) {
    for (const Item &x : items) {
      cat.push_back(x.category);
      price.push_back(x.price);
      sold.push_back(x.sold_out);
      brand_s.push_back(x.brand);
      counts.push_back(uint32_t(x.tags.size()));
      tag_s.insert(tag_s.end(), x.tags.begin(), x.tags.end());
    }
    for (const std::string &s : brand_s)
      brand.push_back(s.c_str());
    for (const std::string &s : tag_s)
      tags.push_back(s.c_str());
    const size_t n = items.size();
    cols.push_back({kNames[0], AM_INTS, n, cat.data(), nullptr, nullptr, nullptr});
    cols.push_back({kNames[1], AM_FLOATS, n, nullptr, price.data(), nullptr, nullptr});
    cols.push_back({kNames[2], AM_BOOLS, n, sold.data(), nullptr, nullptr, nullptr});
    cols.push_back({kNames[3], AM_KEYWORDS, n, nullptr, nullptr, brand.data(), nullptr});
    cols.push_back({kNames[4], AM_TAGS, n, nullptr, nullptr, tags.data(), counts.data()});
  }
};

struct Answer {
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string det;
  std::vector<int64_t> ids;
  std::vector<float> scores;
  uint32_t nq = 0, k = 0;
};

inline Answer search(const std::string &target, const am_search_req &r) {
  uint8_t *p = nullptr;
  const size_t n = am_search(&p, &r);
  Answer a;
  std::string out;
  a.code = raw_call(target, kSearch, bytes(p, n), &a.det, &out);
  if (a.code == GRPC_STATUS_OK) {
    a.ids.resize(out.size() + 1); // each id takes a byte at least
    a.scores.resize(a.ids.size());
    long got = am_search_answer(reinterpret_cast<const uint8_t *>(out.data()), out.size(),
                                a.ids.data(), a.scores.data(), a.ids.size(), &a.nq, &a.k);
    EXPECT_GE(got, 0) << "a SearchResponse that does not decode";
    a.ids.resize(size_t(got < 0 ? 0 : got));
    a.scores.resize(a.ids.size());
  }
  return a;
}

// A collection of the tests' schema (or none) and spec, through a raw CreateCollection (shards,
// replicas: a router's).
inline grpc_status_code create(const std::string &target, const char *name, const char *spec,
                               bool schema, std::string *det, uint32_t shards = 0,
                               uint32_t replicas = 0) {
  uint8_t *p = nullptr;
  const size_t n = am_create(&p, name, 128, 1 /* METRIC_L2 */, spec, schema ? 5 : 0, kNames, kTypes,
                             shards, replicas);
  return raw_call(target, kCreate, bytes(p, n), det);
}

// The tests' model of a collection: what it must hold, by id.
struct Model {
  const qvtest::Matrix *base = nullptr;
  std::map<int64_t, Item> held;

  // Upserts ids with their items (with_attrs = false: no columns; the model gets the defaults).
  grpc_status_code upsert(const std::string &target, const char *coll,
                          const std::vector<int64_t> &ids, const std::vector<Item> &items,
                          bool with_attrs, std::string *det) {
    std::vector<float> v;
    for (const Item &x : items)
      v.insert(v.end(), base->f.data() + x.row * 128, base->f.data() + (x.row + 1) * 128);
    Cols c(items);
    uint8_t *p = nullptr;
    const size_t n = am_upsert(&p, coll, ids.size(), ids.data(), v.data(), v.size(),
                               with_attrs ? c.cols.size() : 0, c.cols.data());
    grpc_status_code st = raw_call(target, kUpsert, bytes(p, n), det);
    if (st == GRPC_STATUS_OK)
      for (size_t i = 0; i < ids.size(); i++) {
        held[ids[i]] = items[i];
        if (!with_attrs) {
          Item d;
          d.row = items[i].row;
          held[ids[i]] = d;
        }
      }
    return st;
  }
  void upsert_range(const std::string &target, const char *coll, int64_t from, int64_t to,
                    int variant = 0) {
    std::vector<int64_t> ids;
    std::vector<Item> items;
    for (int64_t id = from; id < to; id++) {
      ids.push_back(id);
      items.push_back(item_of(id, variant));
    }
    std::string det;
    ASSERT_EQ(upsert(target, coll, ids, items, true, &det), GRPC_STATUS_OK) << det;
  }

  // The exact answer (k per query, ascending squared L2, ties by id, padded with -1) over the
  // held items that match, each query's own id (skip[i], -1: none) left out.
  void brute(const float *queries, size_t nq, size_t k, const std::function<bool(const Item &)> &m,
             std::vector<int64_t> *ids, std::vector<float> *scores,
             const std::vector<int64_t> &skip = {}) const {
    ids->clear();
    scores->clear();
    for (size_t i = 0; i < nq; i++) {
      std::vector<std::pair<double, int64_t>> all;
      for (const auto &[id, x] : held) {
        if (!m(x) || (!skip.empty() && skip[i] == id))
          continue;
        const float *v = base->f.data() + x.row * 128, *q = queries + i * 128;
        double d = 0;
        for (size_t j = 0; j < 128; j++)
          d += (double(q[j]) - v[j]) * (double(q[j]) - v[j]);
        all.push_back({d, id});
      }
      std::sort(all.begin(), all.end());
      for (size_t j = 0; j < k; j++) {
        ids->push_back(j < all.size() ? all[j].second : -1);
        scores->push_back(j < all.size() ? float(all[j].first) : INFINITY);
      }
    }
  }

  // The text of a Get of `ask` with "attributes": the ids found and missing, then the columns.
  std::string get_text(const std::vector<int64_t> &ask) const {
    std::string head = "ids=", miss = " missing=";
    std::vector<Item> found;
    bool first = true, mfirst = true;
    for (int64_t id : ask) {
      auto it = held.find(id);
      if (it == held.end()) {
        miss += (mfirst ? "" : ",") + std::to_string(id);
        mfirst = false;
        continue;
      }
      head += (first ? "" : ",") + std::to_string(id);
      first = false;
      found.push_back(it->second);
    }
    Cols c(found);
    return head + miss + "\n" + text(am_cols_text(c.cols.size(), c.cols.data()));
  }
};

inline std::string get(const std::string &target, const char *coll, const std::vector<int64_t> &ids,
                       const std::vector<const char *> &fields, grpc_status_code *code = nullptr,
                       std::string *det_out = nullptr) {
  uint8_t *p = nullptr;
  const size_t n = am_get(&p, coll, ids.data(), ids.size(), fields.data(), fields.size());
  std::string det, out;
  grpc_status_code st = raw_call(target, kGet, bytes(p, n), &det, &out);
  if (code)
    *code = st;
  if (det_out)
    *det_out = det;
  if (st != GRPC_STATUS_OK)
    return "status " + std::to_string(int(st)) + ": " + det;
  return text(am_get_text(reinterpret_cast<const uint8_t *>(out.data()), out.size()));
}

struct Info {
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string det, attrs;
  uint64_t attr_bytes = 0, memory = 0, vec = 0, idx = 0;
};

inline Info describe(const std::string &target, const char *coll) {
  Info i;
  std::string body = std::string(1, char(1 << 3 | 2)) + char(strlen(coll)) + coll, out;
  i.code = raw_call(target, kDescribe, body, &i.det, &out);
  if (i.code == GRPC_STATUS_OK)
    i.attrs = text(am_info(reinterpret_cast<const uint8_t *>(out.data()), out.size(), &i.attr_bytes,
                           &i.memory, &i.vec, &i.idx));
  return i;
}

inline const char *const kSchemaText = "category:1,price:2,sold_out:3,brand:4,tags:5";

// The filters the tests search with, and what they mean.
struct Filter {
  const char *text;
  std::function<bool(const Item &)> match;
};

inline std::vector<Filter> filters() {
  return {
      {"category in (3, 5) and price < 30 and not sold_out and tags has \"summer\"",
       [](const Item &x) {
         return (x.category == 3 || x.category == 5) && x.price < 30 && !x.sold_out &&
                x.has("summer");
       }},
      {"brand = \"acme\" or brand == 'initech'",
       [](const Item &x) { return x.brand == "acme" || x.brand == "initech"; }},
      {"sold_out", [](const Item &x) { return x.sold_out; }},
      {"tags has any (\"sale\", \"new\") and category != 2",
       [](const Item &x) { return (x.has("sale") || x.has("new")) && x.category != 2; }},
      {"brand not in ('acme', 'globex') and tags has all ('winter', 'sale')",
       [](const Item &x) {
         return x.brand != "acme" && x.brand != "globex" && x.has("winter") && x.has("sale");
       }},
      // Fewer matches than k: the rows pad.
      {"category = 6 and price < 1", [](const Item &x) { return x.category == 6 && x.price < 1; }},
      // An INT64 against a real number, NOT over OR, and parentheses.
      {"NOT (category >= 2.5 OR price > 40) AND (sold_out = false)",
       [](const Item &x) { return !(x.category >= 2.5 || x.price > 40) && !x.sold_out; }},
  };
}

// The same ids, and the same scores where there is an id (pads' scores are the index layer's).
inline ::testing::AssertionResult same_ids(const std::vector<int64_t> &got,
                                           const std::vector<int64_t> &want) {
  if (got == want)
    return ::testing::AssertionSuccess();
  auto f = ::testing::AssertionFailure();
  f << got.size() << " ids, " << want.size() << " wanted";
  for (size_t i = 0, shown = 0; i < std::max(got.size(), want.size()) && shown < 8; i++)
    if (i >= got.size() || i >= want.size() || got[i] != want[i]) {
      f << "; at " << i << ": " << (i < got.size() ? got[i] : -2) << " not "
        << (i < want.size() ? want[i] : -2);
      shown++;
    }
  return f;
}

inline void expect_same(const Answer &a, const std::vector<int64_t> &want,
                        const std::vector<float> &wsc) {
  EXPECT_TRUE(same_ids(a.ids, want));
  ASSERT_EQ(a.scores.size(), wsc.size());
  for (size_t i = 0; i < wsc.size(); i++)
    if (want[i] >= 0) {
      EXPECT_EQ(a.scores[i], wsc[i]) << "at " << i;
    }
}

inline double recall(const std::vector<int64_t> &got, const std::vector<int64_t> &want) {
  size_t hit = 0, n = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i] < 0)
      continue;
    n++;
    hit += std::count(got.begin(), got.end(), want[i]) > 0;
  }
  return n ? double(hit) / double(n) : 1.0;
}

} // namespace qvattr
