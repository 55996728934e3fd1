// RFC 9112 request framing rules (message_framing.hpp), without sockets.
#include <services/http/message_framing.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace turret::http_frontend {
namespace {

using lines = std::vector<std::string_view>;

/// The verdict on a request with these Transfer-Encoding and Content-Length field lines.
framing_verdict check(const lines& te, const lines& cl = {}, int version = 11) {
  return check_request_framing(version, te, cl);
}

TEST(HttpFraming, NoBody) {
  const auto v = check({});
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.framing, body_framing::none);
}

TEST(HttpFraming, ChunkedAccepted) {
  // List syntax of RFC 9110 5.6.1: OWS around elements, empty elements, case-insensitive coding names; several field
  // lines form one list.
  for (const lines& te :
       {lines{"chunked"}, lines{"CHUNKED"}, lines{"Chunked"}, lines{" chunked\t"}, lines{", chunked,"},
        lines{",,\t, chunked , ,"}, lines{"", "chunked"}, lines{",", "chunked", ","}}) {
    const auto v = check(te);
    EXPECT_TRUE(v.ok()) << te.size() << " " << te.back() << ": " << v.message;
    EXPECT_EQ(v.framing, body_framing::chunked);
  }
}

TEST(HttpFraming, FinalCodingNotChunkedIs400) {
  // RFC 9112 6.3: chunked not the final coding of a request -> 400 and close (the body length is unknown).
  for (std::string_view te : {"xchunked", "chunked, gzip", "chunked , identity", "gzip", "identity", "chunkedx",
                              "chunked;q=1", "chunked; foo=\"bar\"", "chunked, ,gzip"}) {
    const auto v = check({te});
    EXPECT_EQ(v.status, 400) << te;
    EXPECT_EQ(v.code, "bad_request") << te;
  }
  EXPECT_EQ(check({"chunked", "gzip"}).status, 400);  // two field lines, one list: chunked, gzip
}

TEST(HttpFraming, EmptyOrMalformedTransferEncodingIs400) {
  for (std::string_view te :
       {"", " ", ",", " , ,", "chu nked", "chunked gzip", "\"chunked\"", "chunked;", "chunked;a",
        "chunked;a=", "gzip;a=\"unterminated, chunked", "chunked\x0b", "ch\x7funked", "chunked,\xff"}) {
    const auto v = check({te});
    EXPECT_EQ(v.status, 400) << te;
  }
  EXPECT_EQ(check({"", ""}).status, 400);
}

TEST(HttpFraming, ChunkedTwiceIs400) {
  EXPECT_EQ(check({"chunked, chunked"}).status, 400);
  EXPECT_EQ(check({"chunked", "chunked"}).status, 400);
  EXPECT_EQ(check({"gzip, chunked, chunked"}).status, 400);  // framing errors before "not implemented"
  EXPECT_EQ(check({"chunked, gzip, chunked"}).status, 400);
}

TEST(HttpFraming, CodingBeforeChunkedIs501) {
  for (std::string_view te : {"gzip, chunked", "GZIP,chunked", "identity, chunked", "deflate , chunked",
                              "x-custom;a=1;b=\"q\\\"uoted, still\" , chunked", "gzip,,chunked"}) {
    const auto v = check({te});
    EXPECT_EQ(v.status, 501) << te;
    EXPECT_EQ(v.code, "not_implemented") << te;
  }
  const auto v = check({"gzip", "chunked"});
  EXPECT_EQ(v.status, 501);
  EXPECT_NE(v.message.find("gzip"), std::string::npos) << v.message;  // names the coding
}

TEST(HttpFraming, TransferEncodingWithContentLengthIs400) {
  EXPECT_EQ(check({"chunked"}, {"5"}).status, 400);
  EXPECT_EQ(check({"xchunked"}, {"5"}).status, 400);
  EXPECT_EQ(check({"gzip, chunked"}, {"0"}).status, 400);
}

TEST(HttpFraming, TransferEncodingInHttp10Is400) {
  EXPECT_EQ(check({"chunked"}, {}, 10).status, 400);
  EXPECT_EQ(check({"chunked"}, {"3"}, 10).status, 400);
  const auto v = check({}, {"3"}, 10);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.content_length, 3u);
}

TEST(HttpFraming, ContentLength) {
  for (const lines& cl : {lines{"5"}, lines{"05"}, lines{" 5 "}, lines{"5, 5"}, lines{"5", "5"}, lines{"5,5", " 5"}}) {
    const auto v = check({}, cl);
    EXPECT_TRUE(v.ok()) << cl.front();
    EXPECT_EQ(v.framing, body_framing::content_length);
    EXPECT_EQ(v.content_length, 5u);
  }
  EXPECT_EQ(check({}, {"18446744073709551615"}).content_length, UINT64_MAX);
  EXPECT_EQ(check({}, {"0"}).framing, body_framing::content_length);
}

TEST(HttpFraming, BadContentLengthIs400) {
  for (std::string_view cl : {"", " ", ",", "+5", "-1", "0x5", "5 5", "5;", "five", "18446744073709551616",
                              "99999999999999999999999", "5,6", "5, ,6", "1e3", "5\x0b"}) {
    const auto v = check({}, {cl});
    EXPECT_EQ(v.status, 400) << cl;
    EXPECT_EQ(v.code, "bad_request") << cl;
  }
  const auto v = check({}, {"5", "6"});
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.message, "Content-Length values differ");
}

TEST(HttpFraming, ParserMustAgree) {
  framing_verdict none, len, chunked;
  len.framing = body_framing::content_length;
  len.content_length = 7;
  chunked.framing = body_framing::chunked;
  EXPECT_TRUE(framing_agrees(none, false, std::nullopt));
  EXPECT_FALSE(framing_agrees(none, true, std::nullopt));
  EXPECT_FALSE(framing_agrees(none, false, 0));
  EXPECT_TRUE(framing_agrees(len, false, 7));
  EXPECT_FALSE(framing_agrees(len, false, 8));
  EXPECT_FALSE(framing_agrees(len, true, 7));
  EXPECT_FALSE(framing_agrees(len, false, std::nullopt));
  EXPECT_TRUE(framing_agrees(chunked, true, std::nullopt));
  EXPECT_FALSE(framing_agrees(chunked, false, std::nullopt));
}

}  // namespace
}  // namespace turret::http_frontend
