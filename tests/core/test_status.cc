// Tests for quiver/status.h: status strings and the qv_error object.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "quiver/status.h"

TEST(Status, StrAndName) {
  EXPECT_STREQ(qv_status_str(QV_OK), "ok");
  EXPECT_STREQ(qv_status_str(QV_EINVAL), "invalid argument");
  EXPECT_STREQ(qv_status_str(QV_ECORRUPT), "corrupt data");
  EXPECT_STREQ(qv_status_str(QV_EINTERNAL), "internal error");
  EXPECT_STREQ(qv_status_name(QV_OK), "QV_OK");
  EXPECT_STREQ(qv_status_name(QV_ENOTFOUND), "QV_ENOTFOUND");
  EXPECT_STREQ(qv_status_name(QV_EUNSUPPORTED), "QV_EUNSUPPORTED");
  EXPECT_EQ(QV_OK, 0);
  EXPECT_EQ(QV_EINTERNAL, 12);
}

TEST(Status, UnknownValues) {
  EXPECT_STREQ(qv_status_str(static_cast<qv_status>(99)), "unknown status");
  EXPECT_STREQ(qv_status_name(static_cast<qv_status>(99)), "QV_UNKNOWN");
  EXPECT_STREQ(qv_status_str(static_cast<qv_status>(-1)), "unknown status");
}

TEST(Status, EveryCodeHasDistinctNames) {
  for (int i = 0; i <= QV_EPERMISSION; i++) {
    qv_status s = static_cast<qv_status>(i);
    EXPECT_STRNE(qv_status_str(s), "unknown status") << i;
    EXPECT_STRNE(qv_status_name(s), "QV_UNKNOWN") << i;
    for (int j = 0; j < i; j++)
      EXPECT_STRNE(qv_status_name(s), qv_status_name(static_cast<qv_status>(j)));
  }
}

TEST(Error, SetFormatsAndReturnsCode) {
  qv_error err;
  qv_error_clear(&err);
  EXPECT_EQ(err.code, QV_OK);
  EXPECT_STREQ(err.msg, "");
  EXPECT_EQ(qv_error_set(&err, QV_EINVAL, "bad k %d in %s", 7, "search"), QV_EINVAL);
  EXPECT_EQ(err.code, QV_EINVAL);
  EXPECT_STREQ(err.msg, "bad k 7 in search");
  qv_error_clear(&err);
  EXPECT_EQ(err.code, QV_OK);
  EXPECT_STREQ(err.msg, "");
}

TEST(Error, NullErrIsAllowed) {
  EXPECT_EQ(qv_error_set(nullptr, QV_EIO, "x %d", 1), QV_EIO);
  // The failure is passed on without an error object: `return qv_error_prefix(err, st, ...)`
  // returned QV_OK for err == NULL before, turning a failure into success.
  EXPECT_EQ(qv_error_prefix(nullptr, QV_EIO, "ctx"), QV_EIO);
  qv_error_clear(nullptr);
}

TEST(Error, LongMessageIsTruncated) {
  qv_error err;
  qv_error_clear(&err);
  std::string longmsg(1000, 'x');
  EXPECT_EQ(qv_error_set(&err, QV_ECORRUPT, "%s", longmsg.c_str()), QV_ECORRUPT);
  EXPECT_EQ(err.code, QV_ECORRUPT);
  EXPECT_EQ(std::strlen(err.msg), static_cast<size_t>(QV_ERROR_MSG_MAX - 1));
  EXPECT_EQ(std::string(err.msg), longmsg.substr(0, QV_ERROR_MSG_MAX - 1));
}

TEST(Error, PrefixPrepends) {
  qv_error err;
  qv_error_clear(&err);
  qv_error_set(&err, QV_ENOTFOUND, "no such index");
  EXPECT_EQ(qv_error_prefix(&err, QV_ENOTFOUND, "collection %s", "docs"), QV_ENOTFOUND);
  EXPECT_STREQ(err.msg, "collection docs: no such index");
  EXPECT_EQ(err.code, QV_ENOTFOUND);
}

TEST(Error, PrefixTruncates) {
  qv_error err;
  qv_error_clear(&err);
  std::string longmsg(QV_ERROR_MSG_MAX - 1, 'm');
  qv_error_set(&err, QV_EIO, "%s", longmsg.c_str());
  EXPECT_EQ(qv_error_prefix(&err, QV_EIO, "%s", "ctx"), QV_EIO);
  EXPECT_EQ(std::strlen(err.msg), static_cast<size_t>(QV_ERROR_MSG_MAX - 1));
  EXPECT_EQ(std::string(err.msg, 5), "ctx: ");
}
