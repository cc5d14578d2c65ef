#include <png.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "image/image.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

Image random_image(int w, int h, int c, unsigned seed) {
    std::mt19937 rng(seed);
    Image img{w, h, c, std::vector<uint8_t>(size_t(w * h * c))};
    for (auto& p : img.pixels) p = uint8_t(rng() & 0xff);
    return img;
}

fs::path fresh_dir(const std::string& name) {
    fs::path d = fs::path(::testing::TempDir()) / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string file_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

TEST(Png, RoundTripRgbRgbaWithText) {
    fs::path dir = fresh_dir("png_rt");
    const std::string params = "a photo of a cat\nSteps: 8, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 128x128";
    const std::string utf8 = "猫 on a café table, ✓";
    const std::string latin1 = "café";  // UTF-8 in, Latin-1 tEXt on disk
    for (int c : {3, 4}) {
        Image img = random_image(37, 21, c, unsigned(c));
        std::string p = (dir / fmt::format("rt{}.png", c)).string();
        auto w = write_png(p, img, {{"parameters", params}, {"prompt", utf8}, {"note", latin1}});
        ASSERT_TRUE(w) << w.error().message;
        auto back = read_png(p);
        ASSERT_TRUE(back) << back.error().message;
        EXPECT_EQ(back->width, 37);
        EXPECT_EQ(back->height, 21);
        EXPECT_EQ(back->channels, c);
        EXPECT_EQ(back->pixels, img.pixels);
        auto text = read_png_text(p);
        ASSERT_TRUE(text) << text.error().message;
        EXPECT_EQ(text->at("parameters"), params);
        EXPECT_EQ(text->at("prompt"), utf8);
        EXPECT_EQ(text->at("note"), latin1);
        std::string raw = file_bytes(p);
        EXPECT_NE(raw.find("tEXtparameters"), std::string::npos);
        EXPECT_NE(raw.find("iTXtprompt"), std::string::npos);
        EXPECT_NE(raw.find(std::string("tEXtnote\0caf\xe9", 12)), std::string::npos);
    }
}

TEST(Png, AtomicWriteLeavesNoTemporary) {
    fs::path dir = fresh_dir("png_atomic");
    std::string p = (dir / "out.png").string();
    ASSERT_TRUE(write_png(p, random_image(8, 8, 3, 1)));
    ASSERT_TRUE(write_png(p, random_image(9, 5, 3, 2)));  // replaces the old file
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        ++n;
        EXPECT_EQ(e.path().filename(), "out.png") << "left behind: " << e.path();
    }
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(read_png(p)->width, 9);

    // Failures leave neither the target nor a temporary.
    EXPECT_FALSE(write_png((dir / "missing_dir" / "x.png").string(), random_image(4, 4, 3, 3)));
    Image bad{4, 4, 3, std::vector<uint8_t>(5)};
    EXPECT_FALSE(write_png((dir / "bad.png").string(), bad));
    EXPECT_FALSE(write_png((dir / "badkey.png").string(), random_image(2, 2, 3, 4), {{"", "v"}}));
    EXPECT_FALSE(write_png((dir / "badutf.png").string(), random_image(2, 2, 3, 4), {{"k", "\xff\xfe"}}));
    n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        ++n;
        EXPECT_EQ(e.path().filename(), "out.png") << "left behind: " << e.path();
    }
    EXPECT_EQ(n, 1u);
}

TEST(Png, ReadsGoldenPipelineImage) {
    auto img = read_png(test::shared_path("golden/pipeline/euler_a.png"));
    ASSERT_TRUE(img) << img.error().message;
    EXPECT_EQ(img->width, 128);
    EXPECT_EQ(img->height, 128);
    EXPECT_EQ(img->channels, 3);
    // The PNG is euler_a.image_u8 [128,128,3]; A1111's conversion of euler_a.decoded must give the same bytes.
    Tensor u8 = test::golden_tensor("golden/pipeline/pipeline_io.safetensors", "euler_a.image_u8");
    ASSERT_EQ(u8.numel(), int64_t(img->pixels.size()));
    Image from_tensor =
        image_from_tensor(test::golden_tensor("golden/pipeline/pipeline_io.safetensors", "euler_a.decoded"), 0);
    int png_diff = 0, conv_diff = 0;
    for (size_t i = 0; i < img->pixels.size(); ++i) {
        png_diff += img->pixels[i] != uint8_t(u8.data()[i]);
        conv_diff += from_tensor.pixels[i] != uint8_t(u8.data()[i]);
    }
    EXPECT_EQ(png_diff, 0);
    EXPECT_EQ(conv_diff, 0);
}

TEST(Png, TruncatedAndForeignFilesAreErrors) {
    fs::path dir = fresh_dir("png_bad");
    std::string good = file_bytes(test::shared_path("golden/pipeline/euler_a.png"));
    for (size_t cut : {good.size() / 2, size_t(40), size_t(5)}) {
        fs::path p = dir / fmt::format("cut{}.png", cut);
        std::ofstream(p, std::ios::binary).write(good.data(), std::streamsize(cut));
        auto r = read_png(p.string());
        ASSERT_FALSE(r) << "truncated at " << cut << " was accepted";
        EXPECT_NE(r.error().message.find(p.string()), std::string::npos) << r.error().message;
    }
    fs::path txt = dir / "not.png";
    std::ofstream(txt) << "definitely not a png file";
    auto r = read_png(txt.string());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not a PNG"), std::string::npos) << r.error().message;
    EXPECT_FALSE(read_png((dir / "absent.png").string()));
    EXPECT_FALSE(read_png_text(txt.string()));
}

// fuzz/regressions/png: a 200-byte file whose tEXt chunk declares 1.7 GB. libpng allocated and cleared the
// declared length before reading; now the chunk table is checked against the file first.
TEST(Png, ChunkLongerThanTheFileIsRefusedWithoutAllocatingIt) {
    Image img = random_image(5, 6, 3, 7);
    fs::path dir = fresh_dir("png_chunk");
    ASSERT_TRUE(write_png((dir / "ok.png").string(), img, {{"parameters", "a cat"}}));
    std::string bytes = file_bytes(dir / "ok.png");
    size_t text = bytes.find("tEXt");
    ASSERT_NE(text, std::string::npos);
    const uint8_t huge[4] = {0x67, 0x41, 0x4d, 0x41};  // 1,732,332,865 bytes
    bytes.replace(text - 4, 4, reinterpret_cast<const char*>(huge), 4);
    std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    auto r = decode_image(span, "huge.png");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("huge.png: invalid or truncated PNG: chunk 'tEXt' declares 1732332865 bytes"),
              std::string::npos) << r.error().message;
    EXPECT_FALSE(decode_png_text(span, "huge.png"));
}

// fuzz/regressions/jpeg: 181 bytes of progressive JPEG that decode (end-of-band runs) to 27136x4608, 125M
// pixels: refused by size before libjpeg allocates its coefficient buffers (~750 MB, seconds).
TEST(Jpeg, TinyFileDeclaringAHugeImageIsRefusedBySize) {
    auto r = read_image(std::string(NB_TEST_DATA_DIR) + "/../../fuzz/regressions/jpeg/progressive_27136x4608_in_181_bytes.jpg");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("image too large (27136x4608)"), std::string::npos) << r.error().message;
}

// fuzz/regressions/jpeg: 189 bytes of progressive JPEG declaring 12544x4608 (57.8M pixels, under the size
// limit): libjpeg allocated and cleared ~350 MB of coefficients before finding the data's end. A Huffman-coded
// file needs at least a bit per 8x8 block, so it is refused as truncated up front.
TEST(Jpeg, FileTooSmallForItsDeclaredSizeIsRefusedUpFront) {
    auto r = read_image(std::string(NB_TEST_DATA_DIR) + "/../../fuzz/regressions/jpeg/progressive_12544x4608_in_189_bytes.jpg");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("truncated: 189 bytes cannot hold a 12544x4608 image"), std::string::npos)
        << r.error().message;
}

TEST(Png, OtherColourTypesBecomeRgbOrRgba) {
    fs::path dir = fresh_dir("png_types");
    Image gray = random_image(5, 4, 1, 7), ga = random_image(5, 4, 2, 8);
    ASSERT_TRUE(write_png((dir / "g.png").string(), gray));
    ASSERT_TRUE(write_png((dir / "ga.png").string(), ga));
    auto g = read_png((dir / "g.png").string());
    auto a = read_png((dir / "ga.png").string());
    ASSERT_TRUE(g && a);
    ASSERT_EQ(g->channels, 3);
    ASSERT_EQ(a->channels, 4);
    for (size_t i = 0; i < gray.pixels.size(); ++i) {
        EXPECT_EQ(g->pixels[i * 3 + 2], gray.pixels[i]);
        EXPECT_EQ(a->pixels[i * 4 + 1], ga.pixels[i * 2]);
        EXPECT_EQ(a->pixels[i * 4 + 3], ga.pixels[i * 2 + 1]);
    }
    // 16-bit RGB (written with libpng's simplified API): samples keep their high byte.
    std::vector<uint16_t> rgb16(5 * 4 * 3);
    for (size_t i = 0; i < rgb16.size(); ++i) rgb16[i] = uint16_t(i * 3000 + 77);
    png_image pi{};
    pi.version = PNG_IMAGE_VERSION, pi.width = 5, pi.height = 4, pi.format = PNG_FORMAT_LINEAR_RGB;
    ASSERT_TRUE(png_image_write_to_file(&pi, (dir / "rgb16.png").c_str(), 0, rgb16.data(), 0, nullptr));
    auto r16 = read_png((dir / "rgb16.png").string());
    ASSERT_TRUE(r16) << r16.error().message;
    ASSERT_EQ(r16->channels, 3);
    for (size_t i = 0; i < rgb16.size(); ++i) EXPECT_EQ(r16->pixels[i], rgb16[i] >> 8) << i;
    // Palette image.
    uint8_t cmap[3 * 3] = {255, 0, 0, 0, 255, 0, 10, 20, 30};
    uint8_t idx[4] = {0, 1, 2, 1};
    png_image pp{};
    pp.version = PNG_IMAGE_VERSION, pp.width = 2, pp.height = 2, pp.format = PNG_FORMAT_RGB_COLORMAP;
    pp.colormap_entries = 3;
    ASSERT_TRUE(png_image_write_to_file(&pp, (dir / "pal.png").c_str(), 0, idx, 0, cmap));
    auto pal = read_png((dir / "pal.png").string());
    ASSERT_TRUE(pal) << pal.error().message;
    ASSERT_EQ(pal->channels, 3);
    EXPECT_EQ(pal->at(0, 1)[0], 10);
    EXPECT_EQ(pal->at(0, 1)[2], 30);
    EXPECT_EQ(pal->at(1, 0)[1], 255);
}

TEST(Image, TensorConversionsFollowA1111) {
    // x [2,3,1,4]: item 1 holds the probes.
    std::vector<float> v(2 * 3 * 4, 0.f);
    const float probes[4] = {-1.f, 1.f, 0.f, std::nanf("")};
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 4; ++i) v[size_t(12 + c * 4 + i)] = c == 0 ? probes[i] : (c == 1 ? 5.f : -0.5f);
    Tensor x = Tensor::from({2, 3, 1, 4}, v);
    Image img = image_from_tensor(x, 1);
    ASSERT_EQ(img.width, 4);
    ASSERT_EQ(img.height, 1);
    EXPECT_EQ(img.at(0, 0)[0], 0);
    EXPECT_EQ(img.at(1, 0)[0], 255);
    EXPECT_EQ(img.at(2, 0)[0], 127);  // 127.5 truncates
    EXPECT_EQ(img.at(3, 0)[0], 0);    // NaN
    EXPECT_EQ(img.at(0, 0)[1], 255);  // clamped
    EXPECT_EQ(img.at(0, 0)[2], 63);   // 255 * 0.25 = 63.75 truncates

    Image rgba = random_image(6, 3, 4, 11);
    Tensor t = tensor_from_image(rgba);
    ASSERT_EQ(t.shape(), (Shape{1, 3, 3, 6}));
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 18; ++i)
            ASSERT_EQ(t.data()[c * 18 + i], 2.0f * (float(rgba.pixels[size_t(i) * 4 + size_t(c)]) / 255.0f) - 1.0f);
    Image back = image_from_tensor(t, 0);
    for (size_t i = 0; i < 18; ++i)
        for (size_t c = 0; c < 3; ++c) EXPECT_LE(std::abs(int(back.pixels[i * 3 + c]) - rgba.pixels[i * 4 + c]), 1);
}

TEST(Image, LanczosResize) {
    Image img = random_image(16, 12, 3, 5);
    Image same = resize(img, 16, 12);
    EXPECT_EQ(same.pixels, img.pixels);  // integer taps of Lanczos are 1, 0, 0, ...
    Image flat{10, 10, 4, std::vector<uint8_t>(400, 200)};
    for (auto [w, h] : {std::pair{23, 7}, std::pair{3, 31}}) {
        Image r = resize(flat, w, h);
        ASSERT_EQ(r.width, w);
        ASSERT_EQ(r.height, h);
        for (uint8_t p : r.pixels) ASSERT_EQ(p, 200);
    }
    // Halving a fine checkerboard averages it out (the widened support low-passes).
    Image cb{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3)};
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
            for (int c = 0; c < 3; ++c) cb.at(x, y)[c] = (x + y) % 2 ? 255 : 0;
    Image half = resize(cb, 16, 16);
    for (int y = 2; y < 14; ++y)
        for (int x = 2; x < 14; ++x) EXPECT_NEAR(half.at(x, y)[0], 127.5, 3.0) << x << "," << y;
}

}  // namespace
}  // namespace nb
