// Item attributes and filters through the real quiverd (raw gRPC calls: the messages are packed by
// attr_msgs.c): a schema at create, attribute columns on upsert, filtered searches equal to an
// exact search over the matching items computed here from what was written (exact, the IVF
// index's own paths, rerank, item-to-item, a pinned version), every bad input with its code, Get
// of the attributes after deletes and re-upserts, and attributes that survive a restart and a
// kill -9.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/collection.h"
#include "common/server.h"
#include "server/attr_model.h"

using qvtest::Client;
using qvtest::raw_call;

namespace {

using namespace qvattr;

class ServerAttrs : public qvtest::Sift5kServerTest {
protected:
  qvtest::GrpcScope grpc;
  Model m;
  void SetUp() override {
    Sift5kServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    m.base = &base;
    ASSERT_TRUE(srv.start(tmp.sub("data")));
  }
  am_search_req req(const char *coll, size_t nq, uint32_t k, const char *filter) const {
    am_search_req r{};
    r.coll = coll;
    r.q = q.f.data();
    r.floats = nq * 128;
    r.k = k;
    r.filter = filter;
    return r;
  }
  // Every id of a search's answer matches the filter (or pads) and none repeats in a row.
  void expect_all_match(const Answer &a, size_t k, const Filter &f) const {
    for (size_t i = 0; i < a.ids.size(); i++) {
      if (a.ids[i] < 0)
        continue;
      auto it = m.held.find(a.ids[i]);
      ASSERT_NE(it, m.held.end()) << a.ids[i];
      EXPECT_TRUE(f.match(it->second)) << f.text << ": id " << a.ids[i];
      const size_t row = i / k;
      EXPECT_EQ(std::count(a.ids.begin() + row * k, a.ids.begin() + (row + 1) * k, a.ids[i]), 1)
          << f.text;
    }
  }
};

} // namespace

TEST_F(ServerAttrs, FilteredSearchesEqualAnExactSearchOverTheMatchingItems) {
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "IVF16,Flat", true, &det), GRPC_STATUS_OK) << det;
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 0, 1000));
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 1000, 2000));
  {
    Client cl(srv.target());
    qv_error e{};
    ASSERT_EQ(qv_client_build(cl.c, "shop", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  Info info = describe(srv.target(), "shop");
  ASSERT_EQ(info.code, GRPC_STATUS_OK) << info.det;
  EXPECT_EQ(info.attrs, kSchemaText);
  EXPECT_GT(info.attr_bytes, 0u);
  EXPECT_EQ(info.memory, info.vec + info.idx + info.attr_bytes);
  const size_t nq = 20, k = 10;
  for (const Filter &f : filters()) {
    SCOPED_TRACE(f.text);
    std::vector<int64_t> want;
    std::vector<float> wsc;
    m.brute(q.f.data(), nq, k, f.match, &want, &wsc);
    // Exact search, and the exact filter path of an index search: the exact answer.
    am_search_req r = req("shop", nq, k, f.text);
    r.exact = 1;
    Answer a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    EXPECT_EQ(a.nq, nq);
    expect_same(a, want, wsc);
    r.exact = 0;
    r.filter_path = 1; // FILTER_PATH_EXACT
    a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    expect_same(a, want, wsc);
    // The index restricted to the matches (every list probed: exact but for ties), and the
    // automatic choice (a plain search: never coalesced with the unfiltered ones).
    for (int path : {2, 0}) {
      r.filter_path = path;
      r.nprobe = path == 2 ? 16 : 0;
      a = search(srv.target(), r);
      ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det << " (path " << path << ")";
      ASSERT_EQ(a.ids.size(), want.size());
      expect_all_match(a, k, f);
      EXPECT_GE(recall(a.ids, want), 0.99) << "path " << path;
      for (size_t i = 0; i < want.size(); i++)
        EXPECT_EQ(a.ids[i] < 0, want[i] < 0) << "path " << path << " at " << i;
    }
    // Rerank (refine) on the filtered candidates.
    r.filter_path = 0;
    r.nprobe = 16;
    r.rerank = 1;
    r.refine = 1;
    r.candidates = 40;
    a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    expect_all_match(a, k, f);
    EXPECT_GE(recall(a.ids, want), 0.99);
    // Pinned to the version it serves: the same; to another one: refused.
    r = req("shop", nq, k, f.text);
    r.exact = 1;
    r.version = 1;
    a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    EXPECT_TRUE(same_ids(a.ids, want));
    r.version = 7;
    EXPECT_EQ(search(srv.target(), r).code, GRPC_STATUS_FAILED_PRECONDITION);
    // Item-to-item: each item's own vector as the query, its own id left out.
    const std::vector<int64_t> qids = {1, 42, 777, 1500};
    std::vector<float> qv;
    for (int64_t id : qids)
      qv.insert(qv.end(), base.f.data() + id * 128, base.f.data() + (id + 1) * 128);
    m.brute(qv.data(), qids.size(), k, f.match, &want, &wsc, qids);
    r = req("shop", 0, k, f.text);
    r.q = nullptr;
    r.qids = qids.data();
    r.nqids = qids.size();
    r.exact = 1;
    a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    expect_same(a, want, wsc);
  }
  // Unfiltered searches beside them are unchanged: every item.
  std::vector<int64_t> want;
  std::vector<float> wsc;
  m.brute(
      q.f.data(), nq, k, [](const Item &) { return true; }, &want, &wsc);
  am_search_req r = req("shop", nq, k, nullptr);
  r.exact = 1;
  Answer a = search(srv.target(), r);
  ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
  EXPECT_TRUE(same_ids(a.ids, want));
}

TEST_F(ServerAttrs, BadFiltersColumnsAndSchemasAreRefusedWithTheRightCode) {
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "Flat", true, &det), GRPC_STATUS_OK) << det;
  ASSERT_EQ(create(srv.target(), "plain", "Flat", false, &det), GRPC_STATUS_OK) << det;
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 0, 50));
  Model plain;
  plain.base = &base;
  {
    std::vector<int64_t> ids = {0, 1, 2};
    std::vector<Item> items = {item_of(0), item_of(1), item_of(2)};
    ASSERT_EQ(plain.upsert(srv.target(), "plain", ids, items, false, &det), GRPC_STATUS_OK) << det;
  }
  // Filters: an unknown attribute, the wrong type, a malformed expression: INVALID_ARGUMENT
  // naming the column of the mistake, on every search path.
  struct Bad {
    const char *filter;
    const char *says;
  };
  const Bad bad[] = {{"colour = 3", "column"},        {"brand < 3", "column"},
                     {"price = 'cheap'", "column"},   {"category in (3,", "column"},
                     {"tags = \"summer\"", "column"}, {"category has \"x\"", "column"},
                     {"sold_out and and", "column"}};
  for (const Bad &b : bad) {
    for (int variant = 0; variant < 4; variant++) {
      am_search_req r = req("shop", 2, 5, b.filter);
      const int64_t qids[] = {3, 4};
      if (variant == 1)
        r.exact = 1;
      if (variant == 2) {
        r.rerank = 1;
        r.refine = 1;
      }
      if (variant == 3) {
        r.q = nullptr;
        r.floats = 0;
        r.qids = qids;
        r.nqids = 2;
      }
      Answer a = search(srv.target(), r);
      EXPECT_EQ(a.code, GRPC_STATUS_INVALID_ARGUMENT) << b.filter << " variant " << variant;
      EXPECT_NE(a.det.find(b.says), std::string::npos) << b.filter << ": " << a.det;
    }
  }
  // A filter on a collection without attributes: FAILED_PRECONDITION; a filter path out of
  // range: INVALID_ARGUMENT.
  Answer a = search(srv.target(), req("plain", 1, 5, "category = 1"));
  EXPECT_EQ(a.code, GRPC_STATUS_FAILED_PRECONDITION) << a.det;
  EXPECT_FALSE(a.det.empty());
  am_search_req r = req("shop", 1, 5, "category = 1");
  r.filter_path = 7;
  a = search(srv.target(), r);
  EXPECT_EQ(a.code, GRPC_STATUS_INVALID_ARGUMENT) << a.det;
  EXPECT_NE(a.det.find("filter_path"), std::string::npos) << a.det;
  r.filter_path = 1;
  a = search(srv.target(), r);
  EXPECT_EQ(a.code, GRPC_STATUS_OK) << a.det; // a control
  // Upserts: a column of no attribute, in the wrong list, of the wrong count, twice, with a bad
  // value, to a collection without attributes: INVALID_ARGUMENT; nothing is written.
  const int64_t ids[] = {900, 901, 902};
  std::vector<float> v(base.f.begin(), base.f.begin() + 3 * 128);
  const int64_t ints[] = {1, 2, 3};
  const double prices[] = {1.5, 2.5, 3.5}, nan_prices[] = {1.5, NAN, 2};
  struct BadCol {
    const char *what;
    std::vector<am_col> cols;
    const char *says;
  };
  const std::vector<BadCol> cols = {
      {"unknown name", {{"colour", AM_INTS, 3, ints, nullptr, nullptr, nullptr}}, "colour"},
      {"the wrong list",
       {{"price", AM_INTS, 3, ints, nullptr, nullptr, nullptr}},
       "attribute 'price' is float: send its values in floats (got 3 ints)"},
      {"the wrong count", {{"category", AM_INTS, 2, ints, nullptr, nullptr, nullptr}}, "category"},
      {"twice",
       {{"price", AM_FLOATS, 3, nullptr, prices, nullptr, nullptr},
        {"price", AM_FLOATS, 3, nullptr, prices, nullptr, nullptr}},
       "price"},
      {"a NaN", {{"price", AM_FLOATS, 3, nullptr, nan_prices, nullptr, nullptr}}, "price"},
  };
  for (const BadCol &b : cols) {
    for (const char *coll : {"shop", "plain"}) {
      uint8_t *p = nullptr;
      const size_t n =
          am_upsert(&p, coll, 3, ids, v.data(), v.size(), b.cols.size(), b.cols.data());
      EXPECT_EQ(raw_call(srv.target(), kUpsert, bytes(p, n), &det), GRPC_STATUS_INVALID_ARGUMENT)
          << b.what << " to " << coll;
      if (std::string(coll) == "shop") {
        EXPECT_NE(det.find(b.says), std::string::npos) << b.what << ": " << det;
      } else {
        EXPECT_NE(det.find("no attributes"), std::string::npos) << b.what << ": " << det;
      }
    }
  }
  EXPECT_EQ(get(srv.target(), "shop", {900, 901}, {"attributes"}),
            m.get_text({900, 901})); // none was written
  // Schemas: an unset or unknown type, a repeated name, a keyword as a name, too many, a name
  // too long: INVALID_ARGUMENT, and no collection.
  struct BadSchema {
    const char *what;
    std::vector<std::string> names;
    std::vector<int> types;
  };
  std::vector<BadSchema> schemas = {
      {"unset type", {"a"}, {0}},
      {"unknown type", {"a"}, {9}},
      {"repeated name", {"a", "a"}, {1, 2}},
      {"a keyword", {"and"}, {1}},
      {"a bad name", {"has space"}, {1}},
      {"an empty name", {""}, {1}},
      {"a name too long", {std::string(70, 'x')}, {1}},
      {"33 attributes", {}, {}},
  };
  for (int i = 0; i < 33; i++) {
    schemas.back().names.push_back("a" + std::to_string(i));
    schemas.back().types.push_back(1);
  }
  for (const BadSchema &b : schemas) {
    std::vector<const char *> names;
    for (const std::string &s : b.names)
      names.push_back(s.c_str());
    uint8_t *p = nullptr;
    const size_t n =
        am_create(&p, "fresh", 8, 1, "Flat", names.size(), names.data(), b.types.data(), 0, 0);
    EXPECT_EQ(raw_call(srv.target(), kCreate, bytes(p, n), &det), GRPC_STATUS_INVALID_ARGUMENT)
        << b.what << ": " << det;
    EXPECT_FALSE(det.empty()) << b.what;
    EXPECT_EQ(describe(srv.target(), "fresh").code, GRPC_STATUS_NOT_FOUND) << b.what;
  }
  // Get: an unknown field names the ones there are.
  grpc_status_code code;
  get(srv.target(), "shop", {1}, {"colour"}, &code, &det);
  EXPECT_EQ(code, GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("\"attributes\""), std::string::npos) << det;
  // Attributes of a collection without a schema: no columns (not an error).
  EXPECT_EQ(get(srv.target(), "plain", {0, 1}, {"attributes"}), "ids=0,1 missing=\n");
}

TEST_F(ServerAttrs, GetAnswersTheAttributesWrittenAfterDeletesAndReupserts) {
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "Flat", true, &det), GRPC_STATUS_OK) << det;
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 0, 100));
  const std::vector<int64_t> ask = {3, 99999, 7, 3, 60};
  EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
  // No fields: everything, attributes too; vector only: none.
  EXPECT_EQ(get(srv.target(), "shop", ask, {}), m.get_text(ask));
  EXPECT_EQ(get(srv.target(), "shop", ask, {"vector"}), "ids=3,7,3,60 missing=99999\n");
  // A delete, a re-upsert with other attributes, one without columns (its defaults), and the
  // deleted id written again.
  Client cl(srv.target());
  qv_error e{};
  const int64_t gone = 7;
  ASSERT_EQ(qv_client_delete(cl.c, "shop", 1, &gone, nullptr, nullptr, &e), QV_OK) << e.msg;
  m.held.erase(7);
  EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
  ASSERT_EQ(m.upsert(srv.target(), "shop", {3}, {item_of(3, 1)}, true, &det), GRPC_STATUS_OK)
      << det;
  ASSERT_EQ(m.upsert(srv.target(), "shop", {60}, {item_of(60, 2)}, false, &det), GRPC_STATUS_OK)
      << det;
  EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
  ASSERT_EQ(m.upsert(srv.target(), "shop", {7}, {item_of(7, 1)}, true, &det), GRPC_STATUS_OK)
      << det;
  EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes", "vector"}), m.get_text(ask));
  // Searches see the same: only 3 and 7 are "zeta" now; 60 has the defaults.
  for (const char *f : {"brand = \"zeta\"", "brand = '' and category = 0 and not sold_out"}) {
    am_search_req r = req("shop", 3, 5, f);
    r.exact = 1;
    std::vector<int64_t> want;
    std::vector<float> wsc;
    m.brute(
        q.f.data(), 3, 5,
        std::string(f).find("zeta") != std::string::npos
            ? std::function<bool(const Item &)>([](const Item &x) { return x.brand == "zeta"; })
            : [](const Item &x) { return x.brand.empty() && x.category == 0 && !x.sold_out; },
        &want, &wsc);
    Answer a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    EXPECT_TRUE(same_ids(a.ids, want)) << f;
  }
}

TEST_F(ServerAttrs, AttributesSurviveARestartAndAKill9) {
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "IVF8,Flat", true, &det), GRPC_STATUS_OK) << det;
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 0, 300));
  {
    Client cl(srv.target());
    qv_error e{};
    ASSERT_EQ(qv_client_build(cl.c, "shop", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  std::vector<int64_t> ask;
  for (int64_t id = 0; id < 400; id += 13)
    ask.push_back(id);
  ask.push_back(5);
  const Filter f = filters()[0];
  auto check = [&](const char *when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
    std::vector<int64_t> want;
    std::vector<float> wsc;
    m.brute(q.f.data(), 10, 10, f.match, &want, &wsc);
    am_search_req r = req("shop", 10, 10, f.text);
    r.exact = 1;
    Answer a = search(srv.target(), r);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    EXPECT_TRUE(same_ids(a.ids, want));
    Info info = describe(srv.target(), "shop");
    EXPECT_EQ(info.attrs, kSchemaText);
  };
  check("before any restart");
  ASSERT_EQ(srv.stop(SIGTERM), 0);
  ASSERT_TRUE(srv.start(srv.data_dir));
  check("after a restart");
  // Acknowledged writes only in the write-ahead log at a kill -9: new items and a re-upsert.
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 300, 350));
  ASSERT_EQ(m.upsert(srv.target(), "shop", {5}, {item_of(5, 1)}, true, &det), GRPC_STATUS_OK)
      << det;
  check("before the kill");
  srv.stop(SIGKILL);
  ASSERT_TRUE(srv.start(srv.data_dir));
  check("after a kill -9");
}

// kill -9 at random points while a client upserts items with attributes (new ones and
// re-upserts with other values) and the server snapshots often (--wal-snapshot-mb 1): after each
// restart every acknowledged write's attributes are there exactly; an unacknowledged one is there
// whole or not at all.
TEST_F(ServerAttrs, KillNineDuringAttributeWritesKeepsEveryAcknowledgedOne) {
  srv.stop();
  const std::vector<std::string> flags = {"--wal-snapshot-mb", "1"};
  ASSERT_TRUE(srv.start(srv.data_dir, flags));
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "Flat", true, &det), GRPC_STATUS_OK) << det;
  std::map<int64_t, int> variant; // of each acknowledged item
  int64_t next = 0;
  uint32_t seed = 2026;
  for (int round = 0; round < 5; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::atomic<bool> stop{false};
    std::vector<int64_t> sent; // the write in flight at the kill
    std::vector<Item> sent_items;
    size_t batches = 0;
    std::thread w([&] {
      while (!stop) {
        std::vector<int64_t> ids;
        std::vector<Item> items;
        for (int j = 0; j < 10; j++, next++) {
          ids.push_back(next);
          items.push_back(item_of(next, 0));
        }
        for (int j = 0; j < 5 && !variant.empty(); j++) {
          seed = seed * 1103515245u + 12345u;
          const int64_t id = int64_t(seed >> 8) % next;
          if (!variant.count(id) || std::count(ids.begin(), ids.end(), id))
            continue;
          ids.push_back(id);
          items.push_back(item_of(id, 1 - variant[id]));
        }
        std::string d;
        if (m.upsert(srv.target(), "shop", ids, items, true, &d) != GRPC_STATUS_OK) {
          sent = ids;
          sent_items = items;
          return; // the server is gone
        }
        for (const int64_t id : ids)
          variant[id] = variant.count(id) ? 1 - variant[id] : 0;
        batches++;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + (round * 337) % 700));
    srv.stop(SIGKILL);
    stop = true;
    w.join();
    ASSERT_TRUE(srv.start(srv.data_dir, flags));
    EXPECT_GT(batches, 0u);
    // The acknowledged ones, exactly (in Gets of at most 500 ids).
    std::vector<int64_t> all;
    for (const auto &[id, v] : variant)
      if (std::find(sent.begin(), sent.end(), id) == sent.end())
        all.push_back(id);
    for (size_t at = 0; at < all.size(); at += 500) {
      std::vector<int64_t> ask(all.begin() + at, all.begin() + std::min(all.size(), at + 500));
      ASSERT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
    }
    // The write in flight: there whole or not at all (the model follows).
    if (!sent.empty()) {
      const std::string got = get(srv.target(), "shop", sent, {"attributes"});
      const std::string before = m.get_text(sent);
      Model after = m;
      for (size_t i = 0; i < sent.size(); i++)
        after.held[sent[i]] = sent_items[i];
      const std::string now = after.get_text(sent);
      EXPECT_TRUE(got == before || got == now) << got << "\nnot\n" << before << "\nnor\n" << now;
      if (got == now) {
        m = after;
        for (const int64_t id : sent)
          variant[id] = variant.count(id) ? 1 - variant[id] : 0;
      }
    }
  }
}

// A new data version staged from an offline index (files without attributes) and flipped to: its
// items keep the attributes the serving version held for their ids (new ids get the defaults),
// and writes made while it was staged reach it with theirs.
TEST_F(ServerAttrs, AStagedVersionFromFilesKeepsTheServingAttributes) {
  std::string det;
  ASSERT_EQ(create(srv.target(), "shop", "Flat", true, &det), GRPC_STATUS_OK) << det;
  ASSERT_NO_FATAL_FAILURE(m.upsert_range(srv.target(), "shop", 0, 100));
  const std::string dir = tmp.sub("v2");
  qvtest::offline_index(dir, base, "Flat"); // ids 0 .. 4999, base's rows, no attributes
  Client cl(srv.target());
  qv_client_import_opts o{};
  o.index_dir = dir.c_str();
  o.stage = 1;
  qv_error e{};
  ASSERT_EQ(qv_client_import(cl.c, "shop", &o, nullptr, nullptr, nullptr, nullptr, &e), QV_OK)
      << e.msg;
  // While staged: a write reaches both versions.
  ASSERT_EQ(m.upsert(srv.target(), "shop", {5}, {item_of(5, 1)}, true, &det), GRPC_STATUS_OK)
      << det;
  qv_rollout_status rs{};
  ASSERT_EQ(qv_client_rollout(cl.c, "shop", QV_ROLLOUT_FLIP, 2, &rs, &e), QV_OK) << e.msg;
  for (int64_t id = 100; id < 5000; id++) { // the new version's other items: defaults
    Item d;
    d.row = id;
    m.held[id] = d;
  }
  const std::vector<int64_t> ask = {0, 5, 42, 99, 100, 4999};
  EXPECT_EQ(get(srv.target(), "shop", ask, {"attributes"}), m.get_text(ask));
  // Filters over the flipped version see the same.
  am_search_req r = req("shop", 4, 10, "brand = 'acme' or tags has 'sale'");
  r.exact = 1;
  std::vector<int64_t> want;
  std::vector<float> wsc;
  m.brute(
      q.f.data(), 4, 10, [](const Item &x) { return x.brand == "acme" || x.has("sale"); }, &want,
      &wsc);
  Answer a = search(srv.target(), r);
  ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
  EXPECT_TRUE(same_ids(a.ids, want));
}
