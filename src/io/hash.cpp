#include "io/hash.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/user_cache.h"

namespace nb {

namespace {
std::string to_hex(const unsigned char* md, unsigned len) {
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}
}  // namespace

std::string sha256_hex(const void* data, size_t n) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr);
    return to_hex(md, len);
}

// Streamed with read(): mapping a multi-GB checkpoint to hash it would add the whole file to the resident set.
Result<std::string> sha256_file(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) return make_error(Errc::io, "{}: cannot open", path);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    std::vector<unsigned char> buf(1 << 20);
    size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
    if (std::ferror(f.get())) return make_error(Errc::io, "{}: read error while hashing", path);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &len);
    return to_hex(md, len);
}

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr size_t kMaxCachedFiles = 4096;

bool is_sha256_hex(const std::string& s) {
    return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The cache's entries ({"files": {path: {"size", "mtime_ns", "sha256"}}}); empty when missing or unreadable.
json read_cache(const fs::path& file) {
    std::ifstream in(file);
    if (!in) return json::object();
    try {
        json j = json::parse(in);
        if (j.is_object() && j.contains("files") && j["files"].is_object()) return j;
    } catch (const json::exception&) {
    }
    return json::object();
}

}  // namespace

Result<std::string> sha256_file_cached(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return sha256_file(path);  // which says why it cannot be read
    const int64_t size = int64_t(st.st_size);
    const int64_t mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    std::error_code ec;
    const std::string key = fs::absolute(path, ec).lexically_normal().string();
    auto folder = user_cache_folder();
    if (ec || !folder) return sha256_file(path);
    const fs::path cache = *folder / "hashes.json";
    json j = read_cache(cache);
    if (j.contains("files")) {
        const json& files = j["files"];
        if (auto it = files.find(key); it != files.end() && it->is_object()) {
            const json& e = *it;
            if (e.value("size", int64_t(-1)) == size && e.value("mtime_ns", int64_t(-1)) == mtime_ns) {
                const std::string h = e.value("sha256", std::string());
                if (is_sha256_hex(h)) return h;
            }
        }
    }
    NB_TRY(hash, sha256_file(path));
    // Merge into what is there now (another process may have added entries), dropping files that are gone,
    // then replace the cache file atomically.
    j = read_cache(cache);
    json files = j.contains("files") ? j["files"] : json::object();
    json kept = json::object();
    for (auto it = files.begin(); it != files.end() && kept.size() < kMaxCachedFiles; ++it)
        if (it.key() != key && fs::exists(it.key(), ec)) kept[it.key()] = it.value();
    kept[key] = {{"size", size}, {"mtime_ns", mtime_ns}, {"sha256", hash}};
    const fs::path tmp = cache.string() + "." + std::to_string(::getpid()) + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << json{{"files", kept}}.dump(1) << "\n";
        if (!out.flush()) {
            fs::remove(tmp, ec);
            return hash;
        }
    }
    fs::rename(tmp, cache, ec);
    if (ec) fs::remove(tmp, ec);
    return hash;
}

}  // namespace nb
