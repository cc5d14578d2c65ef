// The A1111 request parser on what fuzzing fed it (issue 22; fuzz/targets/a1111_request, base64).
#include <gtest/gtest.h>

#include "nanobanana/a1111.h"

namespace nb {
namespace {

TEST(A1111Request, IntegerFieldsTakeWholeFloatsAndRefuseTheRest) {
    auto r = a1111::parse_request(R"({"steps": 20.0, "width": 64, "height": 48.0})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->params.steps, 20);
    EXPECT_EQ(r->params.height, 48);
    // 4.3e87 used to be cast to an integer (undefined behaviour; UBSan stopped the fuzzer).
    for (const char* bad : {R"({"height": 4.333e87})", R"({"steps": 20.5})", R"({"seed": 1e300})",
                            R"({"steps": -1e19})", R"({"width": 4294967360.0})"}) {
        auto e = a1111::parse_request(bad);
        ASSERT_FALSE(e) << bad;
        EXPECT_NE(e.error().message.find("integer"), std::string::npos) << bad << ": " << e.error().message;
    }
}

TEST(A1111Request, Base64IgnoresUnusedPadBitsAsPythonDoes) {
    // "QQ==" is 'A'; "QR==" sets unused low bits of the last character: Python's b64decode gives 'A' too.
    for (const char* text : {"QQ==", "QR==", "Q Q=\n="}) {
        auto b = a1111::decode_base64(text, "field");
        ASSERT_TRUE(b) << text;
        EXPECT_EQ(*b, std::vector<uint8_t>{'A'}) << text;
    }
    for (const char* bad : {"QQ=", "QQ==QQ==", "Q===", "QQ-_", "QQ=A"}) {
        auto b = a1111::decode_base64(bad, "request field 'image'");
        ASSERT_FALSE(b) << bad;
        EXPECT_NE(b.error().message.find("request field 'image': not valid base64"), std::string::npos);
    }
}

}  // namespace
}  // namespace nb
