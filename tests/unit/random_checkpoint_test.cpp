// The random-weight checkpoints `bench` writes (pipeline/random_checkpoint): their inventories must load as the
// family they stand for, with the real model's sizes (checked on the shapes alone, without writing GBs).
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "models/clip/config.h"
#include "models/unet/config.h"
#include "pipeline/model_family.h"
#include "pipeline/random_checkpoint.h"

namespace nb {
namespace {

struct Shapes {
    std::map<std::string, TensorEntry, std::less<>> entries;
    explicit Shapes(const std::vector<pipeline::TensorSpec>& specs) {
        for (const auto& s : specs) {
            TensorEntry e;
            e.name = s.name, e.dtype_name = "F16", e.dtype = DType::f16, e.shape = s.shape;
            EXPECT_TRUE(entries.emplace(s.name, e).second) << "twice: " << s.name;
        }
    }
    nn::TensorLookup lookup() const {
        return [this](std::string_view k) -> const TensorEntry* {
            auto it = entries.find(k);
            return it == entries.end() ? nullptr : &it->second;
        };
    }
};

TEST(RandomCheckpoint, Sd2InventoryIsSd2VWithViTH) {
    const Shapes s(pipeline::sd2_inventory());
    EXPECT_EQ(pipeline::detect_family(s.lookup()), pipeline::ModelFamily::sd2);
    auto clip = clip::CLIPConfig::detect_openclip(nn::Binder(s.lookup(), pipeline::kOpenClipPrefix));
    ASSERT_TRUE(clip) << clip.error().message;
    EXPECT_EQ(clip->hidden, 1024);
    EXPECT_EQ(clip->layers, 24);
    EXPECT_EQ(clip->heads, 16);
    EXPECT_EQ(clip->intermediate, 4096);
    auto unet = unet::UNetConfig::detect(nn::Binder(s.lookup(), pipeline::kUNetPrefix), {});
    ASSERT_TRUE(unet) << unet.error().message;
    EXPECT_EQ(unet->model_channels, 320);
    EXPECT_EQ(unet->context_dim, 1024);
    EXPECT_TRUE(unet->linear_proj);
    EXPECT_EQ(unet->heads_for(640), 10);  // 64 channels a head, as SD 2.x
}

TEST(RandomCheckpoint, Sd15InventoryIsSd1) {
    const Shapes s(pipeline::sd15_inventory());
    EXPECT_EQ(pipeline::detect_family(s.lookup()), pipeline::ModelFamily::sd1);
    auto unet = unet::UNetConfig::detect(nn::Binder(s.lookup(), pipeline::kUNetPrefix), {});
    ASSERT_TRUE(unet) << unet.error().message;
    EXPECT_EQ(unet->context_dim, 768);
    EXPECT_FALSE(unet->linear_proj);
    EXPECT_EQ(unet->heads_for(640), 8);
}

}  // namespace
}  // namespace nb
