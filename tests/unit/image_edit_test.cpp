// The pixel stages of A1111's img2img / inpaint (src/image/edit.h) against golden/edit (every byte), plus
// Pillow values for the primitives and the JPEG reader.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "image/edit.h"
#include "image/image.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kEdit = "golden/edit/";

Image golden_png(const std::string& file) {
    auto img = read_png(test::shared_path(kEdit + file));
    if (!img) throw std::runtime_error(img.error().message);
    return *img;
}

// Exact comparison; an L image is compared with the gray of the (RGB-decoded) golden PNG.
::testing::AssertionResult same_pixels(const Image& got, const Image& ref_in) {
    const Image ref = got.channels == 1 && ref_in.channels != 1 ? to_l(ref_in) : ref_in;
    if (got.width != ref.width || got.height != ref.height || got.channels != ref.channels)
        return ::testing::AssertionFailure()
               << "size " << got.width << "x" << got.height << "x" << got.channels << " vs golden "
               << ref.width << "x" << ref.height << "x" << ref.channels;
    size_t n_diff = 0, first = 0;
    int max_diff = 0;
    for (size_t i = 0; i < ref.pixels.size(); ++i) {
        const int d = std::abs(int(got.pixels[i]) - int(ref.pixels[i]));
        if (d && !n_diff++) first = i;
        max_diff = std::max(max_diff, d);
    }
    if (!n_diff) return ::testing::AssertionSuccess();
    const size_t px = first / size_t(ref.channels);
    return ::testing::AssertionFailure()
           << n_diff << " of " << ref.pixels.size() << " bytes differ (max " << max_diff
           << "), first at x=" << px % size_t(ref.width) << " y=" << px / size_t(ref.width)
           << " c=" << first % size_t(ref.channels) << ": " << int(got.pixels[first]) << " vs "
           << int(ref.pixels[first]);
}

Image min_double(const Image& l) {  // A1111: clip(M4 * 2, 0, 255)
    Image out = l;
    for (auto& p : out.pixels) p = uint8_t(std::min(2 * int(p), 255));
    return out;
}

// Every inpaint / outpaint case: the README's M1-M4, O1, I1-I3, L2 and D2 from the case's params.
TEST(ImageEdit, InpaintStagesMatchGoldenExactly) {
    std::ifstream f(test::shared_path(kEdit + "edit_cases.json"));
    const json cases = json::parse(f);
    int n_cases = 0;
    for (const auto& [name, c] : cases.items()) {
        const json& p = c["params"];
        if (p["kind"] != "inpaint") continue;
        SCOPED_TRACE(name);
        ++n_cases;
        const json& files = c["derived"]["files"];
        const int W = p["width"], H = p["height"], blur = p["mask_blur"], fill = p["inpainting_fill"];
        const int resize_mode = p["resize_mode"];
        const bool full_res = p["inpaint_full_res"];

        const Image init = flatten(golden_png(p["init"].get<std::string>() + ".png"));  // I1
        const Image m1 = mask_to_l(golden_png(p["mask"].get<std::string>() + ".png"));
        const Image m2 = gaussian_blur_mask(m1, blur, blur);
        EXPECT_TRUE(same_pixels(m2, golden_png(files["mask_blurred"]))) << "mask_blurred";

        Image m3, m4, overlay, image;
        std::optional<Box> box;
        if (full_res) {
            box = crop_region(m2, p["inpaint_full_res_padding"], W, H);
            m3 = m2;
            m4 = to_l(resize_image(2, crop(m2, *box), W, H));  // mode 2 returns RGB; the golden PNG is L
            overlay = make_overlay(init, m3);
            image = resize_image(2, crop(init, *box), W, H);  // I2
            EXPECT_TRUE(same_pixels(image, golden_png(files["processing_image"]))) << "processing_image";
            const json& ref = c["derived"]["paste_to"];
            EXPECT_EQ((std::vector<int>{box->x1, box->y1, box->width(), box->height()}),
                      ref.get<std::vector<int>>());
        } else {
            m4 = resize_image(resize_mode, m2, W, H);
            m3 = min_double(m4);
            image = resize_image(resize_mode, init, W, H);
            overlay = make_overlay(image, m3);
            EXPECT_TRUE(c["derived"]["paste_to"].is_null());
        }
        EXPECT_TRUE(same_pixels(m3, golden_png(files["mask_for_overlay"]))) << "mask_for_overlay";
        EXPECT_TRUE(same_pixels(m4, golden_png(files["processing_mask"]))) << "processing_mask";
        EXPECT_TRUE(same_pixels(overlay, golden_png(files["overlay_rgba"]))) << "overlay_rgba";
        if (fill != 1) image = masking_fill(image, m4);  // I3
        EXPECT_TRUE(same_pixels(image, golden_png(files["vae_input"]))) << "vae_input";

        // L2: nmask = round(BICUBIC(M4 -> w x h) / 255), half to even.
        const Image small = pil_resize(m4, W / 8, H / 8, Resample::bicubic);
        const Tensor ref_mask = test::golden_tensor(kEdit + "edit_io.safetensors", name + ".latent_mask");
        ASSERT_EQ(ref_mask.numel(), int64_t(small.pixels.size()));
        int n_bad = 0;
        for (size_t i = 0; i < small.pixels.size(); ++i)
            n_bad += std::nearbyint(float(small.pixels[i]) / 255.0f) != ref_mask.data()[i];
        EXPECT_EQ(n_bad, 0) << "latent_mask";

        // D2 from the golden decoded image.
        const Image final_img = apply_overlay(golden_png(files["image_before_overlay"]), box, overlay);
        EXPECT_TRUE(same_pixels(final_img, golden_png(files["image"]))) << "image";
    }
    EXPECT_EQ(n_cases, 8);
}

TEST(ImageEdit, Img2ImgResizeMode0MatchesGolden) {
    std::ifstream f(test::shared_path(kEdit + "edit_cases.json"));
    const json c = json::parse(f)["img2img_resize0_d050_dpmpp_2m_karras"];
    const json& p = c["params"];
    const Image init = flatten(golden_png(p["init"].get<std::string>() + ".png"));
    ASSERT_EQ(init.width, 150);
    const Image vae = resize_image(p["resize_mode"], init, p["width"], p["height"]);
    EXPECT_TRUE(same_pixels(vae, golden_png(c["derived"]["files"]["vae_input"])));
}

// ---- primitives against Pillow 9.4 ----

// The pattern both here and in the python snippets: (x*37 + y*91 + ch*53 + x*y*11) % 256.
Image pattern(int w, int h, int c) {
    Image im{w, h, c, std::vector<uint8_t>(size_t(w * h * c))};
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int ch = 0; ch < c; ++ch)
                im.at(x, y)[ch] = uint8_t((x * 37 + y * 91 + ch * 53 + x * y * 11) % 256);
    return im;
}

// python3 (Pillow 9.4):
//   pat(w,h,c)[y,x,ch] = (x*37+y*91+ch*53+x*y*11) % 256
//   Image.fromarray(pat(5,4,3)).resize((7,3), F);  Image.fromarray(pat(9,7,1)[...,0]).resize((4,10), F)
struct ResizeCase {
    Resample f;
    std::vector<uint8_t> rgb_5x4_to_7x3, l_9x7_to_4x10;
};
const ResizeCase kResizeCases[] = {
    {Resample::nearest,
     {0,   53,  106, 37,  90,  143, 37,  90,  143, 74,  127, 180, 111, 164, 217, 111,
      164, 217, 148, 201, 254, 182, 235, 32,  241, 38,  91,  241, 38,  91,  44,  97,
      150, 103, 156, 209, 103, 156, 209, 162, 215, 12,  17,  70,  123, 87,  140, 193,
      87,  140, 193, 157, 210, 7,   227, 24,  77,  227, 24,  77,  41,  94,  147},
     {37, 111, 185, 3,   139, 235, 75, 171, 139, 235, 75,  171, 241, 103, 221, 83, 87,  227, 111, 251,
      87, 227, 111, 251, 189, 95,  1,  163, 35,  219, 147, 75,  35,  219, 147, 75, 137, 87,  37,  243}},
    {Resample::bilinear,
     {27,  80,  133, 50,  103, 156, 79,  132, 164, 108, 161, 137, 136, 134, 166, 133,
      142, 195, 112, 165, 218, 137, 190, 115, 167, 147, 145, 169, 131, 147, 116, 169,
      94,  154, 115, 132, 137, 117, 116, 95,  148, 73,  66,  119, 96,  105, 114, 134,
      130, 129, 130, 123, 176, 50,  171, 96,  97,  141, 92,  112, 77,  130, 107},
     {31, 106, 172, 61,  86,  139, 126, 126, 143, 153, 102, 158, 178, 116, 139, 97,  112, 140, 132, 142,
      92, 134, 109, 171, 124, 98,  79,  175, 117, 131, 130, 151, 116, 148, 133, 153, 119, 153, 115, 166}},
    {Resample::bicubic,
     {17,  67,  136, 36,  98,  162, 71,  139, 170, 110, 163, 138, 144, 132, 162, 135,
      139, 204, 108, 166, 233, 142, 203, 112, 181, 148, 150, 181, 124, 153, 116, 169,
      94,  159, 110, 138, 140, 113, 114, 90,  151, 59,  59,  116, 87,  102, 106, 137,
      131, 124, 135, 121, 174, 49,  180, 87,  98,  145, 86,  116, 72,  135, 106},
     {19, 102, 191, 46,  78,  143, 124, 130, 152, 160, 84,  174, 184, 110, 141, 92,  105, 144, 138, 141,
      81, 139, 104, 182, 125, 93,  72,  180, 119, 127, 135, 149, 115, 153, 137, 151, 115, 163, 109, 167}},
    {Resample::lanczos,
     {10,  59,  141, 25,  94,  173, 69,  156, 175, 117, 170, 132, 158, 127, 146, 134, 129, 208, 98, 161, 242,
      145, 214, 109, 192, 149, 153, 186, 122, 152, 116, 169, 94,  159, 110, 140, 142, 110, 113, 87, 154, 51,
      58,  121, 76,  105, 97,  132, 132, 121, 132, 114, 167, 55,  176, 90,  101, 145, 90,  124, 76, 146, 103},
     {15, 99,  201, 39,  73,  146, 121, 136, 167, 163, 71,  182, 182, 114, 139, 88,  105, 143, 149, 134,
      76, 139, 98,  193, 122, 95,  73,  177, 123, 116, 137, 152, 116, 153, 141, 154, 116, 167, 104, 168}},
};

TEST(ImageEdit, PilResizeMatchesPillowValues) {
    for (const auto& rc : kResizeCases) {
        SCOPED_TRACE(int(rc.f));
        const Image a = pil_resize(pattern(5, 4, 3), 7, 3, rc.f);
        EXPECT_EQ(a.width, 7);
        EXPECT_EQ(a.height, 3);
        EXPECT_EQ(a.pixels, rc.rgb_5x4_to_7x3);
        const Image b = pil_resize(pattern(9, 7, 1), 4, 10, rc.f);
        EXPECT_EQ(b.channels, 1);
        EXPECT_EQ(b.pixels, rc.l_9x7_to_4x10);
    }
    // Same size: a copy, whatever the filter.
    EXPECT_EQ(pil_resize(pattern(6, 5, 3), 6, 5, Resample::lanczos).pixels, pattern(6, 5, 3).pixels);
}

TEST(ImageEdit, PilResizeRgbaIsPremultiplied) {
    // python3: a = pat(4,3,4); a[...,3] = [[0,255,128,1],[200,255,0,50],[255,255,255,99]]
    //          Image.fromarray(a, 'RGBA').resize((3,5), Image.LANCZOS)
    Image a = pattern(4, 3, 4);
    const uint8_t alpha[12] = {0, 255, 128, 1, 200, 255, 0, 50, 255, 255, 255, 99};
    for (int i = 0; i < 12; ++i) a.pixels[size_t(i) * 4 + 3] = alpha[i];
    const std::vector<uint8_t> ref = {
        9,   47, 70,  54,  45,  93,  145, 229, 93,  214, 255, 19,  55,  126, 220, 125, 64,  141, 190, 173,
        255, 0,  0,   1,   108, 161, 214, 239, 141, 201, 253, 128, 255, 0,   0,   12,  188, 184, 109, 255,
        155, 91, 160, 204, 58,  138, 180, 96,  230, 184, 16,  249, 153, 52,  129, 255, 35,  148, 194, 151};
    EXPECT_EQ(pil_resize(a, 3, 5, Resample::lanczos).pixels, ref);
}

TEST(ImageEdit, ConversionsMatchPillow) {
    // python3: px = [(10,200,30,0),(10,200,30,255),(10,200,30,128),(250,1,99,1),(0,0,0,77),(255,255,255,254)]
    //   im = Image.fromarray(np.array([px], np.uint8), 'RGBA'); im.convert('L')
    //   bg = Image.new('RGBA', im.size, '#ffffff'); bg.paste(im, mask=im); bg.convert('RGB')   (A1111
    //   flatten)
    const Image px{6, 1, 4, {10,  200, 30, 0, 10, 200, 30, 255, 10,  200, 30,  128,
                             250, 1,   99, 1, 0,  0,   0,  77,  255, 255, 255, 254}};
    EXPECT_EQ(to_l(px).pixels, (std::vector<uint8_t>{124, 124, 124, 87, 0, 255}));
    EXPECT_EQ(flatten(px).pixels, (std::vector<uint8_t>{255, 255, 255, 10, 200, 30, 132, 227, 142, 255, 254,
                                                        254, 178, 178, 178, 255, 255, 255}));
    // M1: alpha not all 255 -> thresholded alpha; opaque RGBA -> plain L (soft values kept).
    EXPECT_EQ(mask_to_l(px).pixels, (std::vector<uint8_t>{0, 255, 0, 0, 0, 255}));
    const Image opaque{2, 1, 4, {100, 100, 100, 255, 7, 7, 7, 255}};
    EXPECT_EQ(mask_to_l(opaque).pixels, (std::vector<uint8_t>{100, 7}));
    EXPECT_EQ(to_rgb(Image{1, 1, 1, {9}}).pixels, (std::vector<uint8_t>{9, 9, 9}));
    EXPECT_EQ(to_rgb(Image{1, 1, 4, {1, 2, 3, 4}}).pixels, (std::vector<uint8_t>{1, 2, 3}));
    EXPECT_EQ(invert(Image{2, 1, 1, {0, 200}}).pixels, (std::vector<uint8_t>{255, 55}));
}

TEST(ImageEdit, OpenCvKernelForSigma4) {
    // golden/README.md M2, the integer kernel OpenCV uses for sigma 4 (21 taps).
    EXPECT_EQ(gaussian_kernel_fixed(4),
              (std::vector<int>{1, 2, 4, 5, 9, 11, 16, 19, 23, 25, 26, 25, 23, 19, 16, 11, 9, 5, 4, 2, 1}));
    // Blur 0 is no pass; a constant image stays constant (kernel sums to 256, borders reflect).
    const Image flat{5, 3, 1, std::vector<uint8_t>(15, 77)};
    EXPECT_EQ(gaussian_blur_mask(flat, 4, 4).pixels, flat.pixels);
    EXPECT_EQ(gaussian_blur_mask(pattern(5, 3, 1), 0, 0).pixels, pattern(5, 3, 1).pixels);
}

TEST(ImageEdit, BoxBlurRadiiAsPillow) {
    // golden/README.md masking.fill: the fractional box radii of Pillow's GaussianBlur for the fill cascade.
    EXPECT_FLOAT_EQ(box_blur_radius(256), 255.499023f);
    EXPECT_FLOAT_EQ(box_blur_radius(64), 63.496094f);
    EXPECT_FLOAT_EQ(box_blur_radius(16), 15.484375f);
    EXPECT_FLOAT_EQ(box_blur_radius(4), 3.4375f);
    EXPECT_FLOAT_EQ(box_blur_radius(2), 1.375f);
}

TEST(ImageEdit, ResizeImageModes) {
    const Image l = pattern(6, 2, 1);
    EXPECT_EQ(resize_image(0, l, 4, 4).channels, 1);  // mode 0 keeps the mode; 1 and 2 return RGB
    // Mode 2 (fit + fill); the bands are Pillow BICUBIC of a zero-size box (1.125 * edge - 0.125 * next
    // line). python3, A1111 images.resize_image(2, im, w, h) without upscaler, Pillow 9.4:
    //   resize_image(2, Image.fromarray(pat(6,2,1)[...,0]), 6, 6)   (gray, shown: channel 0 of the RGB
    //   result) resize_image(2, Image.fromarray(pat(2,5,3)), 6, 5)
    const Image wide = resize_image(2, l, 6, 6);
    ASSERT_EQ(wide.channels, 3);
    EXPECT_EQ(to_l(wide).pixels,
              (std::vector<uint8_t>{0,   24,  60,  96,  163, 199, 0,   24,  60,  96,  163, 199,
                                    0,   37,  74,  111, 148, 185, 91,  139, 187, 235, 27,  75,
                                    102, 152, 201, 251, 12,  61,  102, 152, 201, 251, 12,  61}));
    const std::vector<uint8_t> tall_ref = {
        0,   48,  101, 0,   48,  101, 0,   53,  106, 37,  90,  143, 42,  95,  148, 42,  95,  148,
        85,  138, 191, 85,  138, 191, 91,  144, 197, 139, 192, 245, 145, 198, 251, 145, 198, 251,
        175, 255, 25,  175, 255, 25,  182, 235, 32,  241, 38,  91,  248, 13,  98,  248, 13,  98,
        8,   61,  114, 8,   61,  114, 17,  70,  123, 87,  140, 193, 96,  149, 202, 96,  149, 202,
        98,  151, 236, 98,  151, 236, 108, 161, 214, 189, 242, 39,  199, 252, 17,  199, 252, 17};
    EXPECT_EQ(resize_image(2, pattern(2, 5, 3), 6, 5).pixels, tall_ref);
    // Mode 1 crops: 6x2 -> 2x2 keeps the middle.
    const Image cropped = resize_image(1, pattern(6, 2, 3), 2, 2);
    EXPECT_EQ(cropped.pixels, crop(pattern(6, 2, 3), Box{2, 0, 4, 2}).pixels);
}

// A 100x80 mask with a rectangle of 200 at [ya, yb) x [xa, xb); expected boxes from python3 with A1111's
// get_crop_region_v2 + expand_crop_region for (pad, W, H) = (8, 128, 128), (8, 160, 96), (0, 96, 160).
TEST(ImageEdit, CropRegionAtBorders) {
    struct Case {
        const char* name;
        int ya, yb, xa, xb;
        Box want[3];
    };
    const Case cases[] = {
        {"left", 20, 30, 0, 5, {{0, 12, 26, 38}, {0, 12, 43, 38}, {0, 20, 6, 30}}},
        {"right", 20, 30, 95, 100, {{74, 12, 100, 38}, {57, 12, 100, 38}, {94, 20, 100, 30}}},
        {"top", 0, 4, 40, 60, {{32, 0, 68, 36}, {32, 0, 68, 21}, {40, 0, 60, 33}}},
        {"bottom", 76, 80, 40, 70, {{32, 34, 78, 80}, {32, 53, 78, 80}, {40, 30, 70, 80}}},
        {"topleft", 0, 3, 0, 2, {{0, 0, 11, 11}, {0, 0, 18, 11}, {0, 0, 2, 3}}},
        {"bottomright", 70, 80, 90, 100, {{82, 62, 100, 80}, {70, 62, 100, 80}, {90, 64, 100, 80}}},
        {"wide_bottom", 70, 80, 0, 100, {{0, 0, 100, 80}, {0, 20, 100, 80}, {0, 0, 100, 80}}},
        {"tall_right", 0, 80, 97, 100, {{20, 0, 100, 80}, {0, 0, 100, 80}, {52, 0, 100, 80}}},
    };
    const int params[3][3] = {{8, 128, 128}, {8, 160, 96}, {0, 96, 160}};
    for (const auto& c : cases) {
        Image m{100, 80, 1, std::vector<uint8_t>(8000, 0)};
        for (int y = c.ya; y < c.yb; ++y)
            for (int x = c.xa; x < c.xb; ++x) m.at(x, y)[0] = 200;
        EXPECT_EQ(mask_bbox(m), (Box{c.xa, c.ya, c.xb, c.yb})) << c.name;
        for (int i = 0; i < 3; ++i) {
            const Box b = crop_region(m, params[i][0], params[i][1], params[i][2]);
            EXPECT_EQ(b, c.want[i]) << c.name << " " << i << ": got " << b.x1 << "," << b.y1 << "," << b.x2
                                    << "," << b.y2;
        }
    }
    EXPECT_FALSE(mask_bbox(Image{3, 3, 1, std::vector<uint8_t>(9, 0)}).has_value());
}

TEST(ImageEdit, AlphaCompositeAndOverlay) {
    // python3: Image.alpha_composite(Image.new('RGBA',(1,1),(200,10,50,100)),
    // Image.new('RGBA',(1,1),(0,100,255,128)))
    //   -> (56, 75, 198, 178)
    const Image d{1, 1, 4, {200, 10, 50, 100}}, s{1, 1, 4, {0, 100, 255, 128}};
    const Image out = alpha_composite(d, s);
    EXPECT_EQ(out.pixels, (std::vector<uint8_t>{56, 75, 198, 178}));
    // Transparent source: destination unchanged; opaque source: source.
    EXPECT_EQ(alpha_composite(d, Image{1, 1, 4, {1, 2, 3, 0}}).pixels, d.pixels);
    EXPECT_EQ(alpha_composite(d, Image{1, 1, 4, {1, 2, 3, 255}}).pixels,
              (std::vector<uint8_t>{1, 2, 3, 255}));
    // Overlay: keep where the mask is 0, transparent where 255, colour unpremultiplied in between.
    const Image rgb{3, 1, 3, {10, 20, 30, 40, 50, 60, 70, 80, 90}};
    // python3: im = Image.new('RGBa', (3, 1)); im.paste(rgb.convert('RGBA').convert('RGBa'),
    //   mask=ImageOps.invert(mask)); im.convert('RGBA')
    EXPECT_EQ(make_overlay(rgb, Image{3, 1, 1, {0, 255, 100}}).pixels,
              (std::vector<uint8_t>{10, 20, 30, 255, 0, 0, 0, 0, 70, 80, 90, 155}));
}

// ---- read_image ----

fs::path temp_file(const std::string& name, const std::string& bytes) {
    const fs::path p = fs::path(::testing::TempDir()) / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
}

std::string file_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

int64_t pixel_sum(const Image& im) {
    int64_t s = 0;
    for (uint8_t p : im.pixels) s += p;
    return s;
}

// tests/data/*.jpg were written by python3 with Pillow 9.4 (gradient: (x*16, y*20, 255-8x-8y), quality 90,
// baseline and progressive; gray: x*30 + 2y, quality 95); the values are those of np.array(Image.open(f)
// .convert('RGB')) (Pillow decodes with the same system libjpeg-turbo and default settings).
TEST(ImageEdit, ReadImageDecodesJpegAsPillow) {
    for (const char* name : {"gradient_16x12.jpg", "gradient_16x12_progressive.jpg"}) {
        auto im = read_image(test::data_path(name));
        ASSERT_TRUE(im) << im.error().message;
        EXPECT_EQ(im->width, 16);
        EXPECT_EQ(im->height, 12);
        EXPECT_EQ(im->channels, 3);
        EXPECT_EQ(pixel_sum(*im), 73253) << name;
        EXPECT_EQ(std::vector<uint8_t>(im->at(0, 0), im->at(0, 0) + 3), (std::vector<uint8_t>{0, 3, 238}));
        EXPECT_EQ(std::vector<uint8_t>(im->at(15, 11), im->at(15, 11) + 3),
                  (std::vector<uint8_t>{242, 211, 68}));
        EXPECT_EQ(std::vector<uint8_t>(im->at(5, 3), im->at(5, 3) + 3), (std::vector<uint8_t>{80, 60, 191}));
    }
    auto g = read_image(test::data_path("gray_8x8.jpg"));
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->channels, 3);  // grayscale -> RGB
    EXPECT_EQ(pixel_sum(*g), 21504);
    EXPECT_EQ(std::vector<uint8_t>(g->at(5, 3), g->at(5, 3) + 3), (std::vector<uint8_t>{156, 156, 156}));
    EXPECT_EQ(g->at(7, 7)[0], 224);
}

TEST(ImageEdit, ReadImagePicksFormatByContent) {
    // A JPEG named .png and a PNG named .jpg are both read.
    const std::string jpeg = file_bytes(test::data_path("gradient_16x12.jpg"));
    auto a = read_image(temp_file("really_a_jpeg.png", jpeg).string());
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(pixel_sum(*a), 73253);
    const fs::path png = fs::path(::testing::TempDir()) / "really_a_png.jpg";
    ASSERT_TRUE(write_png(png.string(), pattern(3, 2, 3)));
    auto b = read_image(png.string());
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->pixels, pattern(3, 2, 3).pixels);
}

TEST(ImageEdit, ReadImageRejectsBadFiles) {
    const std::string jpeg = file_bytes(test::data_path("gradient_16x12.jpg"));
    ASSERT_GT(jpeg.size(), 400u);
    struct Bad {
        std::string file, bytes, message;
        Errc code;
    };
    const Bad bad[] = {
        {"notes.txt", "hello, not an image\n", "not a PNG or JPEG image", Errc::format},
        {"empty.jpg", "", "not a PNG or JPEG image", Errc::format},
        {"truncated.jpg", jpeg.substr(0, jpeg.size() / 2), "invalid or truncated JPEG", Errc::format},
        {"header_only.jpg", jpeg.substr(0, 40), "invalid or truncated JPEG", Errc::format},
        {"garbage.jpg", std::string("\xFF\xD8\xFF") + std::string(200, '\x5A'), "invalid or truncated JPEG",
         Errc::format},
    };
    for (const auto& b : bad) {
        const std::string path = temp_file(b.file, b.bytes).string();
        auto r = read_image(path);
        ASSERT_FALSE(r) << b.file;
        EXPECT_EQ(r.error().code, b.code) << b.file;
        EXPECT_NE(r.error().message.find(path + ": " + b.message), std::string::npos) << r.error().message;
    }
    auto missing = read_image((fs::path(::testing::TempDir()) / "no_such_file.jpg").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::io);
}

}  // namespace
}  // namespace nb
