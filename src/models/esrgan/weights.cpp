// The ESRGAN key tables: architecture detection from tensor names/shapes and one binder call per tensor,
// in BasicSR / Real-ESRGAN state_dict names. Old ESRGAN files ("model.N" Sequential of xinntao/ESRGAN's
// RRDBNet_arch.py) are renamed to those names first, through the table below.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include <fmt/format.h>

#include "models/esrgan/model.h"
#include "models/nn/binder.h"

namespace nb::esrgan {

namespace {

using Names = std::map<std::string, const TensorEntry*, std::less<>>;

// Old ESRGAN Sequential indices -> BasicSR module names (x4: 0 conv, 1 ShortcutBlock(RRDBs + conv),
// 2 upsample, 3 conv, 4 lrelu, 5 upsample, 6 conv, 7 lrelu, 8 conv, 9 lrelu, 10 conv).
struct Rename {
    const char* old_prefix;
    const char* new_prefix;
};
constexpr Rename kOldEsrganNames[] = {
    {"model.0.", "conv_first."}, {"model.3.", "conv_up1."}, {"model.6.", "conv_up2."},
    {"model.8.", "conv_hr."},    {"model.10.", "conv_last."},
};

// "model.1.sub.<n>.RDB<k>.conv<j>.0.<p>" -> "body.<n>.rdb<k>.conv<j>.<p>"; "model.1.sub.<n>.<p>" -> "conv_body.<p>".
Result<std::string> rename_old(const std::string& key) {
    for (const Rename& r : kOldEsrganNames)
        if (key.starts_with(r.old_prefix)) return r.new_prefix + key.substr(std::strlen(r.old_prefix));
    int n = 0, k = 0, j = 0, used = 0;
    char param[16] = {};
    if (std::sscanf(key.c_str(), "model.1.sub.%d.RDB%d.conv%d.0.%15[a-z]%n", &n, &k, &j, param, &used) == 4 &&
        size_t(used) == key.size())
        return fmt::format("body.{}.rdb{}.conv{}.{}", n, k, j, param);
    if (std::sscanf(key.c_str(), "model.1.sub.%d.%15[a-z]%n", &n, param, &used) == 2 && size_t(used) == key.size())
        return fmt::format("conv_body.{}", param);
    return make_error(Errc::unsupported, "unrecognised old-style ESRGAN tensor '{}'", key);
}

Result<Names> collect_names(const WeightStore& store) {
    Names names;
    const bool old_style = store.find("model.0.weight") != nullptr;
    for (const TensorEntry& e : store.entries()) {
        std::string name = e.name;
        if (old_style) {
            NB_TRY(renamed, rename_old(e.name));
            name = std::move(renamed);
        }
        names.emplace(std::move(name), &e);
    }
    return names;
}

const Shape* shape_of(const Names& n, const std::string& key) {
    auto it = n.find(key);
    return it == n.end() ? nullptr : &it->second->shape;
}

int count_indexed(const Names& n, const char* pattern) {
    int i = 0;
    while (n.contains(fmt::format(fmt::runtime(pattern), i))) ++i;
    return i;
}

Result<Config> detect_srvgg(const Names& n, const std::string& src) {
    Config c;
    c.arch = Arch::srvgg;
    const Shape& first = *shape_of(n, "body.0.weight");
    if (first.size() != 4) return make_error(Errc::shape, "{}: body.0.weight must be 4-D, got {}", src, shape_str(first));
    c.num_feat = int(first[0]);
    c.in_ch = c.out_ch = int(first[1]);
    int last = 0;
    while (n.contains(fmt::format("body.{}.weight", last + 2))) last += 2;
    if (last < 2) return make_error(Errc::missing, "{}: SRVGGNetCompact needs body.2.weight", src);
    c.num_conv = last / 2 - 1;
    const Shape* prelu = shape_of(n, "body.1.weight");
    if (!prelu || prelu->size() != 1)
        return make_error(Errc::unsupported, "{}: only PReLU SRVGGNetCompact models are supported (body.1.weight)", src);
    const Shape& lw = *shape_of(n, fmt::format("body.{}.weight", last));
    const int ss = int(lw[0]) / c.out_ch, s = int(std::lround(std::sqrt(double(ss))));
    if (s < 1 || s * s * c.out_ch != lw[0])
        return make_error(Errc::shape, "{}: body.{}.weight has {} output channels, not {}*s*s", src, last, lw[0], c.out_ch);
    c.scale = s;
    return c;
}

Result<Config> detect_rrdb(const Names& n, const std::string& src) {
    Config c;
    c.arch = Arch::rrdb;
    const Shape& first = *shape_of(n, "conv_first.weight");
    const Shape* last = shape_of(n, "conv_last.weight");
    const Shape* grow = shape_of(n, "body.0.rdb1.conv1.weight");
    if (!last || !grow) return make_error(Errc::missing, "{}: RRDBNet needs conv_last.weight and body.0.rdb1.conv1.weight", src);
    if (first.size() != 4 || last->size() != 4)
        return make_error(Errc::shape, "{}: conv_first/conv_last weights must be 4-D", src);
    if (n.contains("conv_up3.weight"))
        return make_error(Errc::unsupported, "{}: RRDBNet with a third upsampling conv (x8) is not supported", src);
    c.num_feat = int(first[0]);
    c.out_ch = c.in_ch = int((*last)[0]);
    const int64_t uu = first[1] / c.in_ch;
    c.unshuffle = uu == 1 ? 1 : uu == 4 ? 2 : uu == 16 ? 4 : 0;
    if (c.unshuffle == 0 || uu * c.in_ch != first[1])
        return make_error(Errc::shape, "{}: conv_first.weight takes {} channels: not {} x 1, 4 or 16", src, first[1], c.in_ch);
    c.scale = 4 / c.unshuffle;
    c.num_block = count_indexed(n, "body.{}.rdb1.conv1.weight");
    c.num_grow = int((*grow)[0]);
    return c;
}

void bind_srvgg(nn::Binder& b, const Config& c, SRVGG& m) {
    const int f = c.num_feat;
    b.conv2d(m.first, "body.0", c.in_ch, f, 3);
    m.prelu.resize(size_t(c.num_conv + 1));
    m.convs.resize(size_t(c.num_conv));
    m.prelu[0] = b.tensor("body.1.weight", {f});
    for (int i = 0; i < c.num_conv; ++i) {
        b.conv2d(m.convs[size_t(i)], fmt::format("body.{}", 2 + 2 * i), f, f, 3);
        m.prelu[size_t(i + 1)] = b.tensor(fmt::format("body.{}.weight", 3 + 2 * i), {f});
    }
    b.conv2d(m.last, fmt::format("body.{}", 2 * c.num_conv + 2), f, c.out_ch * c.scale * c.scale, 3);
}

void bind_rrdb(nn::Binder& b, const Config& c, RRDBNet& m) {
    const int f = c.num_feat, g = c.num_grow, u = c.unshuffle;
    b.conv2d(m.conv_first, "conv_first", c.in_ch * u * u, f, 3);
    m.body.resize(size_t(c.num_block));
    for (int i = 0; i < c.num_block; ++i)
        for (int k = 0; k < 3; ++k) {
            nn::Binder r = b.scope(fmt::format("body.{}.rdb{}", i, k + 1));
            RDB& rdb = m.body[size_t(i)].rdb[size_t(k)];
            for (int j = 0; j < 4; ++j) r.conv2d(rdb.conv[size_t(j)], fmt::format("conv{}", j + 1), f + j * g, g, 3);
            r.conv2d(rdb.conv[4], "conv5", f + 4 * g, f, 3);
        }
    b.conv2d(m.conv_body, "conv_body", f, f, 3);
    b.conv2d(m.conv_up1, "conv_up1", f, f, 3);
    b.conv2d(m.conv_up2, "conv_up2", f, f, 3);
    b.conv2d(m.conv_hr, "conv_hr", f, f, 3);
    b.conv2d(m.conv_last, "conv_last", f, c.out_ch, 3);
}

}  // namespace

Result<void> bind_weights(const WeightStore& store, Model& m) {
    const std::string& src = store.path();
    NB_TRY(names, collect_names(store));
    if (names.contains("body.0.weight")) {
        NB_TRY(cfg, detect_srvgg(names, src));
        m.cfg_ = cfg;
    } else if (names.contains("conv_first.weight")) {
        NB_TRY(cfg, detect_rrdb(names, src));
        m.cfg_ = cfg;
    } else {
        return make_error(Errc::unsupported,
                          "{}: not a Real-ESRGAN model (no body.0.weight for SRVGGNetCompact, no conv_first.weight "
                          "or model.0.weight for RRDBNet)",
                          src);
    }
    nn::Binder b([&names](std::string_view k) -> const TensorEntry* {
        auto it = names.find(k);
        return it == names.end() ? nullptr : it->second;
    });
    if (m.cfg_.arch == Arch::srvgg)
        bind_srvgg(b, m.cfg_, m.vgg_);
    else
        bind_rrdb(b, m.cfg_, m.rrdb_);
    if (auto r = b.status(); !r) return make_error(r.error().code, "{}: {}", src, r.error().message);
    for (const auto& [name, e] : names)
        if (!b.used().contains(name))
            return make_error(Errc::format, "{}: unexpected tensor '{}' for {}", src, name, m.cfg_.summary());
    return {};
}

}  // namespace nb::esrgan
