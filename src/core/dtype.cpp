#include "core/dtype.h"

#include <algorithm>
#include <cstring>
#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace nb {

namespace {
struct DTypeInfo {
    DType type;
    const char* name;
    size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "F32", 4}, {DType::f16, "F16", 2}, {DType::bf16, "BF16", 2}, {DType::f64, "F64", 8},
    {DType::i64, "I64", 8}, {DType::i32, "I32", 4}, {DType::i16, "I16", 2},   {DType::i8, "I8", 1},
    {DType::u8, "U8", 1},   {DType::boolean, "BOOL", 1},
};
}  // namespace

size_t dtype_size(DType t) {
    for (const auto& d : kDTypes)
        if (d.type == t) return d.size;
    return 0;
}

const char* dtype_name(DType t) {
    for (const auto& d : kDTypes)
        if (d.type == t) return d.name;
    return "?";
}

std::optional<DType> dtype_from_name(std::string_view s) {
    for (const auto& d : kDTypes)
        if (s == d.name) return d.type;
    return std::nullopt;
}

template <class T>
static void convert_int(const void* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, static_cast<const char*>(src) + i * sizeof(T), sizeof(T));
        dst[i] = float(v);
    }
}

namespace {

void convert_chunk(DType t, const void* src, float* dst, size_t n) {
    const auto* b = static_cast<const unsigned char*>(src);
    switch (t) {
        case DType::f32: std::memcpy(dst, src, n * 4); break;
        case DType::f16: {
            size_t i = 0;
#if defined(__F16C__)
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 * i))));
#endif
            for (; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, b + 2 * i, 2);
                dst[i] = f16_to_f32(h);
            }
            break;
        }
        case DType::bf16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, b + 2 * i, 2);
                dst[i] = bf16_to_f32(h);
            }
            break;
        case DType::f64: convert_int<double>(src, dst, n); break;
        case DType::i64: convert_int<int64_t>(src, dst, n); break;
        case DType::i32: convert_int<int32_t>(src, dst, n); break;
        case DType::i16: convert_int<int16_t>(src, dst, n); break;
        case DType::i8: convert_int<int8_t>(src, dst, n); break;
        case DType::u8:
        case DType::boolean: convert_int<uint8_t>(src, dst, n); break;
    }
}

}  // namespace

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
    // Checkpoint weights are converted as they load (up to 30M values each): in parallel chunks, which also
    // spreads the first reads of the mapped file's pages over the cores.
    constexpr size_t kChunk = size_t(1) << 16;
    const size_t size = dtype_size(t);
    const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
        const size_t i0 = size_t(c) * kChunk;
        convert_chunk(t, static_cast<const unsigned char*>(src) + i0 * size, dst + i0, std::min(kChunk, n - i0));
    }
}

}  // namespace nb
