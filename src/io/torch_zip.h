// Restricted reader for PyTorch >= 1.6 checkpoints (.pth / .ckpt / .pt): a zip archive holding
// `<root>/data.pkl` (the pickled state dict) and `<root>/data/<key>` (raw little-endian storages).
// The pickle is interpreted by a tiny whitelisted VM: only the opcodes a state dict needs, and only the
// globals that rebuild tensors/dicts. Nothing from the file is ever executed; anything else is an Error
// naming the opcode or global.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"

namespace nb {

// One member of a zip archive; `data` points into the mmap (stored) or into an owned inflated buffer.
struct ZipMember {
    std::string name;
    const uint8_t* data = nullptr;
    size_t size = 0;
    std::span<const uint8_t> mapping;  // the file's mapping when `data` lies in it (stored, not deflated)
    const MappedFile* file = nullptr;  // that file, then
};

// Raw DEFLATE (RFC 1951) decoder; the output must be exactly `out_size` bytes (torch_zip_inflate.cpp).
Result<std::vector<uint8_t>> inflate_raw(std::span<const uint8_t> in, size_t out_size);
uint32_t zip_crc32(const uint8_t* p, size_t n);

// Parses the central directory (zip64 included) and resolves every member's data.
// Stored (method 0) members are views; deflated (method 8) members are inflated into `owned`.
Result<std::vector<ZipMember>> read_zip(const MappedFile& file,
                                        std::vector<std::shared_ptr<std::vector<uint8_t>>>& owned);

class TorchZip {
public:
    static Result<TorchZip> open(const std::string& path);
    static Result<TorchZip> parse(std::shared_ptr<MappedFile> file);

    // Flattened state dict: nested dicts are joined with '.'; a top-level wrapper dict is unwrapped
    // (params_ema preferred, then params, then state_dict). Sorted by name.
    const std::vector<TensorEntry>& entries() const { return entries_; }
    const TensorEntry* find(std::string_view name) const;
    Result<Tensor> load_f32(std::string_view name) const;
    const std::string& path() const { return path_; }
    // Which top-level wrapper key was unwrapped ("" when the pickle is a bare state dict).
    const std::string& unwrapped_key() const { return unwrapped_; }
    // The pickled dict's top-level string and integer values, as text (an A1111 embedding's "name", "step").
    const std::map<std::string, std::string>& values() const { return values_; }

private:
    std::shared_ptr<MappedFile> file_;
    std::vector<std::shared_ptr<std::vector<uint8_t>>> inflated_;  // keeps deflated members alive
    std::string path_;
    std::string unwrapped_;
    std::map<std::string, std::string> values_;
    std::vector<TensorEntry> entries_;
};

}  // namespace nb
