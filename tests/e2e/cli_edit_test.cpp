// `nanobanana generate` editing flags: golden/edit cases through the CLI (within 2 levels on >= 99.5 % of the
// values, as the issue asks of the CLI), the infotext each writes, and bad input (one line, exit 2, no file).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "image/image.h"
#include "testutil/cli.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/nb_cli_edit_" + name; }
std::string edit(const std::string& f) { return test::shared_dir() + "/golden/edit/" + f; }

// The golden common settings (golden/README.md, edit/): prompt, negative, CFG 7, seed 42, 8 steps.
std::string golden_cli(const std::string& checkpoint) {
    return "generate -m " + test::shared_dir() + "/golden/" + checkpoint + " --vocab " + test::shared_dir() +
           "/assets/tokenizer/bpe_simple_vocab_16e6.txt.gz -p 'a photo of a cat, (oil painting:1.2), highly detailed'"
           " -n 'blurry, lowres' --cfg-scale 7 -s 42 --steps 8 ";
}

void expect_close_to_golden(const std::string& out, const std::string& case_name) {
    auto got = read_png(out);
    ASSERT_TRUE(got) << got.error().message;
    auto ref = read_png(edit(case_name + ".image.png"));
    ASSERT_TRUE(ref);
    ASSERT_EQ(got->width, ref->width);
    ASSERT_EQ(got->height, ref->height);
    ASSERT_EQ(got->pixels.size(), ref->pixels.size());
    size_t beyond = 0;
    for (size_t i = 0; i < ref->pixels.size(); ++i) beyond += std::abs(int(got->pixels[i]) - int(ref->pixels[i])) > 2;
    EXPECT_LE(beyond * 200, ref->pixels.size()) << beyond << " values differ by more than 2 levels";
}

struct CliCase {
    const char* name;
    const char* checkpoint;
    std::string args;
    const char* infotext;  // a fragment the PNG's parameters must contain
};

TEST(CliEdit, GoldenCasesThroughTheCli) {
    test::shared_path("golden/edit/edit_cases.json");
    const std::vector<CliCase> cases = {
        {"img2img_d075_euler_a", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'Euler a' -i " + edit("input_128.png") + " --strength 0.75", "Denoising strength: 0.75"},
        {"img2img_resize0_d050_dpmpp_2m_karras", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'DPM++ 2M' -W 128 -H 128 -i " + edit("input_150x100.png") + " --strength 0.5",
         "Size: 128x128"},
        {"inpaint_rect_latentnoise_whole_dpmpp_2m_karras", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'DPM++ 2M' -i " + edit("input_128.png") + " --mask " + edit("mask_rect_128.png") +
             " --inpainting-fill latent-noise",
         "Masked content: latent noise"},
        {"inpaint_brush_original_onlymasked_euler_a", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'Euler a' -W 128 -H 128 -i " + edit("input_256.png") + " --mask " +
             edit("mask_brush_256.png") + " --only-masked --only-masked-padding 32",
         "Inpaint area: Only masked, Masked area padding: 32"},
        {"inpaint9_rect_original_whole_euler_a", "edit/sd_tiny_inpaint_fp16.safetensors",
         "--sampling-method 'Euler a' -i " + edit("input_128.png") + " --mask " + edit("mask_rect_128.png") +
             " --strength 1",
         "Mask blur: 4"},
        {"outpaint_right_latentnoise_whole_euler_a", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'Euler a' -i " + edit("input_128.png") + " --outpaint 0,0,32,0 --strength 0.9",
         "Size: 160x128"},
        {"hires_latent_euler_a", "pipeline/sd_tiny_fp16.safetensors",
         "--sampling-method 'Euler a' -W 64 -H 64 --hires-fix --hr-scale 2 --hr-upscaler Latent --hr-steps 4 "
         "--hr-strength 0.55",
         "Hires upscale: 2, Hires steps: 4, Hires upscaler: Latent"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string out = tmp(std::string(c.name) + ".png");
        const auto r = run_cli(golden_cli(c.checkpoint) + c.args + " -o " + out);
        ASSERT_EQ(r.code, 0) << r.err;
        expect_close_to_golden(out, c.name);
        const std::string text = test::slurp(out);
        EXPECT_NE(text.find(c.infotext), std::string::npos) << c.infotext;
    }
}

// On the demo model (no ../shared): bad input is one line on stderr, exit 2 and no output file.
TEST(CliEdit, BadInputIsRefusedWithoutAnOutputFile) {
    const std::string dir = tmp("bad");
    fs::create_directories(dir);
    // An input picture and masks: made by the CLI itself.
    const std::string init = dir + "/init.png";
    ASSERT_EQ(run_cli("generate -p 'a red circle' --steps 2 -s 1 -o " + init).code, 0);
    const std::string black = dir + "/black.png";
    Image b{64, 64, 1, std::vector<uint8_t>(64 * 64, 0)};
    ASSERT_TRUE(write_png(black, b));
    const std::string text = dir + "/notes.png";
    { std::ofstream(text) << "not a picture\n"; }
    struct Bad {
        std::string args, message;
    };
    for (const Bad& c : std::vector<Bad>{
             {"-i " + init + " --mask " + black, "mask is empty"},
             {"-i " + dir + "/missing.png", "missing.png"},
             {"-i " + text, "not a PNG or JPEG"},
             {"-i " + init + " --mask " + text, "--mask"},
             {"-i " + init + " --strength 1.5", "strength"},
             {"-i " + init + " --strength -0.1", "strength"},
             {"-i " + init + " --inpainting-fill sideways", "--inpainting-fill"},
             {"-i " + init + " --outpaint 1,2,3", "--outpaint"},
             {"--mask " + black, "--mask needs -i"},
             {"--hires-fix --hr-upscaler no-such-model", "no-such-model"},
             {"-i " + init + " --hires-fix", "--hires-fix is for txt2img"},
         }) {
        SCOPED_TRACE(c.args);
        const std::string out = dir + "/out.png";
        const auto r = run_cli("generate -p 'a red circle' --steps 2 " + c.args + " -o " + out);
        EXPECT_EQ(r.code, 2) << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(out));
    }
}

// The demo model repaints a shape's colour (the README's "Editing" examples run here).
TEST(CliEdit, StrengthZeroAndJpegInput) {
    const std::string dir = tmp("zero");
    fs::create_directories(dir);
    const std::string init = dir + "/init.png", out = dir + "/same.png";
    ASSERT_EQ(run_cli("generate -p 'a red circle' --steps 2 -s 3 -o " + init).code, 0);
    const auto r = run_cli("generate -p 'a blue square' -i " + init + " --strength 0 -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    auto a = read_png(init), b = read_png(out);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->pixels, b->pixels);
    // JPEG input (a file committed for the image tests), told apart by its bytes, not its name.
    const auto j = run_cli("generate -p 'a red circle' --steps 2 -W 64 -H 64 -i " + test::data_path("gradient_16x12.jpg") +
                           " --strength 0.5 -o " + dir + "/from_jpeg.png");
    EXPECT_EQ(j.code, 0) << j.err;
}

}  // namespace
}  // namespace nb
