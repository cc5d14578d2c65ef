#include "models/taesd/model.h"

#include <cmath>

#include <fmt/format.h>

namespace nb::taesd {

std::string Config::summary() const {
    return fmt::format("TAESD, {} latent channels{}", latent_channels, pooled ? ", pooled blocks (FLUX.2)" : "");
}

Tensor Block::forward(const Tensor& in) const {
    Tensor x = in;
    if (pooled) {
        Tensor p = pool0.forward(x);
        p = pool_norm.forward(p);
        ops::relu_(p);
        p = pool3.forward(p);
        x = x.clone();
        ops::add_(x, p);
    }
    Tensor h = conv0.forward(x);
    ops::relu_(h);
    h = conv2.forward(h);
    ops::relu_(h);
    h = conv4.forward(h);
    ops::add_(h, x);  // skip: identity (64 -> 64)
    ops::relu_(h);
    return h;
}

namespace {

Tensor run(const std::vector<Layer>& layers, Tensor x) {
    for (const Layer& l : layers) {
        switch (l.kind) {
            case Layer::Kind::conv: x = l.conv.forward(x); break;
            case Layer::Kind::conv_relu:
                x = l.conv.forward(x);
                ops::relu_(x);
                break;
            case Layer::Kind::block: x = l.block.forward(x); break;
            case Layer::Kind::upsample: x = ops::upsample_nearest2x(x); break;
        }
    }
    return x;
}

}  // namespace

Tensor Model::decode(const Tensor& z) const {
    Tensor x = Tensor::empty(z.shape());  // taesd.py Clamp: tanh(z / 3) * 3
    for (int64_t i = 0; i < z.numel(); ++i) x.data()[i] = std::tanh(z.data()[i] / 3.f) * 3.f;
    return run(decoder_, std::move(x));
}

Tensor Model::encode(const Tensor& x) const { return run(encoder_, x); }

}  // namespace nb::taesd
