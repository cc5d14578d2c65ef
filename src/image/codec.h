// Internal to src/image: what png.cpp and jpeg.cpp share. A file is read whole and decoded from memory, so
// read_png / read_jpeg / read_image (a path) and decode_image (bytes) run the same decoder; `what` names the
// source in error messages (a path, or e.g. "request field 'init_images[0]'").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "nanobanana/image.h"

namespace nb {

// The whole file; Errc::io when it cannot be opened or read, Errc::invalid_argument above 1 GiB.
Result<std::vector<uint8_t>> read_file_bytes(const std::string& path);

// Decoded images larger than this are refused before their pixels are allocated: 8192 x 8192, beyond anything
// the engine can edit or upscale on one machine (Pillow warns above 89M pixels). A tiny progressive JPEG may
// declare a huge image legitimately (end-of-band runs cover it); 125M pixels from 181 bytes took seconds and
// ~750 MB (found by fuzz/targets/jpeg.cpp).
inline constexpr uint64_t kMaxDecodedPixels = 1ull << 26;

bool is_png(std::span<const uint8_t> bytes);   // the 8-byte PNG signature
bool is_jpeg(std::span<const uint8_t> bytes);  // SOI followed by a marker: FF D8 FF

// As read_png / read_jpeg, from memory (the bytes must outlive the call only).
Result<Image> decode_png(std::span<const uint8_t> bytes, const std::string& what);
Result<Image> decode_jpeg(std::span<const uint8_t> bytes, const std::string& what);

}  // namespace nb
