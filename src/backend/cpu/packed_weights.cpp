#include "backend/cpu/packed_weights.h"

#include <immintrin.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <atomic>
#include <memory>
#include <new>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "backend/cpu/dnnl_context.h"
#include "backend/context.h"
#include "backend/weights.h"
#include "core/dtype.h"

namespace nb::cpu {

namespace {

using dt = dnnl::memory::data_type;

// Bytes held by packed copies made under one context (ops::packed_weight_bytes); shared with the copies,
// which may outlive the context that made them.
struct PackedAccount {
    std::shared_ptr<std::atomic<int64_t>> bytes = std::make_shared<std::atomic<int64_t>>(0);
};

// Pages for the packed copies, which are most of a model's memory and are written once, right after they are
// sized. Fresh anonymous memory is expensive to touch: on the virtual machines this project runs on, first
// touching 1.7 GB in 4 KB pages took 5.7 s (a page fault each, and the host backing every page), in 2 MB pages
// 1.6-2.7 s. So a copy of kHugeMin bytes or more gets its own mapping whose 2 MB-aligned interior is advised
// as transparent huge pages; head and tail stay 4 KB pages, so no memory is wasted on rounding. Smaller copies
// (and every copy in AddressSanitizer builds, which must see each buffer's bounds) come from operator new.
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugeMin = size_t(4) << 20;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMapCopies = false;
#else
constexpr bool kMapCopies = true;
#endif

size_t page_round(size_t bytes) {
    static const size_t page = size_t(sysconf(_SC_PAGESIZE));
    return (bytes + page - 1) / page * page;
}

void* copy_pages_allocate(size_t bytes) {
    if (!kMapCopies || bytes < kHugeMin) return ::operator new(bytes, std::align_val_t(64));
    const size_t len = page_round(bytes);
    // Reserve a huge page more, so that the copy can start on a 2 MB boundary; the slack is unmapped.
    void* base = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t b = uintptr_t(base), start = (b + kHugePage - 1) & ~(kHugePage - 1);
    if (start > b) munmap(base, start - b);
    if (const uintptr_t end = b + len + kHugePage; end > start + len) munmap(reinterpret_cast<void*>(start + len), end - start - len);
    const size_t huge = len & ~(kHugePage - 1);
    if (huge) madvise(reinterpret_cast<void*>(start), huge, MADV_HUGEPAGE);  // advice: failure is harmless
    return reinterpret_cast<void*>(start);
}

void copy_pages_free(void* p, size_t bytes) {
    if (!kMapCopies || bytes < kHugeMin) return ::operator delete(p, std::align_val_t(64));
    munmap(p, page_round(bytes));
}

// std::vector allocator for the copies: pages as above, and resize leaves new elements default-initialised
// (uninitialised for these types): zero-filling them first took ~20 % of loading an SD 1.5 checkpoint (a
// memset plus its page faults, then the same pages written again).
template <class T>
struct CopyAlloc {
    using value_type = T;
    CopyAlloc() = default;
    template <class U>
    CopyAlloc(const CopyAlloc<U>&) noexcept {}
    T* allocate(size_t n) { return static_cast<T*>(copy_pages_allocate(n * sizeof(T))); }
    void deallocate(T* p, size_t n) noexcept { copy_pages_free(p, n * sizeof(T)); }
    template <class U, class... A>
    void construct(U* p, A&&... a) {
        ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U>
    bool operator==(const CopyAlloc<U>&) const noexcept {
        return true;
    }
};
template <class T>
using RawVector = std::vector<T, CopyAlloc<T>>;

// A weight's packed copy, attached to the weight's storage (Tensor::attach): freed with the weight.
struct Packed : Attachment {
    std::mutex mu;              // guards the rest; a kernel holds it while it picks up the copy
    std::shared_ptr<std::atomic<int64_t>> account;  // the making context's PackedAccount
    dnnl::memory::desc user;    // the weight's own fp32 layout
    dnnl::memory::desc layout;  // layout (and dtype) of the packed copy
    dnnl::memory mem;           // the packed copy, unless it is held compact
    Tensor mem_buffer;          // mem's bytes
    // fp32 packed copy whose values all convert exactly to 16 bits: held as fp16 or bf16 bits instead of
    // `mem` (half the memory) and expanded into a scratch buffer per use.
    RawVector<uint16_t> compact;
    DType compact_type = DType::f32;
    // WeightStorage::q8_0: the fp32 packed copy as blocks of kQ8Block int8 values with one fp32 scale each.
    RawVector<int8_t> q8;
    RawVector<float> q8_scale;
    ops::WeightStorage storage = ops::WeightStorage::exact;  // chosen when first packed, kept on re-layout

    ~Packed() override { account->fetch_sub(bytes()); }
    bool packed() const { return bool(mem) || !compact.empty() || !q8.empty(); }
    int64_t bytes() const {
        int64_t n = int64_t(compact.size() * sizeof(uint16_t) + q8.size() + q8_scale.size() * sizeof(float));
        if (mem) n += int64_t(mem.get_desc().get_size());
        return n;
    }
};

// Keeps a Packed's account right across a change of its copies: subtracts its bytes now, adds them back
// (as they are then) at the end of the scope.
class Recount {
public:
    explicit Recount(Packed& p) : p_(p) { p_.account->fetch_sub(p_.bytes()); }
    ~Recount() { p_.account->fetch_add(p_.bytes()); }
    Recount(const Recount&) = delete;
    Recount& operator=(const Recount&) = delete;

private:
    Packed& p_;
};

constexpr size_t kQ8Block = 32;

// Frees a vector's buffer (`v = {}` would only clear it, keeping the capacity).
template <class T>
void free_buffer(RawVector<T>& v) {
    RawVector<T>().swap(v);
}

void free_copies(Packed& p) {
    free_buffer(p.compact);
    free_buffer(p.q8);
    free_buffer(p.q8_scale);
}

// Bits of v[0, n) in 16-bit type `t`; false as soon as one of them does not convert back to exactly itself
// (NaN never does; inf is kept fp32 too in bf16). AVX2 + F16C (the x86-64-v3 baseline), 8 values at a time.
bool compact_block(DType t, const float* v, size_t n, uint16_t* out) {
    size_t i = 0;
    if (t == DType::f16) {
        for (; i + 8 <= n; i += 8) {
            const __m256 x = _mm256_loadu_ps(v + i);
            const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
            if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_cvtph_ps(h), x, _CMP_NEQ_UQ))) return false;
        }
        for (; i < n; ++i) {
            out[i] = f32_to_f16(v[i]);
            if (f16_to_f32(out[i]) != v[i]) return false;
        }
        return true;
    }
    const __m256i low = _mm256_set1_epi32(0xffff), expo = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
        const __m256i special = _mm256_cmpeq_epi32(_mm256_and_si256(u, expo), expo);  // inf / NaN
        if (!_mm256_testz_si256(u, low) || !_mm256_testz_si256(special, special)) return false;  // low bits lost
        const __m256i hi = _mm256_srli_epi32(u, 16);
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(hi, hi), 0b1000);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(packed));
    }
    for (; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &v[i], 4);
        out[i] = uint16_t(u >> 16);
        if ((u & 0xffffu) != 0 || (u & 0x7f800000u) == 0x7f800000u) return false;
    }
    return true;
}

// Bits of `v` in 16-bit type `t` if they all convert back to exactly `v`. Blocks in parallel; once one fails
// the rest are skipped.
bool compact_as(DType t, const float* v, size_t n, uint16_t* out) {
    constexpr size_t kBlock = size_t(1) << 16;
    const int64_t blocks = int64_t((n + kBlock - 1) / kBlock);
    std::atomic<bool> bad{false};
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
        if (bad.load(std::memory_order_relaxed)) continue;
        const size_t i0 = size_t(b) * kBlock;
        if (!compact_block(t, v + i0, std::min(kBlock, n - i0), out + i0)) bad.store(true, std::memory_order_relaxed);
    }
    return !bad.load();
}

bool compact_exactly(const float* v, size_t n, RawVector<uint16_t>& out, DType& type) {
    out.resize(n);
    for (DType t : {DType::f16, DType::bf16})
        if (compact_as(t, v, n, out.data())) {
            type = t;
            return true;
        }
    free_buffer(out);
    return false;
}

// q8_0 (as in ggml): per block of 32 consecutive values, scale = max|v| / 127, q = round(v / scale).
void quantize_q8_into(const float* v, size_t n, int8_t* q, float* scale) {
    const size_t blocks = (n + kQ8Block - 1) / kQ8Block;
#pragma omp parallel for schedule(static) if (blocks > 4096)
    for (size_t b = 0; b < blocks; ++b) {
        const size_t i0 = b * kQ8Block, i1 = std::min(n, i0 + kQ8Block);
        float amax = 0.f;
        for (size_t i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(v[i]));
        const float d = amax / 127.f, inv = d > 0.f ? 1.f / d : 0.f;
        scale[b] = d;
        for (size_t i = i0; i < i1; ++i) q[i] = int8_t(std::nearbyint(v[i] * inv));
    }
}

void quantize_q8(const float* v, size_t n, RawVector<int8_t>& q, RawVector<float>& scale) {
    q.resize(n);
    scale.resize((n + kQ8Block - 1) / kQ8Block);
    quantize_q8_into(v, n, q.data(), scale.data());
}

void dequantize_q8(const int8_t* q, const float* scale, float* dst, size_t n) {
    const size_t full = n / kQ8Block;
    for (size_t b = 0; b < full; ++b) {  // fixed trip count: straight-line vector code per block
        const float d = scale[b];
        const int8_t* qb = q + b * kQ8Block;
        float* out = dst + b * kQ8Block;
        for (size_t j = 0; j < kQ8Block; ++j) out[j] = float(qb[j]) * d;
    }
    for (size_t i = full * kQ8Block; i < n; ++i) dst[i] = float(q[i]) * scale[full];
}

// 16-bit values to fp32, 8 at a time (F16C / AVX2 are in the x86-64-v3 baseline).
void expand(DType t, const uint16_t* src, float* dst, size_t n) {
    size_t i = 0;
    if (t == DType::f16) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    } else {
        for (; i + 8 <= n; i += 8) {
            const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
        }
    }
    convert_to_f32(t, src + i, dst + i, n - i);
}

// Expands elements [first, first + count) of a compact (16-bit or q8_0; `first` then block-aligned) packed
// copy into dst.
void expand_into(const Packed& p, size_t first, size_t count, float* dst) {
    constexpr size_t kChunk = 1 << 16;
    const int64_t chunks = int64_t((count + kChunk - 1) / kChunk);
    if (!p.q8.empty()) {
        static_assert(kChunk % kQ8Block == 0);
        if (first % kQ8Block) throw std::logic_error("packed weights: q8_0 part not block-aligned");
#pragma omp parallel for schedule(static) if (chunks > 1)
        for (int64_t c = 0; c < chunks; ++c) {
            const size_t b = size_t(c) * kChunk;
            dequantize_q8(p.q8.data() + first + b, p.q8_scale.data() + (first + b) / kQ8Block, dst + b,
                          std::min(kChunk, count - b));
        }
        return;
    }
    const uint16_t* src = p.compact.data() + first;
    const DType t = p.compact_type;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
        const size_t b = size_t(c) * kChunk;
        expand(t, src + b, dst + b, std::min(kChunk, count - b));
    }
}

// Elements [first, first + count) of the packed copy as fp32 memory of layout `d`: in place when held fp32,
// else expanded into this thread's weight scratch (valid until the next expansion on this thread; ops use a
// weight right away).
dnnl::memory usable(const Packed& p, size_t first, size_t count, const dnnl::memory::desc& d) {
    if (p.mem) return dnnl::memory(d, dnnl_engine(), static_cast<float*>(p.mem.get_data_handle()) + first);
    float* dst = weight_scratch(count);
    expand_into(p, first, count, dst);
    return dnnl::memory(d, dnnl_engine(), dst);
}

dnnl::memory usable(const Packed& p) { return usable(p, 0, p.layout.get_size() / sizeof(float), p.layout); }

// The whole packed copy as fp32 memory for a one-off conversion (re-layout, restoring values): `mem` itself, or
// an expansion into a buffer of its own (`owner`), so that the per-use scratch stays the size of the weight
// groups kernels use.
dnnl::memory whole_copy(const Packed& p, Tensor& owner) {
    if (p.mem) return p.mem;
    dnnl::memory m = tensor_memory(p.layout, owner);
    expand_into(p, 0, p.layout.get_size() / sizeof(float), static_cast<float*>(m.get_data_handle()));
    return m;
}

// The weight in its own plain fp32 layout (p.user), made from the packed copy, in `owner`.
dnnl::memory as_plain(const Packed& p, Tensor& owner) {
    Tensor tmp;
    dnnl::memory from = whole_copy(p, tmp), m = tensor_memory(p.user, owner);
    dnnl::reorder(from, m).execute(dnnl_stream(), from, m);
    dnnl_stream().wait();
    return m;
}

// Makes `m` (layout `want`, bytes in `buffer`) the packed copy of p, held as p.storage says (fp32 copies
// only): as q8_0 blocks, or in 16 bits where exact; otherwise `m` itself stays.
void set_packed(Packed& p, const dnnl::memory& m, Tensor buffer, const dnnl::memory::desc& want) {
    Recount recount(p);
    p.layout = want;
    p.mem = m;
    p.mem_buffer = std::move(buffer);
    free_copies(p);
    if (want.data_type() != dt::f32 || p.storage == ops::WeightStorage::f32) return;
    const size_t n = want.get_size() / sizeof(float);
    const float* v = static_cast<const float*>(m.get_data_handle());
    if (p.storage == ops::WeightStorage::q8_0)
        quantize_q8(v, n, p.q8, p.q8_scale);
    else if (!compact_exactly(v, n, p.compact, p.compact_type))
        return;
    p.mem = dnnl::memory();
    p.mem_buffer = Tensor();
}

// w's packed copy, or null when it has none (never packed, or dropped).
std::shared_ptr<Packed> find(const Tensor& w) { return std::dynamic_pointer_cast<Packed>(w.attachment()); }

// w's attachment, made (empty, with the current context's settings) if it has none.
std::shared_ptr<Packed> find_or_make(const Tensor& w, const dnnl::memory::desc& user) {
    if (auto p = find(w)) return p;
    auto p = std::make_shared<Packed>();
    p->account = backend::current().state<PackedAccount>().bytes;
    p->user = user;
    p->storage = ops::weight_storage();
    auto held = std::dynamic_pointer_cast<Packed>(w.attach(p));
    if (!held) throw std::logic_error("packed weights: the weight carries another backend's attachment");
    return held;
}

// One group's 4-D layout of a stacked [G, ...] layout (conv_dnnl.cpp's weight groups: each group's block in
// the same layout, one after another); empty if `d` is not such a layout.
dnnl::memory::desc group_part(const dnnl::memory::desc& d5) {
    dnnl_memory_desc_t d = d5.data;
    if (d.ndims != 5 || d.format_kind != dnnl_blocked || d.offset0 != 0 || d.extra.flags != 0) return {};
    auto& blk = d.format_desc.blocking;
    const dnnl_dim_t group_stride = blk.strides[0];
    for (int i = 0; i < blk.inner_nblks; ++i)
        if (blk.inner_idxs[i]-- == 0) return {};  // blocked across groups
    for (int i = 0; i < 4; ++i) {
        d.dims[i] = d.dims[i + 1];
        d.padded_dims[i] = d.padded_dims[i + 1];
        d.padded_offsets[i] = d.padded_offsets[i + 1];
        blk.strides[i] = blk.strides[i + 1];
    }
    d.ndims = 4;
    dnnl::memory::desc part(d);
    if (dnnl_dim_t(part.get_size() / sizeof(float)) != group_stride ||
        part.get_size() * size_t(d5.dims()[0]) != d5.get_size())
        return {};
    return part;
}

// Re-lays out a compact (16-bit or q8_0) grouped packed copy into grouped layout `want` one group at a time,
// so that the fp32 buffers hold a group (<= 16 MB), not the whole weight twice (225 MB for SD 1.5's largest,
// when a small latent makes its kernel choose another layout than the one it was packed for). False when
// either layout is not grouped.
bool relayout_by_group(Packed& p, const dnnl::memory::desc& want) {
    if (p.mem || p.layout.dims() != want.dims() || want.data_type() != dt::f32) return false;
    const auto from = group_part(p.layout), to = group_part(want);
    if (from.is_zero() || to.is_zero()) return false;
    const int64_t groups = want.dims()[0];
    const size_t n_from = from.get_size() / sizeof(float), n_to = to.get_size() / sizeof(float);
    const bool q8 = !p.q8.empty();
    if (q8 && (n_from % kQ8Block || n_to % kQ8Block)) return false;
    RawVector<uint16_t> compact(q8 ? 0 : n_to * size_t(groups));
    RawVector<int8_t> q(q8 ? n_to * size_t(groups) : 0);
    RawVector<float> scale(q8 ? q.size() / kQ8Block : 0);
    Tensor a = Tensor::empty({int64_t(n_from)}), b = Tensor::empty({int64_t(n_to)});
    for (int64_t g = 0; g < groups; ++g) {
        expand_into(p, size_t(g) * n_from, n_from, a.data());
        dnnl::memory ma(from, dnnl_engine(), a.data()), mb(to, dnnl_engine(), b.data());
        dnnl::reorder(ma, mb).execute(dnnl_stream(), ma, mb);
        dnnl_stream().wait();
        const size_t o = size_t(g) * n_to;
        if (q8)
            quantize_q8_into(b.data(), n_to, q.data() + o, scale.data() + o / kQ8Block);
        else if (!compact_as(p.compact_type, b.data(), n_to, compact.data() + o))
            throw std::logic_error("packed weights: re-layout changed a 16-bit value");
    }
    Recount recount(p);
    p.layout = want;
    p.compact.swap(compact);
    p.q8.swap(q);
    p.q8_scale.swap(scale);
    return true;
}

// w's packed copy in layout `want`, made (from the values, or by re-laying out the copy) if needed. Returns
// it locked: the caller uses it while holding the lock.
std::pair<std::shared_ptr<Packed>, std::unique_lock<std::mutex>> packed_in(const Tensor& w,
                                                                          const dnnl::memory::desc& user,
                                                                          const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::shared_ptr<Packed> held = find_or_make(w, user);
    std::unique_lock lock(held->mu);
    Packed& p = *held;
    if (p.packed()) {
        if (p.layout == want) return {held, std::move(lock)};
        // Another shape's kernel wants another layout: re-lay out the packed copy (values may be released).
        // A grouped layout ([G, O/G, ...]) and a whole one have different dims: go through the plain layout.
        if (relayout_by_group(p, want)) {
            malloc_trim(0);  // the old copy's pages (up to 59 MB) leave with it
            return {held, std::move(lock)};
        }
        Tensor buffer, tmp;
        dnnl::memory m = tensor_memory(want, buffer);
        if (p.layout.dims() != want.dims()) {
            const dnnl::memory plain = as_plain(p, tmp);
            dnnl::memory from(user, eng, plain.get_data_handle());
            dnnl::reorder(from, m).execute(strm, from, m);
            p.user = user;
        } else {
            dnnl::memory from = whole_copy(p, tmp);
            dnnl::reorder(from, m).execute(strm, from, m);
        }
        strm.wait();
        set_packed(p, m, std::move(buffer), want);
        return {held, std::move(lock)};  // as held (q8_0 is lossy: every use must see the same values)
    }
    if (!w.has_values()) throw std::logic_error("packed_weights: weight has neither values nor a packed copy");
    dnnl::memory src(user, eng, const_cast<float*>(w.data()));
    Tensor buffer;
    dnnl::memory m = tensor_memory(want, buffer);
    dnnl::reorder(src, m).execute(strm, src, m);
    strm.wait();
    p.user = user;
    set_packed(p, m, std::move(buffer), want);
    // The packed copy is now the weight: bf16 by design; fp32 re-laid out and held in 16 bits where exact,
    // or as q8_0 when asked (WeightStorage).
    w.release_values();
    return {held, std::move(lock)};
}

}  // namespace

dnnl::memory packed_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto [p, lock] = packed_in(w, user, want);
    return usable(*p);
}

void pack_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    packed_in(w, user, want);
}

namespace {

// Whether 16-bit bits hold a value that packing keeps in fp32: NaN (fp16); inf or NaN (bf16, see compact_as).
bool kept_in_fp32(DType t, const uint16_t* h, size_t n) {
    constexpr size_t kBlock = size_t(1) << 16;
    const int64_t blocks = int64_t((n + kBlock - 1) / kBlock);
    int bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
        const size_t i0 = size_t(b) * kBlock, i1 = std::min(n, i0 + kBlock);
        int any = 0;
        if (t == DType::f16)
            for (size_t i = i0; i < i1; ++i) any |= (h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x03ff) != 0;
        else
            for (size_t i = i0; i < i1; ++i) any |= (h[i] & 0x7f80) == 0x7f80;
        bad |= any;
    }
    return bad != 0;
}

// `d` with 16-bit elements: the same dims and blocking, strides in elements.
dnnl::memory::desc as16(const dnnl::memory::desc& d) {
    dnnl_memory_desc_t c = d.data;
    c.data_type = dnnl_bf16;
    return dnnl::memory::desc(c);
}

}  // namespace

bool pack_weights_from16(const Tensor& w, ops::WeightBits bits, const dnnl::memory::desc& user,
                         const dnnl::memory::desc& want) {
    if ((bits.type != DType::f16 && bits.type != DType::bf16) || ops::weight_storage() != ops::WeightStorage::exact ||
        want.data_type() != dt::f32 || user.data_type() != dt::f32 || w.has_values() ||
        size_t(w.numel()) != user.get_size() / sizeof(float))
        return false;
    const auto* h = static_cast<const uint16_t*>(bits.data);
    if (kept_in_fp32(bits.type, h, size_t(w.numel()))) return false;
    std::shared_ptr<Packed> held = find_or_make(w, user);
    std::lock_guard lock(held->mu);
    Packed& p = *held;
    if (p.packed() || p.storage != ops::WeightStorage::exact) return false;
    Recount recount(p);
    p.compact.resize(want.get_size() / sizeof(float));
    // A reorder between 16-bit layouts moves the bits as they are (oneDNN's jit reorder, bit-exact for any
    // bf16 pattern but NaN, which kept_in_fp32 rules out: an fp16 NaN is the only fp16 value whose bits read as
    // a bf16 NaN); padding comes out as zero bits, +0 in either type.
    dnnl::memory src(as16(user), dnnl_engine(), const_cast<uint16_t*>(h));
    dnnl::memory dst(as16(want), dnnl_engine(), p.compact.data());
    dnnl::reorder(src, dst).execute(dnnl_stream(), src, dst);
    dnnl_stream().wait();
    p.user = user;
    p.layout = want;
    p.compact_type = bits.type;
    return true;
}

dnnl::memory packed_weights_part(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want,
                                 size_t first, const dnnl::memory::desc& part) {
    auto [p, lock] = packed_in(w, user, want);
    const size_t count = part.get_size() / sizeof(float);
    if (want.data_type() != dt::f32 || part.data_type() != dt::f32 || first + count > want.get_size() / sizeof(float))
        throw std::logic_error("packed_weights_part: part outside the fp32 packed copy");
    return usable(*p, first, count, part);
}

HeldWeights packed_weights_held(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto [p, lock] = packed_in(w, user, want);
    if (want.data_type() != dt::f32) return {};
    if (p->mem) return {p->mem.get_data_handle(), DType::f32};
    if (!p->compact.empty()) return {p->compact.data(), p->compact_type};
    return {};
}

bool packed_weights_expand(const Tensor& w) {
    auto p = find(w);
    if (!p) return ops::weight_storage() != ops::WeightStorage::f32;
    std::lock_guard lock(p->mu);
    if (!p->packed()) return p->storage != ops::WeightStorage::f32;
    return !p->mem;
}

}  // namespace nb::cpu

namespace nb::ops {

void ensure_values(const Tensor& w) {
    if (!w.defined() || w.has_values()) return;
    auto p = cpu::find(w);
    if (!p) throw std::logic_error("ensure_values: released weight without a packed copy");
    std::lock_guard lock(p->mu);
    if (!p->packed()) throw std::logic_error("ensure_values: released weight without a packed copy");
    w.restore_values();
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    Tensor tmp;
    dnnl::memory from = cpu::whole_copy(*p, tmp);
    dnnl::memory dst(p->user, eng, const_cast<float*>(w.data()));
    dnnl::reorder(from, dst).execute(strm, from, dst);
    strm.wait();
}

Held held(const Tensor& w) {
    if (!w.defined()) return {};
    if (auto p = cpu::find(w)) {
        std::lock_guard lock(p->mu);
        if (!p->q8.empty()) return {HeldAs::q8_0, p->bytes()};
        if (!p->compact.empty()) return {p->compact_type == DType::f16 ? HeldAs::f16 : HeldAs::bf16, p->bytes()};
        if (p->mem)
            return {p->layout.data_type() == dnnl::memory::data_type::bf16 ? HeldAs::bf16 : HeldAs::f32, p->bytes()};
    }
    if (w.has_values()) return {HeldAs::values_f32, w.numel() * int64_t(sizeof(float))};
    return {};
}

const char* held_name(HeldAs a) {
    switch (a) {
        case HeldAs::released: return "released";
        case HeldAs::values_f32:
        case HeldAs::f32: return "f32";
        case HeldAs::f16: return "f16";
        case HeldAs::bf16: return "bf16";
        case HeldAs::q8_0: return "q8_0";
    }
    return "?";
}

int64_t packed_weight_bytes() { return backend::current().state<cpu::PackedAccount>().bytes->load(); }

void forget_weight(const Tensor& w) {
    if (cpu::find(w)) w.detach();
}

void weights_changed(const Tensor& w) {
    auto held = cpu::find(w);
    if (!held) return;
    // Drop every copy but keep the attachment: the weight is re-packed as it was first stored (q8_0 stays q8_0).
    std::lock_guard lock(held->mu);
    cpu::Packed& p = *held;
    cpu::Recount recount(p);
    p.layout = {};
    p.mem = {};
    p.mem_buffer = {};
    cpu::free_copies(p);
}

}  // namespace nb::ops
