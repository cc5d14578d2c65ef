// ESRGAN family against references: real Real-ESRGAN weights vs PyTorch outputs (assets/golden/*.npy, 1e-4),
// tiny random RRDBNet x2/x4 and SRVGGNetCompact (golden/esrgan, rel 1e-5), kernels vs definitions, and
// malformed model files refused with clear errors.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "image/image.h"
#include "models/esrgan/kernels.h"
#include "models/esrgan/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

// upscale_input_64.png as the MANIFEST defines the model input: x = uint8 / 255, [1, 3, 64, 64].
Tensor golden_input() {
    auto img = read_png(test::shared_path("assets/golden/upscale_input_64.png"));
    EXPECT_TRUE(img) << img.error().message;
    Tensor x({1, 3, img->height, img->width});
    for (int y = 0; y < img->height; ++y)
        for (int xx = 0; xx < img->width; ++xx)
            for (int c = 0; c < 3; ++c)
                x.data()[(c * img->height + y) * img->width + xx] = float(img->at(xx, y)[c]) / 255.f;
    return x;
}

struct RealCase {
    const char* model;
    const char* npy;
    int scale;
};

TEST(Esrgan, RealWeightsMatchPyTorch) {
    const Tensor x = golden_input();
    for (RealCase c : {RealCase{"realesr-animevideov3.pth", "realesr-animevideov3_out_x4.npy", 4},
                       RealCase{"RealESRGANv2-animevideo-xsx4.pth", "RealESRGANv2-animevideo-xsx4_out_x4.npy", 4},
                       RealCase{"RealESRGANv2-animevideo-xsx2.pth", "RealESRGANv2-animevideo-xsx2_out_x2.npy", 2}}) {
        auto m = esrgan::Model::load(test::shared_path(std::string("assets/upscalers/") + c.model));
        ASSERT_TRUE(m) << m.error().message;
        EXPECT_EQ(m->config().arch, esrgan::Arch::srvgg) << c.model;
        EXPECT_EQ(m->config().scale, c.scale) << c.model;
        EXPECT_EQ(m->config().num_feat, 64);
        EXPECT_EQ(m->config().num_conv, 16);
        const Tensor ref = test::read_npy(test::shared_path(std::string("assets/golden/") + c.npy));
        const Tensor y = m->forward(x);
        ASSERT_EQ(y.shape(), ref.shape()) << c.model;
        EXPECT_TRUE(test::close_abs(y, ref, 1e-4)) << c.model;
    }
}

TEST(Esrgan, TinyRandomNetworksMatchGolden) {
    const std::string io = "golden/esrgan/esrgan_io.safetensors";
    const Tensor x = test::golden_tensor(io, "input");
    EXPECT_TRUE(test::close_rel(esrgan::pixel_unshuffle(x, 2), test::golden_tensor(io, "rrdbnet_x2.pixel_unshuffle_input"),
                                1e-7));
    for (const char* name : {"rrdbnet_x4", "rrdbnet_x2", "srvgg_x4"}) {
        auto m = esrgan::Model::load(test::shared_path(std::string("golden/esrgan/") + name + ".safetensors"));
        ASSERT_TRUE(m) << m.error().message;
        const Tensor y = m->forward(x);
        EXPECT_TRUE(test::close_rel(y, test::golden_tensor(io, std::string(name) + ".output"), 1e-5))
            << name << ": " << m->config().summary();
    }
    auto x2 = esrgan::Model::load(test::shared_path("golden/esrgan/rrdbnet_x2.safetensors"));
    ASSERT_TRUE(x2);
    EXPECT_EQ(x2->config().summary(), "RRDBNet x2 (num_feat 16, 1 blocks, grow 8, pixel_unshuffle 2)");
}

// The same tiny RRDBNet x4 saved under old ESRGAN names ("model.N", "model.1.sub.N.RDBk.convj.0") loads through
// the rename table and gives the same output.
TEST(Esrgan, OldEsrganNamingLoadsThroughTheRenameTable) {
    auto st = SafeTensors::open(test::shared_path("golden/esrgan/rrdbnet_x4.safetensors"));
    ASSERT_TRUE(st) << st.error().message;
    auto old_name = [](const std::string& k) -> std::string {
        const std::pair<const char*, const char*> fixed[] = {{"conv_first.", "model.0."}, {"conv_body.", "model.1.sub.1."},
                                                             {"conv_up1.", "model.3."},   {"conv_up2.", "model.6."},
                                                             {"conv_hr.", "model.8."},    {"conv_last.", "model.10."}};
        for (auto [n, o] : fixed)
            if (k.starts_with(n)) return o + k.substr(std::strlen(n));
        int b = 0, r = 0, c = 0;
        char p[16] = {};
        EXPECT_EQ(std::sscanf(k.c_str(), "body.%d.rdb%d.conv%d.%15s", &b, &r, &c, p), 4) << k;
        return "model.1.sub." + std::to_string(b) + ".RDB" + std::to_string(r) + ".conv" + std::to_string(c) + ".0." + p;
    };
    std::vector<TensorToWrite> w;
    for (const TensorEntry& e : st->entries())
        w.push_back({old_name(e.name), e.dtype_name, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    const std::string path = ::testing::TempDir() + "/esrgan_old_names.safetensors";
    ASSERT_TRUE(write_safetensors(path, w));
    auto m = esrgan::Model::load(path);
    ASSERT_TRUE(m) << m.error().message;
    const std::string io = "golden/esrgan/esrgan_io.safetensors";
    EXPECT_TRUE(test::close_rel(m->forward(test::golden_tensor(io, "input")), test::golden_tensor(io, "rrdbnet_x4.output"),
                                1e-5));
}

TEST(Esrgan, ShuffleKernelsFollowTorchDefinitions) {
    std::mt19937 gen(3);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    Tensor x = Tensor::empty({2, 12, 3, 5});
    for (float& v : x.span()) v = u(gen);
    const Tensor y = esrgan::pixel_shuffle(x, 2);  // [2, 3, 6, 10]
    ASSERT_EQ(y.shape(), (Shape{2, 3, 6, 10}));
    for (int n = 0; n < 2; ++n)
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j)
                    for (int yy = 0; yy < 3; ++yy)
                        for (int xx = 0; xx < 5; ++xx)
                            ASSERT_EQ(y.data()[((n * 3 + c) * 6 + yy * 2 + i) * 10 + xx * 2 + j],
                                      x.data()[((n * 12 + c * 4 + i * 2 + j) * 3 + yy) * 5 + xx]);
    EXPECT_TRUE(test::close_abs(esrgan::pixel_unshuffle(y, 2), x, 0.0));
    Tensor a = Tensor::from({3}, std::vector<float>{0.1f, 0.5f, -2.f});
    Tensor p = Tensor::from({1, 3, 1, 2}, std::vector<float>{-1, 2, -1, 3, -1, 0});
    esrgan::prelu_(p, a);
    EXPECT_TRUE(test::close_abs(p, Tensor::from({1, 3, 1, 2}, std::vector<float>{-0.1f, 2, -0.5f, 3, 2, 0}), 1e-7));
}

// ---- malformed files ----

std::string tmp_file(const std::string& name, const std::string& bytes) {
    const std::string path = ::testing::TempDir() + "/esrgan_" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

void le(std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

// One stored member, no CRC (enough for the reader to reach the pickle).
std::string one_member_zip(const std::string& name, const std::string& data) {
    std::string z;
    le(z, 0x04034b50, 4), le(z, 20, 2), le(z, 0, 2), le(z, 0, 2), le(z, 0, 4), le(z, 0, 4);
    le(z, data.size(), 4), le(z, data.size(), 4), le(z, name.size(), 2), le(z, 0, 2);
    z += name + data;
    const size_t cd_off = z.size();
    std::string cd;
    le(cd, 0x02014b50, 4), le(cd, 20, 2), le(cd, 20, 2), le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 4), le(cd, 0, 4);
    le(cd, data.size(), 4), le(cd, data.size(), 4), le(cd, name.size(), 2), le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 2);
    le(cd, 0, 2), le(cd, 0, 4), le(cd, 0, 4);
    z += cd + name;
    le(z, 0x06054b50, 4), le(z, 0, 2), le(z, 0, 2), le(z, 1, 2), le(z, 1, 2), le(z, cd.size() + name.size(), 4);
    le(z, cd_off, 4), le(z, 0, 2);
    return z;
}

Error load_error(const std::string& path) {
    auto m = esrgan::Model::load(path);
    EXPECT_FALSE(m.has_value()) << path << " was accepted";
    return m ? Error{} : m.error();
}

TEST(Esrgan, RefusesTruncatedArchivesAndForeignPickles) {
    std::ifstream f(test::shared_path("assets/upscalers/RealESRGANv2-animevideo-xsx2.pth"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 1000u);
    for (size_t cut : {bytes.size() - 7, bytes.size() / 2, size_t(100)})
        EXPECT_FALSE(load_error(tmp_file("trunc.pth", bytes.substr(0, cut))).message.empty());
    // A pickle that would call os.system("touch ...") when unpickled by torch.load(weights_only=False).
    const std::string marker = ::testing::TempDir() + "/esrgan_pwned";
    std::filesystem::remove(marker);
    std::string cmd = "touch " + marker, pkl = "\x80\x02" "cposix\nsystem\nX";
    le(pkl, cmd.size(), 4);
    pkl += cmd + "\x85R.";
    Error e = load_error(tmp_file("evil.pth", one_member_zip("archive/data.pkl", pkl)));
    EXPECT_EQ(e.code, Errc::unsupported) << e.message;
    EXPECT_NE(e.message.find("posix.system"), std::string::npos) << e.message;
    EXPECT_FALSE(std::filesystem::exists(marker));
}

std::vector<uint8_t> zeros(const Shape& s) { return std::vector<uint8_t>(size_t(shape_numel(s)) * 4, 0); }

// A tiny SRVGG state dict (num_feat 4, num_conv 1, x2); `bad` replaces one tensor's shape.
std::string write_srvgg(const std::string& name, const std::string& bad_key = "", Shape bad = {},
                        const std::string& extra = "") {
    std::vector<std::pair<std::string, Shape>> ts = {{"body.0.weight", {4, 3, 3, 3}}, {"body.0.bias", {4}},
                                                     {"body.1.weight", {4}},          {"body.2.weight", {4, 4, 3, 3}},
                                                     {"body.2.bias", {4}},            {"body.3.weight", {4}},
                                                     {"body.4.weight", {12, 4, 3, 3}}, {"body.4.bias", {12}}};
    if (!extra.empty()) ts.push_back({extra, {2}});
    std::vector<TensorToWrite> w;
    for (auto& [k, s] : ts) {
        const Shape shape = k == bad_key ? bad : s;
        w.push_back({k, "F32", shape, zeros(shape)});
    }
    const std::string path = ::testing::TempDir() + "/esrgan_" + name + ".safetensors";
    EXPECT_TRUE(write_safetensors(path, w));
    return path;
}

TEST(Esrgan, RefusesWrongShapesAndUnknownTensors) {
    auto ok = esrgan::Model::load(write_srvgg("ok"));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->config().summary(), "SRVGGNetCompact x2 (num_feat 4, num_conv 1)");
    EXPECT_EQ(ok->forward(Tensor({1, 3, 5, 7})).shape(), (Shape{1, 3, 10, 14}));

    Error e = load_error(write_srvgg("shape", "body.2.weight", {4, 5, 3, 3}));
    EXPECT_EQ(e.code, Errc::shape);
    EXPECT_NE(e.message.find("'body.2.weight' has wrong shape: got [4, 5, 3, 3], expected [4, 4, 3, 3]"),
              std::string::npos) << e.message;
    e = load_error(write_srvgg("last", "body.4.weight", {10, 4, 3, 3}));
    EXPECT_NE(e.message.find("body.4.weight"), std::string::npos) << e.message;
    e = load_error(write_srvgg("extra", "", {}, "body.9.alpha"));
    EXPECT_NE(e.message.find("unexpected tensor 'body.9.alpha'"), std::string::npos) << e.message;
    e = load_error(write_srvgg("notsr", "", {}, "") + ".missing");
    EXPECT_EQ(e.code, Errc::io) << e.message;

    std::vector<TensorToWrite> unet = {{"model.diffusion_model.out.2.bias", "F32", {4}, zeros({4})}};
    const std::string p = ::testing::TempDir() + "/esrgan_unet.safetensors";
    ASSERT_TRUE(write_safetensors(p, unet));
    e = load_error(p);
    EXPECT_NE(e.message.find("not a Real-ESRGAN model"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace nb
