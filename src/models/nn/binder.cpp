#include "models/nn/binder.h"

#include "backend/weights.h"

namespace nb::nn {

Binder::Binder(TensorLookup lookup, std::string prefix, BindMode mode)
    : lookup_(std::move(lookup)),
      prefix_(std::move(prefix)),
      mode_(mode),
      error_(std::make_shared<std::optional<Error>>()),
      used_(std::make_shared<std::set<std::string>>()),
      bound_(std::make_shared<std::map<std::string, Tensor>>()),
      sources_(std::make_shared<std::map<std::string, WeightSource>>()) {}

Binder Binder::scope(std::string_view name) const {
    Binder b = *this;
    b.prefix_ = prefix_ + std::string(name) + ".";
    return b;
}

const TensorEntry* Binder::entry(std::string_view name) const { return lookup_(key(name)); }
bool Binder::has(std::string_view name) const { return entry(name) != nullptr; }

const TensorEntry* Binder::bind_entry(std::string_view name, const Shape& shape) {
    if (!ok()) return nullptr;
    const std::string k = key(name);
    const TensorEntry* e = lookup_(k);
    if (!e) {
        *error_ = Error{Errc::missing, fmt::format("missing tensor '{}' (expected shape {})", k, shape_str(shape))};
        return nullptr;
    }
    // A 1x1 conv [out, in, 1, 1] may be bound where a Linear [out, in] is expected (and vice versa for the
    // 4-D request): SD 1.x stores proj_in/proj_out and VAE attention as 1x1 convs, SD 2.x as Linear.
    auto squeeze = [](const Shape& s) { return s.size() == 4 && s[2] == 1 && s[3] == 1 ? Shape{s[0], s[1]} : s; };
    if (e->shape != shape && squeeze(e->shape) != squeeze(shape)) {
        *error_ = Error{Errc::shape, fmt::format("tensor '{}' has wrong shape: got {}, expected {}", k,
                                                 shape_str(e->shape), shape_str(shape))};
        return nullptr;
    }
    if (auto convertible = check_convertible(*e); !convertible && !dry_run()) {
        *error_ = convertible.error();
        return nullptr;
    }
    used_->insert(k);
    return e;
}

Tensor Binder::record(std::string_view name, WeightSource src, Tensor t) {
    const std::string k = key(name);
    (*bound_)[k] = t;
    (*sources_)[k] = src;
    return t;
}

void pack_from_file(const Tensor& w, const WeightSource& src) {
    const ops::WeightBits bits{*src.entry->dtype, src.entry->data};  // straight from the file's bits where it can be
    if (src.pack == WeightSource::Pack::conv) ops::prepack_conv_from(w, bits, src.stride, src.pad);
    if (src.pack == WeightSource::Pack::linear) ops::prepack_linear_from(w, bits);
}

Tensor Binder::tensor(std::string_view name, const Shape& shape) {
    const TensorEntry* e = bind_entry(name, shape);
    if (!e || dry_run()) return {};
    if (deferred()) return record(name, {.entry = e, .loaded = false}, Tensor::without_values(shape));
    auto t = entry_to_f32(*e);
    drop_entry_pages(*e);  // the converted copy is what stays resident
    if (!t) {
        *error_ = t.error();
        return {};
    }
    return record(name, {.entry = e}, t->reshape(shape));
}

Tensor Binder::packed(std::string_view name, const Shape& shape, WeightSource how) {
    const TensorEntry* e = bind_entry(name, shape);
    if (!e || dry_run()) return {};
    how.entry = e;
    how.loaded = !deferred();
    Tensor t = Tensor::without_values(shape);
    if (deferred()) return record(name, how, t);
    pack_from_file(t, how);
    drop_entry_pages(*e);  // the packed copy is what stays resident
    return record(name, how, t);
}

void Binder::linear(Linear& m, std::string_view name, int64_t in, int64_t out, bool bias) {
    std::string n(name);
    if (bias) return linear(m, n + ".weight", n + ".bias", in, out);
    m.weight = packed(n + ".weight", {out, in}, {.pack = WeightSource::Pack::linear});
}

void Binder::linear(Linear& m, std::string_view weight_name, std::string_view bias_name, int64_t in,
                    int64_t out) {
    m.weight = packed(weight_name, {out, in}, {.pack = WeightSource::Pack::linear});
    m.bias = tensor(bias_name, {out});
}

void Binder::linear_or_1x1(Linear& m, std::string_view name, int64_t in, int64_t out) {
    linear(m, name, in, out, true);  // tensor() accepts [out, in, 1, 1] for a 2-D request of equal size
}

void Binder::conv2d(Conv2d& m, std::string_view name, int64_t in, int64_t out, int k, int stride, int pad) {
    std::string n(name);
    m.stride = stride;
    m.pad = ops::Pad2d::same(pad < 0 ? k / 2 : pad);
    m.weight = packed(n + ".weight", {out, in, k, k},
                      {.pack = WeightSource::Pack::conv, .stride = m.stride, .pad = m.pad});
    m.bias = tensor(n + ".bias", {out});
}

void Binder::group_norm(GroupNorm& m, std::string_view name, int64_t c, float eps, int groups) {
    std::string n(name);
    m.weight = tensor(n + ".weight", {c});
    m.bias = tensor(n + ".bias", {c});
    m.eps = eps;
    m.groups = groups;
}

void Binder::layer_norm(LayerNorm& m, std::string_view name, int64_t d, float eps) {
    std::string n(name);
    m.weight = tensor(n + ".weight", {d});
    m.bias = tensor(n + ".bias", {d});
    m.eps = eps;
}

Result<void> Binder::status() const {
    if (error_->has_value()) return std::unexpected(**error_);
    return {};
}

}  // namespace nb::nn
