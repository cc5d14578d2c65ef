#include "backend/cpu/packed_weights.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "backend/cpu/dnnl_context.h"
#include "backend/ops.h"
#include "core/dtype.h"

namespace nb::cpu {

namespace {

using dt = dnnl::memory::data_type;

struct Packed {
    Tensor owner;               // keeps the storage (and so the key) alive
    dnnl::memory::desc user;    // the weight's own fp32 layout
    dnnl::memory::desc layout;  // layout (and dtype) of the packed copy; empty while only `wino` exists
    dnnl::memory mem;           // the packed copy, unless it is held compact
    // fp32 packed copy whose values all convert exactly to 16 bits: held as fp16 or bf16 bits instead of
    // `mem` (half the memory) and expanded into a scratch buffer per use.
    std::vector<uint16_t> compact;
    DType compact_type = DType::f32;
    dnnl::memory wino;          // Winograd-transformed copy (derived; the values or the packed copy stay the weight)

    bool packed() const { return bool(mem) || !compact.empty(); }
};

std::mutex g_mu;
std::map<const void*, Packed> g_packed;

// Bits of `v` in 16-bit type `t` if they all convert back to exactly `v` (NaN never does: kept fp32).
// Branch-free loops, so GCC vectorises them (F16C / integer ops).
bool compact_as(DType t, const float* v, size_t n, uint16_t* out) {
    int bad = 0;
    if (t == DType::f16) {
#pragma omp parallel for reduction(| : bad) schedule(static) if (n > (1 << 16))
        for (size_t i = 0; i < n; ++i) {
            out[i] = f32_to_f16(v[i]);
            bad |= f16_to_f32(out[i]) != v[i];
        }
    } else {
#pragma omp parallel for reduction(| : bad) schedule(static) if (n > (1 << 16))
        for (size_t i = 0; i < n; ++i) {
            uint32_t u;
            std::memcpy(&u, &v[i], 4);
            out[i] = uint16_t(u >> 16);
            bad |= (u & 0xffffu) != 0 || (u & 0x7f800000u) == 0x7f800000u;  // low bits set, or inf/NaN
        }
    }
    return !bad;
}

bool compact_exactly(const float* v, size_t n, std::vector<uint16_t>& out, DType& type) {
    out.resize(n);
    for (DType t : {DType::f16, DType::bf16})
        if (compact_as(t, v, n, out.data())) {
            type = t;
            return true;
        }
    out = {};
    return false;
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

// The packed copy as fp32 memory: `mem` itself, or the compact bits expanded into this thread's scratch
// (valid until the next expansion on this thread; ops use a weight right away).
dnnl::memory usable(const Packed& p) {
    if (p.mem) return p.mem;
    thread_local std::vector<float> scratch;
    const size_t n = p.compact.size();
    if (scratch.size() < n) {
        scratch = {};  // never hold two
        scratch.resize(n);
    }
    constexpr size_t kChunk = 1 << 16;
    const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
    const uint16_t* src = p.compact.data();
    float* dst = scratch.data();
    const DType t = p.compact_type;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
        const size_t b = size_t(c) * kChunk;
        expand(t, src + b, dst + b, std::min(kChunk, n - b));
    }
    return dnnl::memory(p.layout, dnnl_engine(), dst);
}

// Makes `m` (layout `want`) the packed copy of p, held compact when that is exact.
void set_packed(Packed& p, const dnnl::memory& m, const dnnl::memory::desc& want) {
    p.layout = want;
    p.mem = m;
    p.compact.clear();
    p.compact.shrink_to_fit();
    if (want.data_type() != dt::f32) return;
    const size_t n = want.get_size() / sizeof(float);
    if (compact_exactly(static_cast<const float*>(m.get_data_handle()), n, p.compact, p.compact_type))
        p.mem = dnnl::memory();
}

}  // namespace

dnnl::memory packed_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::lock_guard lock(g_mu);
    auto it = g_packed.find(w.storage_id());
    if (it != g_packed.end() && it->second.packed()) {
        Packed& p = it->second;
        if (p.layout == want) return usable(p);
        // Another shape's kernel wants another layout: re-lay out the packed copy (values may be released).
        dnnl::memory from = usable(p), m(want, eng);
        dnnl::reorder(from, m).execute(strm, from, m);
        strm.wait();
        set_packed(p, m, want);
        return m;  // the caller's handle keeps the fp32 buffer alive for this use
    }
    if (!w.has_values()) throw std::logic_error("packed_weights: weight has neither values nor a packed copy");
    dnnl::memory src(user, eng, const_cast<float*>(w.data()));
    dnnl::memory m(want, eng);
    dnnl::reorder(src, m).execute(strm, src, m);
    strm.wait();
    if (it == g_packed.end()) it = g_packed.emplace(w.storage_id(), Packed{w, user, {}, {}, {}, DType::f32, {}}).first;
    set_packed(it->second, m, want);
    // The packed copy is now the weight: bf16 by design, fp32 losslessly (re-laid out, held in 16 bits only
    // where that is exact).
    w.release_values();
    return m;
}

dnnl::memory winograd_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::lock_guard lock(g_mu);
    auto it = g_packed.find(w.storage_id());
    if (it != g_packed.end() && it->second.wino && it->second.wino.get_desc() == want) return it->second.wino;
    // oneDNN transforms only from the plain layout: use the values, or unpack the packed copy into a temporary.
    dnnl::memory plain;
    if (w.has_values()) {
        plain = dnnl::memory(user, eng, const_cast<float*>(w.data()));
    } else {
        if (it == g_packed.end() || !it->second.packed())
            throw std::logic_error("winograd_weights: weight has neither values nor a packed copy");
        dnnl::memory from = usable(it->second);
        plain = dnnl::memory(user, eng);
        dnnl::reorder(from, plain).execute(strm, from, plain);
    }
    dnnl::memory m(want, eng);
    dnnl::reorder(plain, m).execute(strm, plain, m);
    strm.wait();
    if (it == g_packed.end()) it = g_packed.emplace(w.storage_id(), Packed{w, user, {}, {}, {}, DType::f32, {}}).first;
    it->second.wino = m;
    return m;
}

}  // namespace nb::cpu

namespace nb::ops {

void ensure_values(const Tensor& w) {
    if (!w.defined() || w.has_values()) return;
    std::lock_guard lock(cpu::g_mu);
    auto it = cpu::g_packed.find(w.storage_id());
    if (it == cpu::g_packed.end() || !it->second.packed())
        throw std::logic_error("ensure_values: released weight without a packed copy");
    w.restore_values();
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    dnnl::memory from = cpu::usable(it->second);
    dnnl::memory dst(it->second.user, eng, const_cast<float*>(w.data()));
    dnnl::reorder(from, dst).execute(strm, from, dst);
    strm.wait();
}

int64_t packed_weight_bytes() {
    std::lock_guard lock(cpu::g_mu);
    int64_t n = 0;
    for (const auto& [_, p] : cpu::g_packed) {
        n += int64_t(p.compact.size() * sizeof(uint16_t));
        if (p.mem) n += int64_t(p.mem.get_desc().get_size());
        if (p.wino) n += int64_t(p.wino.get_desc().get_size());
    }
    return n;
}

void weights_changed(const Tensor& w) {
    std::lock_guard lock(cpu::g_mu);
    cpu::g_packed.erase(w.storage_id());
}

}  // namespace nb::ops
