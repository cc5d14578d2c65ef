#include "io/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

namespace nb {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // real checkpoints have < 1 MB of header
constexpr int kMaxDims = 8;

using json = nlohmann::json;

Result<TensorEntry> parse_entry(const std::string& path, const std::string& name, const json& v,
                                const uint8_t* data_area, uint64_t data_size) {
    auto bad = [&](std::string_view what) {
        return make_error(Errc::format, "{}: tensor '{}': {}", path, name, what);
    };
    if (!v.is_object()) return bad("header entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("missing or non-string 'dtype'");
    if (sh == v.end() || !sh->is_array()) return bad("missing or non-array 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2) return bad("'data_offsets' must be [begin, end]");
    if (sh->size() > size_t(kMaxDims)) return bad("too many dimensions");

    TensorEntry e;
    e.name = name;
    e.source = path;
    e.dtype_name = dt->get<std::string>();
    e.dtype = dtype_from_name(e.dtype_name);

    unsigned __int128 numel = 1;
    for (const auto& d : *sh) {
        if (!d.is_number_unsigned()) return bad("shape entries must be non-negative integers");
        uint64_t n = d.get<uint64_t>();
        numel *= n;
        if (numel > std::numeric_limits<uint64_t>::max() / 16) return bad("shape is absurdly large");
        e.shape.push_back(int64_t(n));
    }
    for (const auto& o : *off)
        if (!o.is_number_unsigned()) return bad("data_offsets must be non-negative integers");
    uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en) return bad(fmt::format("data_offsets [{}, {}] are reversed", b, en));
    if (en > data_size)
        return bad(fmt::format("data_offsets [{}, {}] go past the data area ({} bytes)", b, en, data_size));
    if (e.dtype) {
        unsigned __int128 want = numel * dtype_size(*e.dtype);
        if (want != en - b)
            return bad(fmt::format("shape {} x {} needs {} bytes but data_offsets span {}", shape_str(e.shape),
                                   e.dtype_name, uint64_t(want), en - b));
    }
    e.data = data_area + b;
    e.nbytes = size_t(en - b);
    return e;
}

}  // namespace

Result<void> check_convertible(const TensorEntry& e) {
    if (!e.dtype)
        return make_error(Errc::unsupported, "{}: tensor '{}' has dtype {}, which is not supported (F32, F16, BF16)",
                          e.source, e.name, e.dtype_name);
    return {};
}

Result<void> entry_to_f32_into(const TensorEntry& e, std::span<float> dst) {
    if (auto ok = check_convertible(e); !ok) return ok;
    if (int64_t(dst.size()) != shape_numel(e.shape))
        return make_error(Errc::shape, "{}: tensor '{}' has {} values, destination holds {}", e.source, e.name,
                          shape_numel(e.shape), dst.size());
    convert_to_f32(*e.dtype, e.data, dst.data(), dst.size());
    return {};
}

Result<Tensor> entry_to_f32(const TensorEntry& e) {
    if (auto ok = check_convertible(e); !ok) return std::unexpected(ok.error());
    Tensor t = Tensor::empty(e.shape);
    convert_to_f32(*e.dtype, e.data, t.data(), size_t(t.numel()));
    return t;
}

void drop_entry_pages(const TensorEntry& e) {
    if (!e.data || e.mapping.empty()) return;
    // Reading an entry maps whole page-cache folios (up to 2 MB), which reach into its neighbours: drop
    // the 2 MB-aligned span around it, within the file. Unmapping a neighbour's pages is harmless (a read
    // maps them again from the page cache).
    constexpr uintptr_t kSpan = 2 << 20;
    uintptr_t begin = uintptr_t(e.data) & ~(kSpan - 1), end = (uintptr_t(e.data) + e.nbytes + kSpan - 1) & ~(kSpan - 1);
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    begin = std::max(begin, uintptr_t(e.mapping.data()) & ~(page - 1));  // mappings start on a page
    end = std::min(end, (uintptr_t(e.mapping.data()) + e.mapping.size() + page - 1) & ~(page - 1));
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Result<SafeTensors> SafeTensors::open(const std::string& path) {
    NB_TRY(file, MappedFile::open(path));
    return parse(std::move(file));
}

Result<SafeTensors> SafeTensors::parse(std::shared_ptr<MappedFile> file) {
    const std::string& path = file->path();
    const uint8_t* p = file->data();
    const size_t size = file->size();
    if (size < 8) return make_error(Errc::format, "{}: too small to be a safetensors file ({} bytes)", path, size);
    uint64_t n = 0;
    std::memcpy(&n, p, 8);  // little-endian host (x86-64, aarch64)
    if (n > size - 8)
        return make_error(Errc::format, "{}: header length {} goes past the end of the file ({} bytes)", path, n, size);
    if (n > kMaxHeaderBytes) return make_error(Errc::format, "{}: header length {} is implausibly large", path, n);
    if (n < 2) return make_error(Errc::format, "{}: header is empty", path);

    json header;
    try {
        header = json::parse(reinterpret_cast<const char*>(p + 8), reinterpret_cast<const char*>(p + 8 + n));
    } catch (const json::exception& ex) {
        std::string what = ex.what();
        return make_error(Errc::format, "{}: header is not valid JSON: {}", path, what.substr(0, 200));
    }
    if (!header.is_object()) return make_error(Errc::format, "{}: header is not a JSON object", path);

    SafeTensors st;
    st.file_ = file;
    st.path_ = path;
    const uint8_t* data_area = p + 8 + n;
    const uint64_t data_size = size - 8 - n;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it->is_object()) return make_error(Errc::format, "{}: __metadata__ is not an object", path);
            for (auto m = it->begin(); m != it->end(); ++m)
                st.metadata_[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
            continue;
        }
        NB_TRY(e, parse_entry(path, it.key(), *it, data_area, data_size));
        e.mapping = {p, size};
        e.file = file.get();
        st.entries_.push_back(std::move(e));
    }
    // Overlap check: sort by start offset; each tensor must end before the next begins.
    std::vector<const TensorEntry*> by_off;
    for (const auto& e : st.entries_) by_off.push_back(&e);
    std::sort(by_off.begin(), by_off.end(), [](auto a, auto b) { return a->data < b->data; });
    for (size_t i = 1; i < by_off.size(); ++i) {
        const auto* a = by_off[i - 1];
        const auto* b = by_off[i];
        if (a->nbytes > 0 && b->nbytes > 0 && a->data + a->nbytes > b->data)
            return make_error(Errc::format, "{}: tensors '{}' and '{}' overlap in the data area", path, a->name,
                              b->name);
    }
    std::sort(st.entries_.begin(), st.entries_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return st;
}

const TensorEntry* SafeTensors::find(std::string_view name) const {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                               [](const TensorEntry& e, std::string_view n) { return e.name < n; });
    return it != entries_.end() && it->name == name ? &*it : nullptr;
}

Result<Tensor> SafeTensors::load_f32(std::string_view name) const {
    const TensorEntry* e = find(name);
    if (!e) return make_error(Errc::missing, "{}: no tensor named '{}'", path_, name);
    return entry_to_f32(*e);
}

Result<void> write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata) {
    json h = json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    uint64_t off = 0;
    for (const auto& t : tensors) {
        h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
        off += t.bytes.size();
    }
    std::string hs = h.dump();
    while (hs.size() % 8) hs.push_back(' ');
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return make_error(Errc::io, "{}: cannot create", tmp);
    uint64_t n = hs.size();
    bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(hs.data(), 1, hs.size(), f) == hs.size();
    // The JSON object is key-sorted, so data must be written in the order offsets were assigned (input order).
    for (const auto& t : tensors)
        ok = ok && (t.bytes.empty() || std::fwrite(t.bytes.data(), 1, t.bytes.size(), f) == t.bytes.size());
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return make_error(Errc::io, "{}: write failed", path);
    }
    return {};
}

}  // namespace nb
