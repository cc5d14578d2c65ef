// Tensor: a cheap, shared, contiguous fp32 buffer with a row-major shape (STYLE.md #4).
// Activations are always fp32; reduced-precision weights live in the weight store, not here.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nb {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 4, 64, 64]"

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(Shape shape);  // zero-initialised
    static Tensor empty(Shape shape);  // uninitialised (for outputs that are fully written)
    static Tensor from(Shape shape, std::span<const float> values);
    static Tensor full(Shape shape, float v);

    const Shape& shape() const { return shape_; }
    int64_t dim(int i) const { return shape_[i < 0 ? i + int(shape_.size()) : i]; }
    int ndim() const { return int(shape_.size()); }
    int64_t numel() const { return numel_; }
    bool defined() const { return bool(storage_); }

    float* data() { return storage_.get() + offset_; }
    const float* data() const { return storage_.get() + offset_; }
    std::span<float> span() { return {data(), size_t(numel_)}; }
    std::span<const float> span() const { return {data(), size_t(numel_)}; }

    // Same storage, new shape (numel must match).
    Tensor reshape(Shape s) const;
    // Contiguous slice [i0, i1) along dimension 0, sharing storage.
    Tensor slice0(int64_t i0, int64_t i1) const;
    Tensor clone() const;

private:
    std::shared_ptr<float[]> storage_;
    int64_t offset_ = 0;
    int64_t numel_ = 0;
    Shape shape_;
};

}  // namespace nb
