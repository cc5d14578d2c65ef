// 8-bit interleaved images, PNG I/O (and JPEG input) with text metadata, tensor conversion and resampling.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "nanobanana/image.h"

namespace nb {

// Image itself is public: include/nanobanana/image.h.

using TextChunks = std::vector<std::pair<std::string, std::string>>;

// Any PNG colour type / bit depth -> 8-bit RGB, or RGBA when the file has alpha (or tRNS transparency).
// 16-bit samples keep their high byte (as PIL does); no gamma correction is applied.
Result<Image> read_png(const std::string& path);

// Baseline or progressive JPEG (libjpeg-turbo, default decoding as PIL) -> 8-bit RGB; grayscale is
// replicated. CMYK is refused; a truncated or corrupt file is an Errc::format error (never a grey tail).
Result<Image> read_jpeg(const std::string& path);

// PNG (as read_png) or JPEG (as read_jpeg), chosen by the file's first bytes, not its name; anything else:
// Errc::format "PATH: not a PNG or JPEG image".
Result<Image> read_image(const std::string& path);

// PNG or JPEG bytes held in memory, decoded as read_image decodes a file (the same code); `what` starts
// each error message ("request field 'init_images[0]': not a PNG or JPEG image").
Result<Image> decode_image(std::span<const uint8_t> bytes, const std::string& what);

// Writes atomically: a temporary file in the same folder, fsync, then rename over `path`; on any failure
// `path` is untouched and the temporary is removed. Text values are UTF-8: written as tEXt when every
// character is Latin-1 (A1111's "parameters" chunk), as iTXt otherwise. Keys must be 1-79 Latin-1 chars.
Result<void> write_png(const std::string& path, const Image& img, const TextChunks& text_chunks = {});

// The PNG file's bytes, in memory (as write_png writes them).
Result<std::vector<uint8_t>> encode_png(const Image& img, const TextChunks& text_chunks = {});

// The text chunks of PNG bytes.
Result<std::map<std::string, std::string>> decode_png_text(std::span<const uint8_t> bytes, const std::string& what);

// All tEXt / zTXt / iTXt chunks of a PNG as UTF-8 key -> value (the last one wins on duplicate keys).
Result<std::map<std::string, std::string>> read_png_text(const std::string& path);

// Item `index` of x [N,3,H,W] (or [3,H,W]) in [-1,1] -> RGB, A1111's rule: uint8(255 * clamp((x+1)/2, 0, 1))
// in float32 with truncation toward zero (NaN -> 0).
Image image_from_tensor(const Tensor& chw_in_minus1_1, int index);

// RGB(A) or gray image -> [1,3,H,W] in [-1,1]: (p/255)*2 - 1 in float32, alpha dropped, gray replicated.
Tensor tensor_from_image(const Image& img);

// Separable Lanczos-3 resampling (support widened by the scale when shrinking, as PIL's LANCZOS);
// each channel (alpha included) is filtered independently; results rounded and clamped to [0,255].
Image resize(const Image& img, int width, int height);

}  // namespace nb
