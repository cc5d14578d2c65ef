#include "models/lora/lora.h"

#include <filesystem>

namespace nb::lora {

namespace {

// Suffixes of the tensors of one LoRA module (kohya and diffusers/PEFT spellings).
enum class Part { up, down, alpha };
constexpr std::pair<std::string_view, Part> kParts[] = {
    {".lora_up.weight", Part::up}, {".lora_down.weight", Part::down}, {".alpha", Part::alpha},
    {".lora_B.weight", Part::up},  {".lora_A.weight", Part::down},
};

// Key fragments of network types A1111 supports through other modules (LyCORIS); not merged here.
constexpr std::pair<std::string_view, std::string_view> kUnsupported[] = {
    {".hada_", "LoHa"},      {".lokr_", "LoKr"}, {".lora_mid.", "LoCon with Tucker lora_mid"},
    {".dora_scale", "DoRA"}, {".oft_", "OFT"},   {".diff", "full diff"},
    {".w_norm", "norm"},
};

struct Pending {
    const TensorEntry* up = nullptr;
    const TensorEntry* down = nullptr;
    const TensorEntry* alpha = nullptr;
};

// Module name in kohya form, or nullopt for a name that is neither kohya nor diffusers/PEFT.
std::optional<std::string> module_name(std::string_view prefix) {
    if (prefix.starts_with("lora_")) return std::string(prefix);
    return diffusers_to_kohya(prefix);
}

Result<LoraModule> make_module(const std::string& name, const Pending& p, const std::string& file) {
    if (!p.up || !p.down)
        return make_error(Errc::format, "{}: LoRA module '{}' has no {} tensor", file, name,
                          p.up ? "lora_down/lora_A" : "lora_up/lora_B");
    LoraModule m{name, *p.up, *p.down, std::nullopt, 0};
    const Shape &u = m.up.shape, &d = m.down.shape;
    const bool up_ok = u.size() == 2 || (u.size() == 4 && u[2] == 1 && u[3] == 1);
    if (!up_ok || (d.size() != 2 && d.size() != 4) || d[0] <= 0 || u[1] != d[0])
        return make_error(Errc::shape, "{}: LoRA module '{}': up {} and down {} do not form a rank-r product",
                          file, name, shape_str(u), shape_str(d));
    m.rank = d[0];
    if (p.alpha) {
        if (p.alpha->shape.size() > 1 || shape_numel(p.alpha->shape) != 1)
            return make_error(Errc::shape, "{}: '{}.alpha' must be a scalar, got {}", file, name,
                              shape_str(p.alpha->shape));
        NB_TRY(a, entry_to_f32(*p.alpha));
        m.alpha = a.data()[0];
    }
    return m;
}

}  // namespace

bool is_lora(const SafeTensors& st) {
    for (const auto& e : st.entries())
        for (auto [suffix, part] : kParts)
            if (part != Part::alpha && e.name.ends_with(suffix)) return true;
    for (const auto& e : st.entries())
        if (e.name.starts_with("lora_") &&
            (e.name.find(".hada_") != std::string::npos || e.name.find(".lokr_") != std::string::npos))
            return true;
    return false;
}

Result<LoraFile> LoraFile::open(const std::string& path) {
    NB_TRY(st, SafeTensors::open(path));
    NB_TRY(f, from(st));
    f.path = path;
    f.name = std::filesystem::path(path).stem().string();
    return f;
}

Result<LoraFile> LoraFile::from(const SafeTensors& st) {
    LoraFile f;
    f.st_ = std::make_shared<SafeTensors>(st);
    f.path = st.path();
    f.metadata = st.metadata();
    std::map<std::string, Pending> pending;
    for (const auto& e : f.st_->entries()) {
        for (auto [frag, type] : kUnsupported)
            if (e.name.find(frag) != std::string::npos)
                return make_error(Errc::unsupported, "{}: unsupported LoRA type ({}): key '{}'", f.path, type,
                                  e.name);
        bool matched = false;
        for (auto [suffix, part] : kParts) {
            if (!e.name.ends_with(suffix)) continue;
            auto name = module_name(std::string_view(e.name).substr(0, e.name.size() - suffix.size()));
            if (!name) break;
            Pending& p = pending[*name];
            (part == Part::up ? p.up : part == Part::down ? p.down : p.alpha) = &e;
            matched = true;
            break;
        }
        if (!matched) f.unrecognised_keys.push_back(e.name);
    }
    for (const auto& [name, p] : pending) {
        NB_TRY(m, make_module(name, p, f.path));
        f.modules.push_back(std::move(m));
    }
    if (f.modules.empty())
        return make_error(Errc::format,
                          "{}: no LoRA tensors (*.lora_up/lora_down.weight or *.lora_A/lora_B.weight)",
                          f.path);
    return f;
}

Result<void> check_fit(const LoraModule& m, const Shape& w, std::string_view what) {
    const int64_t out = m.up.shape[0], k = shape_numel(m.down.shape) / m.rank;
    if (w.empty() || w[0] != out || shape_numel(w) != out * k)
        return make_error(Errc::shape,
                          "{}: LoRA module '{}' does not fit: up {} @ down {} gives [{}, {}], weight is {}",
                          what, m.name, shape_str(m.up.shape), shape_str(m.down.shape), out, k, shape_str(w));
    return {};
}

Result<Tensor> module_delta(const LoraModule& m, const Shape& w, float multiplier, std::string_view file) {
    if (auto fit = check_fit(m, w, file); !fit) return std::unexpected(fit.error());
    const int64_t r = m.rank, out = m.up.shape[0], k = shape_numel(m.down.shape) / r;
    NB_TRY(up, entry_to_f32(m.up));      // [out, r]
    NB_TRY(down, entry_to_f32(m.down));  // [r, k]
    Tensor d = Tensor(Shape(w));         // [out, k] viewed as w
    const float scale = m.scale();
    const float* U = up.data();
    const float* D = down.data();
    float* o = d.data();
#pragma omp parallel for if (out * k * r > (1 << 20))
    for (int64_t i = 0; i < out; ++i) {
        for (int64_t j = 0; j < r; ++j) {
            const float u = U[i * r + j];
            const float* dj = D + j * k;
            for (int64_t c = 0; c < k; ++c) o[i * k + c] += u * dj[c];
        }
        // As finalize_updown: (up @ down) * scale * multiplier, each product rounded to fp32.
        for (int64_t c = 0; c < k; ++c) o[i * k + c] = o[i * k + c] * scale * multiplier;
    }
    return d;
}

std::set<std::string> LoraState::touched() const {
    std::set<std::string> keys;
    for (const auto& [k, _] : backup_) keys.insert(k);
    return keys;
}

}  // namespace nb::lora
