// The README's "Editing" examples, run as written (scripts/nb -> the built CLI) on the demo model, and each
// output checked for what the README's comment says it shows. Needs no ../shared.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "image/edit.h"
#include "image/image.h"
#include "testutil/cli.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = (fs::path(__FILE__).parent_path() / "../..").lexically_normal();

// The lines of the first ```sh block after "## Editing" that run scripts/nb.
std::vector<std::string> readme_commands() {
    std::ifstream f(kRoot / "README.md");
    std::string line;
    std::vector<std::string> cmds;
    bool section = false, block = false;
    while (std::getline(f, line)) {
        if (line.rfind("## ", 0) == 0) section = line == "## Editing";
        if (!section) continue;
        if (line.rfind("```", 0) == 0) {
            if (block) break;
            block = true;
            continue;
        }
        if (block && line.rfind("scripts/nb ", 0) == 0) {
            const auto hash = line.find("   #");
            cmds.push_back(line.substr(0, hash));
        }
    }
    return cmds;
}

Image load(const fs::path& p) {
    auto r = read_png(p.string());
    if (!r) throw std::runtime_error(r.error().message);
    return to_rgb(*r);
}

enum class Hue { red, green, yellow, blue };
bool is(const uint8_t* p, Hue h) {
    switch (h) {
    case Hue::red: return p[0] > 150 && p[1] < 110 && p[2] < 110;
    case Hue::green: return p[1] > 110 && p[0] < 110 && p[2] < 120;
    case Hue::yellow: return p[0] > 150 && p[1] > 150 && p[2] < 110;
    case Hue::blue: return p[2] > 150 && p[0] < 110 && p[1] < 110;
    }
    return false;
}
// Share of the pixels in [x0, x1) x [y0, y1) of hue h.
double share(const Image& im, Hue h, int x0 = 0, int y0 = 0, int x1 = -1, int y1 = -1) {
    if (x1 < 0) x1 = im.width;
    if (y1 < 0) y1 = im.height;
    size_t n = 0;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) n += is(im.at(x, y), h);
    return double(n) / double((x1 - x0) * (y1 - y0));
}

// Pixels where keep == 0 equal in a and b.
size_t changed_outside(const Image& a, const Image& b, const Image& keep) {
    size_t n = 0;
    for (int y = 0; y < a.height; ++y)
        for (int x = 0; x < a.width; ++x)
            if (*keep.at(x, y) == 0) n += !std::equal(a.at(x, y), a.at(x, y) + 3, b.at(x, y));
    return n;
}

TEST(ReadmeEditing, ExamplesMakeWhatTheirCommentsSay) {
    const auto cmds = readme_commands();
    ASSERT_EQ(cmds.size(), 7u) << "the README's Editing block changed: update this test with it";
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_readme_edit_" + std::to_string(getpid()));
    fs::create_directories(dir);
    for (std::string c : cmds) {
        c.replace(0, std::string("scripts/nb").size(), NB_CLI);
        for (size_t at; (at = c.find(" docs/examples/")) != std::string::npos;)
            c.replace(at + 1, std::string("docs/examples/").size(), (kRoot / "docs/examples").string() + "/");
        const std::string cmd = "cd " + dir.string() + " && " + c + " 2> " + (dir / "err.txt").string();
        ASSERT_EQ(std::system(cmd.c_str()), 0) << c << "\n" << test::slurp((dir / "err.txt").string());
    }
    const Image circle = load(dir / "circle.png");
    EXPECT_GT(share(circle, Hue::red), 0.15) << "the picture to edit has a red shape";
    EXPECT_GT(share(circle, Hue::blue), 0.3);

    const Image green = load(dir / "green.png");
    EXPECT_GT(share(green, Hue::green), 0.15) << "img2img turned the shape green";
    EXPECT_LT(share(green, Hue::red), 0.05);

    auto mask = read_png((kRoot / "docs/examples/centre_mask.png").string());
    ASSERT_TRUE(mask);
    Image overlay_keep = gaussian_blur_mask(mask_to_l(*mask), 4, 4);  // whole picture: the blurred mask, doubled
    for (auto& v : overlay_keep.pixels) v = uint8_t(std::min(2 * int(v), 255));
    const Image yellow = load(dir / "yellow.png");
    EXPECT_GT(share(yellow, Hue::yellow, 14, 14, 50, 50), 0.15) << "inpaint made a yellow shape in the mask";
    EXPECT_EQ(changed_outside(yellow, circle, overlay_keep), 0u) << "inpaint kept the rest exact";

    const Image only = load(dir / "only_masked.png");
    EXPECT_GT(share(only, Hue::green, 14, 14, 50, 50), 0.15) << "only-masked inpaint made a green shape";
    EXPECT_EQ(changed_outside(only, circle, gaussian_blur_mask(mask_to_l(*mask), 4, 4)), 0u);

    const Image wider = load(dir / "wider.png");
    ASSERT_EQ(wider.width, 96);
    ASSERT_EQ(wider.height, 64);
    size_t kept_wrong = 0;
    for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 50; ++x)  // beyond the seam's blur the picture is kept exactly
            kept_wrong += !std::equal(wider.at(x, y), wider.at(x, y) + 3, circle.at(x, y));
    EXPECT_EQ(kept_wrong, 0u);
    EXPECT_GT(share(wider, Hue::blue, 72, 0, 96, 64), 0.9) << "the new strip is painted blue";

    const Image hires = load(dir / "hires.png");
    EXPECT_EQ(hires.width, 128);
    EXPECT_EQ(hires.height, 128);
    EXPECT_GT(share(hires, Hue::red), 0.15);

    const Image variation = load(dir / "variation.png");
    EXPECT_NE(variation.pixels, circle.pixels) << "a variation differs from the seed's picture";
    EXPECT_GT(share(variation, Hue::red), 0.1) << "... but is still a red shape on blue";
}

}  // namespace
}  // namespace nb
