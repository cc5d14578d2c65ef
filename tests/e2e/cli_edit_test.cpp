// `nanobanana generate` editing flags: golden/edit cases through the CLI (within 2 levels on >= 99.5 % of the
// values, as the issue asks of the CLI), the infotext each writes, and bad input (one line, exit 2, no file).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

// The CLI flags for a golden case's params (edit_cases.json), as a user would type them.
std::string cli_args(const nlohmann::json& q) {
    std::string a = "--sampling-method '" + q["sampler_a1111"].get<std::string>() + "' -W " +
                    std::to_string(q["width"].get<int>()) + " -H " + std::to_string(q["height"].get<int>()) + " ";
    if (q["kind"] == "hires")
        return a + "--hires-fix --hr-scale " + std::to_string(q["hr_scale"].get<double>()) + " --hr-upscaler " +
               q["hr_upscaler"].get<std::string>() + " --hr-steps " + std::to_string(q["hr_second_pass_steps"].get<int>()) +
               " --hr-strength " + std::to_string(q["denoising_strength"].get<double>());
    a += "--strength " + std::to_string(q["denoising_strength"].get<double>()) + " ";
    const std::string init = q["init"];
    if (init.starts_with("outpaint_canvas"))  // the golden canvas is input_128 grown 32 px to the right
        return a + "-i " + edit("input_128.png") + " --outpaint 0,0,32,0";
    a += "-i " + edit(init + ".png");
    if (q["mask"].is_null()) return a;
    static const char* kFill[] = {"fill", "original", "latent-noise", "latent-nothing"};
    a += " --mask " + edit(q["mask"].get<std::string>() + ".png") + " --mask-blur " + std::to_string(q["mask_blur"].get<int>()) +
         " --inpainting-fill " + kFill[q["inpainting_fill"].get<int>()];
    if (q["inpaint_full_res"].get<bool>())
        a += " --only-masked --only-masked-padding " + std::to_string(q["inpaint_full_res_padding"].get<int>());
    return a;
}

void golden_cases_through_cli(const std::string& backend) {
    test::shared_path("golden/edit/edit_cases.json");
    std::ifstream f(edit("edit_cases.json"));
    const auto cases = nlohmann::json::parse(f);
    ASSERT_EQ(cases.size(), 14u);
    for (const auto& [name, c] : cases.items()) {
        SCOPED_TRACE(name);
        const auto& q = c["params"];
        const std::string out = tmp(name + "_" + backend + ".png");
        const auto r = run_cli(golden_cli(q["checkpoint"]) + cli_args(q) + " --backend " + backend + " -o " + out);
        ASSERT_EQ(r.code, 0) << r.err;
        expect_close_to_golden(out, name);
        const std::string text = test::slurp(out);
        const std::string kind = q["kind"];
        std::vector<std::string> keys;  // what A1111 writes for this kind of case
        if (kind == "hires") keys.push_back("Hires upscaler: Latent");
        if (kind == "img2img") keys.push_back("Denoising strength: ");
        if (kind == "inpaint") keys.push_back("Mask blur: 4");
        if (kind == "inpaint" && q["inpaint_full_res"].get<bool>())
            keys.push_back("Inpaint area: Only masked, Masked area padding: 32");
        if (kind == "inpaint" && q["inpainting_fill"] == 2) keys.push_back("Masked content: latent noise");
        for (const auto& k : keys) EXPECT_NE(text.find(k), std::string::npos) << k;
    }
}

TEST(CliEdit, GoldenCasesThroughTheCli) {
#if defined(__SANITIZE_ADDRESS__)
    // 85 s under the sanitizers; the same cases run there through the engine (EditGolden.*) and the CLI's edit
    // flags through CliEdit's other tests.
    GTEST_SKIP() << "the golden edit cases through the CLI run in the Release build";
#endif
    golden_cases_through_cli("cpu");
}

TEST(CliEdit, GoldenCasesThroughTheCliOnTheReferenceBackend) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the scalar reference backend runs in the Release build";
#endif
    golden_cases_through_cli("ref");
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
