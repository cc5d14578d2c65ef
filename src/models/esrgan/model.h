// Real-ESRGAN family super-resolution networks (SRVGGNetCompact and RRDBNet), loaded from .pth torch zips
// (params_ema / params unwrapped by the WeightStore) or .safetensors, architecture detected from the tensors.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/esrgan/config.h"
#include "models/nn/layers.h"

namespace nb::esrgan {

// Real-ESRGAN srvgg_arch.py: conv, PReLU, num_conv x (conv, PReLU), conv to out_ch*s*s, pixel_shuffle(s),
// plus the nearest-upsampled input.
struct SRVGG {
    nn::Conv2d first;                // body.0: [F, in, 3, 3]
    std::vector<Tensor> prelu;       // body.1, 3, ...: [F] each, num_conv + 1 of them
    std::vector<nn::Conv2d> convs;   // body.2, 4, ...: [F, F, 3, 3]
    nn::Conv2d last;                 // body.<2*num_conv+2>: [out*s*s, F, 3, 3]
};

// BasicSR ResidualDenseBlock: conv_k takes F + (k-1)*G channels (dense concat), conv1..4 -> G, conv5 -> F.
struct RDB {
    std::array<nn::Conv2d, 5> conv;
};
struct RRDB {
    std::array<RDB, 3> rdb;
};
struct RRDBNet {
    nn::Conv2d conv_first;           // [F, in*u*u, 3, 3] (u = unshuffle factor)
    std::vector<RRDB> body;
    nn::Conv2d conv_body, conv_up1, conv_up2, conv_hr, conv_last;
};

class Model {
public:
    static Result<Model> load(const std::string& path);
    static Result<Model> from_store(const WeightStore& store);

    const Config& config() const { return cfg_; }
    // x [N, in_ch, H, W] RGB in [0,1] -> [N, out_ch, H*scale, W*scale], unclamped.
    // RRDB x2 / x1 models need H, W divisible by the unshuffle factor (the tiler pads for them).
    Tensor forward(const Tensor& x) const;

private:
    friend Result<void> bind_weights(const WeightStore&, Model&);
    Tensor forward_srvgg(const Tensor& x) const;
    Tensor forward_rrdb(const Tensor& x) const;

    Config cfg_;
    SRVGG vgg_;
    RRDBNet rrdb_;
};

// Detects the architecture and binds every tensor (weights.cpp). Missing, unused or mis-shaped tensors are
// errors naming the key.
Result<void> bind_weights(const WeightStore& store, Model& m);

}  // namespace nb::esrgan
