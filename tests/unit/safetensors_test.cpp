#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "testutil/golden.h"

namespace nb {
namespace {

std::string tmp_file(const std::string& name, const std::string& bytes) {
    std::string p = ::testing::TempDir() + "/" + name;
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
}

// Builds a file from a header string and a data area of `data_bytes` zero bytes.
std::string make_file(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
    uint64_t n = declared_len == UINT64_MAX ? header.size() : declared_len;
    std::string s(8, '\0');
    std::memcpy(s.data(), &n, 8);
    return s + header + std::string(data_bytes, '\0');
}

Error open_error(const std::string& name, const std::string& bytes) {
    auto r = SafeTensors::open(tmp_file(name, bytes));
    EXPECT_FALSE(r.has_value()) << name << " was accepted";
    return r ? Error{} : r.error();
}

TEST(SafeTensors, ReadsGoldenCheckpoint) {
    auto st = SafeTensors::open(test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors"));
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(st->entries().size(), 521u);
    const TensorEntry* e = st->find("model.diffusion_model.input_blocks.0.0.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->dtype_name, "F16");
    EXPECT_EQ(e->shape, (Shape{32, 4, 3, 3}));
    auto t = st->load_f32("model.diffusion_model.input_blocks.0.0.weight");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->numel(), 32 * 4 * 9);
}

TEST(SafeTensors, RoundTripWithMetadata) {
    std::vector<TensorToWrite> ts = {{"b", "F32", {2}, std::vector<uint8_t>(8, 0)},
                                     {"a", "F16", {1, 3}, std::vector<uint8_t>(6, 0)}};
    float two[2] = {1.5f, -2.f};
    std::memcpy(ts[0].bytes.data(), two, 8);
    std::string p = ::testing::TempDir() + "/rt.safetensors";
    ASSERT_TRUE(write_safetensors(p, ts, {{"k", "v"}}));
    auto st = SafeTensors::open(p);
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(st->metadata().at("k"), "v");
    auto b = st->load_f32("b");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->data()[1], -2.f);
}

TEST(SafeTensors, RejectsMalformedFiles) {
    const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    EXPECT_NE(open_error("tiny", "abc").message.find("too small"), std::string::npos);
    EXPECT_NE(open_error("past_eof", make_file("{" + ok_entry + "}", 8, 1u << 30)).message.find("past the end"),
              std::string::npos);
    EXPECT_NE(open_error("truncated", make_file("{" + ok_entry + "}", 4)).message.find("past the data area"),
              std::string::npos);
    EXPECT_NE(open_error("bad_json", make_file("{\"t\": [1,2", 8)).message.find("not valid JSON"), std::string::npos);
    EXPECT_NE(open_error("bad_utf8", make_file("{\"\xff\xfe\":1}", 0)).message.find("JSON"), std::string::npos);
    EXPECT_NE(open_error("not_object", make_file("[1,2]", 0)).message.find("not a JSON object"), std::string::npos);
    EXPECT_NE(
        open_error("size", make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)).message.find(
            "needs 12 bytes"),
        std::string::npos);
    EXPECT_NE(open_error("overlap", make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                              12))
                  .message.find("overlap"),
              std::string::npos);
    EXPECT_NE(open_error("huge", make_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                                           R"("data_offsets":[0,8]}})",
                                           8))
                  .message.find("large"),
              std::string::npos);
    EXPECT_NE(open_error("reversed", make_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8))
                  .message.find("reversed"),
              std::string::npos);
    EXPECT_NE(open_error("neg", make_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8))
                  .message.find("non-negative"),
              std::string::npos);
}

TEST(SafeTensors, UnknownDtypeIsAnErrorNamingTheTensor) {
    auto p = tmp_file("f8", make_file(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4));
    auto st = SafeTensors::open(p);
    ASSERT_TRUE(st) << st.error().message;  // the file itself is fine
    auto t = st->load_f32("w");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("'w' has dtype F8_E4M3"), std::string::npos) << t.error().message;
}

}  // namespace
}  // namespace nb
