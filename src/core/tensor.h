// Tensor: a cheap, shared, contiguous fp32 buffer with a row-major shape (STYLE.md #4).
// Activations are always fp32; reduced-precision weights live in the weight store, not here.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nb {

namespace activation_heap {
class Heap;
}

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 4, 64, 64]"

// What a backend keeps for one storage (a weight's packed copy in a kernel's layout): attached to the storage,
// so it lives exactly as long as the weight does -- destroying a model frees its packed weights with it.
struct Attachment {
    virtual ~Attachment() = default;
};

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(Shape shape);  // zero-initialised
    static Tensor empty(Shape shape);  // uninitialised (for outputs that are fully written)
    // A storage whose values are released from the start (see release_values): a weight loaded on demand.
    static Tensor without_values(Shape shape);
    static Tensor from(Shape shape, std::span<const float> values);
    static Tensor full(Shape shape, float v);

    const Shape& shape() const { return shape_; }
    int64_t dim(int i) const { return shape_[i < 0 ? i + int(shape_.size()) : i]; }
    int ndim() const { return int(shape_.size()); }
    int64_t numel() const { return numel_; }
    bool defined() const { return bool(storage_); }

    float* data() { return storage_->values + offset_; }
    const float* data() const { return storage_->values + offset_; }
    std::span<float> span() { return {data(), size_t(numel_)}; }
    std::span<const float> span() const { return {data(), size_t(numel_)}; }

    // Same storage, new shape (numel must match).
    Tensor reshape(Shape s) const;
    // Contiguous slice [i0, i1) along dimension 0, sharing storage.
    Tensor slice0(int64_t i0, int64_t i1) const;
    Tensor clone() const;

    // Identity of the underlying buffer, stable while any Tensor shares it (kernel caches key on it).
    const void* storage_id() const { return storage_.get(); }
    // Weights whose kernels keep their own packed copy can drop their fp32 values: frees them for every
    // Tensor sharing this storage (shape kept, data() becomes null) until restore_values() reallocates
    // (uninitialised; the caller refills them).
    bool has_values() const { return storage_ && storage_->values; }
    void release_values() const;
    void restore_values() const;

    // The storage's attachment (null if none or undefined). attach() sets `a` unless one is there already and
    // returns the attachment the storage has afterwards; detach() drops it. Thread-safe.
    std::shared_ptr<Attachment> attachment() const;
    std::shared_ptr<Attachment> attach(std::shared_ptr<Attachment> a) const;
    void detach() const;

private:
    struct Storage {
        float* values = nullptr;
        int64_t n = 0;
        std::shared_ptr<activation_heap::Heap> heap;  // where `values` came from (kept alive while they live)
        std::atomic<std::shared_ptr<Attachment>> attachment;
        void allocate();  // values from the calling thread's heap
        void free();
        ~Storage();
    };
    std::shared_ptr<Storage> storage_;
    int64_t offset_ = 0;
    int64_t numel_ = 0;
    Shape shape_;
};

}  // namespace nb
