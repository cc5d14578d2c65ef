#include "core/tensor.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/activation_heap.h"

namespace nb {

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// 64-byte aligned (AVX-512 loads); large buffers from the calling thread's activation heap (its engine's),
// which the storage keeps so that the buffer goes back to the heap it came from.
void Tensor::Storage::allocate() {
    heap = activation_heap::current_shared();
    values = static_cast<float*>(heap->allocate(size_t(n) * sizeof(float)));
}

void Tensor::Storage::free() {
    if (values) heap->deallocate(values, size_t(n) * sizeof(float));
    values = nullptr;
    heap.reset();
}

Tensor::Storage::~Storage() { free(); }

void Tensor::release_values() const {
    if (storage_ && storage_->values) storage_->free();
}

void Tensor::restore_values() const {
    if (storage_ && !storage_->values) storage_->allocate();
}

std::shared_ptr<Attachment> Tensor::attachment() const {
    return storage_ ? storage_->attachment.load() : nullptr;
}

std::shared_ptr<Attachment> Tensor::attach(std::shared_ptr<Attachment> a) const {
    if (!storage_) throw std::logic_error("Tensor::attach: undefined tensor");
    std::shared_ptr<Attachment> expected;
    if (storage_->attachment.compare_exchange_strong(expected, a)) return a;
    return expected;  // one was there already
}

void Tensor::detach() const {
    if (storage_) storage_->attachment.store(nullptr);
}

Tensor Tensor::without_values(Shape shape) {
    Tensor t;
    t.numel_ = shape_numel(shape);
    t.shape_ = std::move(shape);
    t.storage_ = std::make_shared<Storage>();
    t.storage_->n = t.numel_;
    return t;
}

Tensor Tensor::empty(Shape shape) {
    Tensor t = without_values(std::move(shape));
    t.storage_->allocate();
    return t;
}

Tensor::Tensor(Shape shape) : Tensor(empty(std::move(shape))) {
    std::memset(data(), 0, size_t(numel_) * sizeof(float));
}

Tensor Tensor::from(Shape shape, std::span<const float> values) {
    Tensor t = empty(std::move(shape));
    if (int64_t(values.size()) != t.numel_)
        throw std::logic_error("Tensor::from: value count does not match shape");
    std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
    return t;
}

Tensor Tensor::full(Shape shape, float v) {
    Tensor t = empty(std::move(shape));
    for (auto& x : t.span()) x = v;
    return t;
}

Tensor Tensor::reshape(Shape s) const {
    if (shape_numel(s) != numel_)
        throw std::logic_error(fmt::format("reshape {} -> {}: element count differs", shape_str(shape_), shape_str(s)));
    Tensor t = *this;
    t.shape_ = std::move(s);
    return t;
}

Tensor Tensor::slice0(int64_t i0, int64_t i1) const {
    int64_t inner = shape_.empty() || shape_[0] == 0 ? 0 : numel_ / shape_[0];
    Tensor t = *this;
    t.offset_ = offset_ + i0 * inner;
    t.shape_[0] = i1 - i0;
    t.numel_ = (i1 - i0) * inner;
    return t;
}

Tensor Tensor::clone() const {
    Tensor t = empty(shape_);
    std::memcpy(t.data(), data(), size_t(numel_) * sizeof(float));
    return t;
}

}  // namespace nb
