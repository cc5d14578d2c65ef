// Single-file .safetensors reader: mmapped, every header field validated before use.
// Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, __metadata__?},
// then the data area; offsets are relative to the start of the data area.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/mapped_file.h"

namespace nb {

struct TensorEntry {
    std::string name;
    std::string dtype_name;      // as written in the file ("F16", "F8_E4M3", ...)
    std::optional<DType> dtype;  // nullopt: a dtype this engine does not know
    Shape shape;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    std::string source;          // file path, for error messages
    // The read-only file mapping `data` lies in, whose pages drop_entry_pages may unmap; empty when `data` is
    // a buffer of ours (a decompressed zip member), which is never dropped.
    std::span<const uint8_t> mapping;
    const MappedFile* file = nullptr;  // the file `mapping` belongs to (kept alive by the entry's owner)
};

// Converts an entry to an fp32 tensor; unsupported dtypes are an error naming the tensor and dtype.
Result<Tensor> entry_to_f32(const TensorEntry& e);
// The same checks without converting (deferred loading), and the conversion into an existing buffer of
// exactly shape_numel(e.shape) floats (reloading released weights).
Result<void> check_convertible(const TensorEntry& e);
Result<void> entry_to_f32_into(const TensorEntry& e, std::span<float> dst);
// Drops the entry's whole mmapped pages from the resident set (they stay in the page cache): loading a
// checkpoint then never holds the file and its converted copy in memory at once.
void drop_entry_pages(const TensorEntry& e);

class SafeTensors {
public:
    static Result<SafeTensors> open(const std::string& path);
    // Parses a buffer that stays owned by `keep_alive` (used by open() and by tests).
    static Result<SafeTensors> parse(std::shared_ptr<MappedFile> file);

    const std::vector<TensorEntry>& entries() const { return entries_; }
    const TensorEntry* find(std::string_view name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& path() const { return path_; }

    Result<Tensor> load_f32(std::string_view name) const;

private:
    std::shared_ptr<MappedFile> file_;
    std::string path_;
    std::vector<TensorEntry> entries_;  // sorted by name
    std::map<std::string, std::string> metadata_;
};

// Writes fp32 (or raw) tensors as .safetensors; used by tools and tests. Atomic (temp + rename).
struct TensorToWrite {
    std::string name;
    std::string dtype;  // "F32", "F16", ...
    Shape shape;
    std::vector<uint8_t> bytes;
};
Result<void> write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace nb
