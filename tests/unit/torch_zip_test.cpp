#include <cmath>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "io/torch_zip.h"
#include "testutil/golden.h"

namespace nb {
namespace {

// ---- a minimal zip writer (stored members, no CRC: the reader does not check it) ----
void put(std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members) {
    std::string out, cd;
    for (const auto& [name, data] : members) {
        uint64_t off = out.size();
        put(out, 0x04034b50, 4), put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 4), put(out, 0, 4);
        put(out, data.size(), 4), put(out, data.size(), 4), put(out, name.size(), 2), put(out, 0, 2);
        out += name + data;
        put(cd, 0x02014b50, 4), put(cd, 20, 2), put(cd, 20, 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 4);
        put(cd, 0, 4), put(cd, data.size(), 4), put(cd, data.size(), 4), put(cd, name.size(), 2), put(cd, 0, 2);
        put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 4), put(cd, off, 4);
        cd += name;
    }
    uint64_t cd_off = out.size();
    out += cd;
    put(out, 0x06054b50, 4), put(out, 0, 2), put(out, 0, 2), put(out, members.size(), 2);
    put(out, members.size(), 2), put(out, cd.size(), 4), put(out, cd_off, 4), put(out, 0, 2);
    return out;
}

// ---- hand-written pickles (protocol 2 opcodes, as torch.save emits them) ----
std::string X(const std::string& s) {
    std::string o = "X";
    put(o, s.size(), 4);
    return o + s;
}
std::string K(int v) { return std::string("K") + char(v); }

struct TensorSpec {
    std::string name = "w", storage = "FloatStorage", key = "0";
    int numel = 6, offset = 0;
    std::vector<int> size = {2, 3}, stride = {3, 1};
};

std::string tensor_pickle(const TensorSpec& t) {
    std::string s = X(t.name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + X("storage") + "ctorch\n" + t.storage +
                    "\n" + X(t.key) + X("cpu") + K(t.numel) + "tQ" + K(t.offset) + "(";
    for (int d : t.size) s += K(d);
    s += "t(";
    for (int d : t.stride) s += K(d);
    return s + "t\x89" "ccollections\nOrderedDict\n)RtR";
}

// {wrapper: OrderedDict{tensors...}, 'epoch': 3} or a bare OrderedDict when wrapper is empty.
std::string state_dict_pickle(const std::vector<TensorSpec>& ts, const std::string& wrapper = "") {
    std::string s = "\x80\x02";
    if (!wrapper.empty()) s += "}" + X("epoch") + K(3) + "s" + X(wrapper);
    s += "ccollections\nOrderedDict\n)R(";
    for (const auto& t : ts) s += tensor_pickle(t);
    s += "u";
    if (!wrapper.empty()) s += "s";
    return s + ".";
}

std::string floats(std::vector<float> v) {
    std::string s(v.size() * 4, '\0');
    std::memcpy(s.data(), v.data(), s.size());
    return s;
}

std::string write_tmp(const std::string& name, const std::string& bytes) {
    std::string p = ::testing::TempDir() + "/" + name;
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
}

Result<TorchZip> open_bytes(const std::string& name, const std::string& bytes) {
    return TorchZip::open(write_tmp(name, bytes));
}

int64_t total_params(const TorchZip& z) {
    int64_t n = 0;
    for (const auto& e : z.entries()) n += shape_numel(e.shape);
    return n;
}

TEST(TorchZip, ReadsStoredRealEsrganX2) {
    auto z = TorchZip::open(test::shared_path("assets/upscalers/RealESRGANv2-animevideo-xsx2.pth"));
    ASSERT_TRUE(z) << z.error().message;
    EXPECT_EQ(z->unwrapped_key(), "params");
    EXPECT_EQ(total_params(*z), 600652);
    const TensorEntry* w = z->find("body.0.weight");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->shape, (Shape{64, 3, 3, 3}));
    EXPECT_EQ(w->dtype, DType::f32);
    ASSERT_NE(z->find("body.34.weight"), nullptr);
    EXPECT_EQ(z->find("body.34.weight")->shape, (Shape{12, 64, 3, 3}));
    EXPECT_EQ(z->find("body.1.weight")->shape, (Shape{64}));  // PReLU slopes
    // Stored members are read in place from the file's mapping; dropping their pages re-reads the file.
    const TensorEntry* e = z->find("body.0.weight");
    EXPECT_FALSE(e->mapping.empty());
    EXPECT_GE(e->data, e->mapping.data());
    EXPECT_LE(e->data + e->nbytes, e->mapping.data() + e->mapping.size());
    auto before = z->load_f32("body.0.weight");
    drop_entry_pages(*e);
    auto after = z->load_f32("body.0.weight");
    ASSERT_TRUE(before && after);
    EXPECT_EQ(0, std::memcmp(before->data(), after->data(), size_t(before->numel()) * 4));
}

TEST(TorchZip, ReadsDeflatedRezippedAnimeVideoV3) {
    // Re-zipped copy: root folder is not "archive/", 55 of 57 members are deflated (MANIFEST.md section 2).
    auto v3 = TorchZip::open(test::shared_path("assets/upscalers/realesr-animevideov3.pth"));
    ASSERT_TRUE(v3) << v3.error().message;
    EXPECT_EQ(total_params(*v3), 621424);
    EXPECT_EQ(v3->find("body.0.weight")->shape, (Shape{64, 3, 3, 3}));
    EXPECT_EQ(v3->find("body.34.weight")->shape, (Shape{48, 64, 3, 3}));
    auto w = v3->load_f32("body.0.weight");
    ASSERT_TRUE(w);
    double sum_abs = 0;
    for (float x : w->span()) {
        ASSERT_TRUE(std::isfinite(x));
        sum_abs += std::fabs(x);
    }
    EXPECT_GT(sum_abs / double(w->numel()), 1e-3);  // trained weights, not zeros
    // First values of storage 94173432687680 (body.0.weight), read with Python's zipfile + struct.
    EXPECT_EQ(w->data()[0], -0.04737050086259842f);
    EXPECT_EQ(w->data()[3], -1.8980638980865479f);
    // A deflated member lives in a buffer of ours: dropping its "pages" must not touch it.
    const TensorEntry* e = v3->find("body.0.weight");
    EXPECT_TRUE(e->mapping.empty());
    drop_entry_pages(*e);
    auto again = v3->load_f32("body.0.weight");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->data()[0], -0.04737050086259842f);
    EXPECT_EQ(v3->find("body.34.bias")->shape, (Shape{48}));
    auto x4 = TorchZip::open(test::shared_path("assets/upscalers/RealESRGANv2-animevideo-xsx4.pth"));
    ASSERT_TRUE(x4) << x4.error().message;
    EXPECT_EQ(total_params(*x4), 621424);
}

TEST(TorchZip, ReadsHalfPrecisionTaef2) {
    auto dec = TorchZip::open(test::shared_path("assets/latent_decoders/taef2/taef2_decoder.pth"));
    ASSERT_TRUE(dec) << dec.error().message;
    EXPECT_EQ(dec->unwrapped_key(), "");
    EXPECT_EQ(total_params(*dec), 1338499);
    const TensorEntry* e = dec->find("1.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->dtype, DType::f16);
    EXPECT_EQ(e->shape, (Shape{64, 32, 3, 3}));
    auto enc = TorchZip::open(test::shared_path("assets/latent_decoders/taef2/taef2_encoder.pth"));
    ASSERT_TRUE(enc) << enc.error().message;
    EXPECT_EQ(total_params(*enc), 1338528);
}

TEST(TorchZip, HandWrittenStateDictValuesAndOffsets) {
    TensorSpec a;  // [2,3] at offset 0
    TensorSpec b;
    b.name = "b", b.offset = 4, b.size = {2}, b.stride = {1};  // view into the same storage
    std::string zip = make_zip({{"archive/data.pkl", state_dict_pickle({a, b}, "state_dict")},
                                {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}});
    auto z = open_bytes("hand.pth", zip);
    ASSERT_TRUE(z) << z.error().message;
    EXPECT_EQ(z->unwrapped_key(), "state_dict");
    ASSERT_EQ(z->entries().size(), 2u);
    auto w = z->load_f32("w");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->shape(), (Shape{2, 3}));
    EXPECT_EQ(w->data()[5], 6.f);
    auto bt = z->load_f32("b");
    ASSERT_TRUE(bt);
    EXPECT_EQ(bt->data()[0], 5.f);
    EXPECT_EQ(bt->data()[1], 6.f);
}

Error expect_error(const std::string& name, const std::string& bytes) {
    auto z = open_bytes(name, bytes);
    EXPECT_FALSE(z.has_value()) << name << " was accepted";
    return z ? Error{} : z.error();
}

TEST(TorchZip, RejectsDangerousGlobalsAndUnknownOpcodes) {
    std::string evil = "\x80\x02" "cos\nsystem\n" + X("echo pwned") + "\x85R.";
    Error e = expect_error("evil.pth", make_zip({{"archive/data.pkl", evil}}));
    EXPECT_EQ(e.code, Errc::unsupported);
    EXPECT_NE(e.message.find("os.system"), std::string::npos) << e.message;

    std::string builtins = "\x80\x02" "c__builtin__\neval\n" + X("1") + "\x85R.";
    e = expect_error("eval.pth", make_zip({{"archive/data.pkl", builtins}}));
    EXPECT_NE(e.message.find("__builtin__.eval"), std::string::npos) << e.message;

    std::string inst = "\x80\x02(" + X("x") + "ios\nsystem\n.";  // INST opcode: not in the whitelist
    e = expect_error("inst.pth", make_zip({{"archive/data.pkl", inst}}));
    EXPECT_NE(e.message.find("0x69"), std::string::npos) << e.message;
}

TEST(TorchZip, RejectsMalformedArchives) {
    std::string good = make_zip({{"archive/data.pkl", state_dict_pickle({TensorSpec{}})},
                                 {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}});
    ASSERT_TRUE(open_bytes("good.pth", good));
    // Truncations at several points: no EOCD, central directory past the end, local data past the end.
    for (size_t cut : {good.size() - 5, good.size() / 2, size_t(10)})
        expect_error("trunc.pth", good.substr(0, cut));
    expect_error("empty.pth", "");

    TensorSpec past;
    past.offset = 2;  // 2 + 6 elements > storage of 6
    Error e = expect_error("offset.pth", make_zip({{"archive/data.pkl", state_dict_pickle({past})},
                                                   {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}}));
    EXPECT_NE(e.message.find("exceeds its storage"), std::string::npos) << e.message;

    TensorSpec big;
    big.numel = 100, big.size = {100}, big.stride = {1};  // storage larger than its member
    e = expect_error("short.pth", make_zip({{"archive/data.pkl", state_dict_pickle({big})},
                                            {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}}));
    EXPECT_NE(e.message.find("only 24 bytes"), std::string::npos) << e.message;

    TensorSpec strided;
    strided.stride = {1, 2};  // a transposed view
    e = expect_error("stride.pth", make_zip({{"archive/data.pkl", state_dict_pickle({strided})},
                                             {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}}));
    EXPECT_EQ(e.code, Errc::unsupported);
    EXPECT_NE(e.message.find("not contiguous"), std::string::npos) << e.message;

    e = expect_error("nostorage.pth", make_zip({{"archive/data.pkl", state_dict_pickle({TensorSpec{}})}}));
    EXPECT_NE(e.message.find("storage '0'"), std::string::npos) << e.message;

    std::string pkl = state_dict_pickle({TensorSpec{}});
    expect_error("pkltrunc.pth", make_zip({{"archive/data.pkl", pkl.substr(0, pkl.size() / 2)},
                                           {"archive/data/0", floats({1, 2, 3, 4, 5, 6})}}));
    expect_error("nopkl.pth", make_zip({{"archive/data/0", floats({1, 2, 3, 4, 5, 6})}}));
    // Memo read before write, and a bad local header offset.
    expect_error("memo.pth", make_zip({{"archive/data.pkl", std::string("\x80\x02h\x07.")}}));
    std::string bad_off = good;
    size_t cd = bad_off.rfind(std::string("\x50\x4b\x01\x02", 4));
    bad_off[cd + 42] = '\x7f', bad_off[cd + 45] = '\x7f';
    expect_error("badoff.pth", bad_off);
}

}  // namespace
}  // namespace nb
