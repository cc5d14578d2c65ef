// The per-user cache of file hashes (io/hash.h): used while a file's size and mtime are unchanged, refreshed
// when either changes, and never in the way (unreadable cache -> the file is hashed).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/hash.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

class HashCache : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) / ("nb_hash_cache_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        const char* old = std::getenv("XDG_CACHE_HOME");
        had_ = old != nullptr;
        if (had_) old_ = old;
        ::setenv("XDG_CACHE_HOME", (dir_ / "cache").c_str(), 1);
    }
    void TearDown() override {
        if (had_) ::setenv("XDG_CACHE_HOME", old_.c_str(), 1);
        else ::unsetenv("XDG_CACHE_HOME");
        fs::remove_all(dir_);
    }
    fs::path write(const std::string& name, const std::string& bytes) {
        const fs::path p = dir_ / name;
        std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
        return p;
    }
    fs::path cache_file() const { return dir_ / "cache" / "nanobanana" / "hashes.json"; }
    // Puts `hash` in the cache entry of `p` (as if it had been hashed to that).
    void forge(const fs::path& p, const std::string& hash) {
        nlohmann::json j = nlohmann::json::parse(std::ifstream(cache_file()));
        j["files"][fs::absolute(p).lexically_normal().string()]["sha256"] = hash;
        std::ofstream(cache_file(), std::ios::trunc) << j.dump();
    }

    fs::path dir_;
    bool had_ = false;
    std::string old_;
};

TEST_F(HashCache, UnchangedFilesAreReadFromTheCacheChangedOnesHashedAgain) {
    const fs::path a = write("a.safetensors", "first contents");
    const std::string ha = *sha256_file(a.string());
    EXPECT_EQ(*sha256_file_cached(a.string()), ha);
    ASSERT_TRUE(fs::exists(cache_file()));

    // The cache is what answers for an unchanged file: a forged entry comes back.
    const std::string forged(64, 'a');
    forge(a, forged);
    EXPECT_EQ(*sha256_file_cached(a.string()), forged);

    // Same size, new contents and mtime: hashed again.
    fs::last_write_time(a, fs::last_write_time(a) - std::chrono::seconds(10));
    std::ofstream(a, std::ios::binary | std::ios::trunc) << "other contents";
    const std::string hb = *sha256_file(a.string());
    ASSERT_NE(ha, hb);
    EXPECT_EQ(*sha256_file_cached(a.string()), hb);

    // A second file joins the first; an entry that is not 64 hex digits is not believed.
    const fs::path b = write("b.safetensors", "b");
    EXPECT_EQ(*sha256_file_cached(b.string()), *sha256_file(b.string()));
    EXPECT_EQ(*sha256_file_cached(a.string()), hb);
    forge(b, "not a hash");
    EXPECT_EQ(*sha256_file_cached(b.string()), *sha256_file(b.string()));
}

TEST_F(HashCache, AnUnreadableCacheOrFileIsNoWorseThanNoCache) {
    const fs::path a = write("a.ckpt", "x");
    fs::create_directories(cache_file().parent_path());
    std::ofstream(cache_file(), std::ios::trunc) << "{\"files\": [1, 2";  // truncated JSON
    EXPECT_EQ(*sha256_file_cached(a.string()), *sha256_file(a.string()));
    std::ofstream(cache_file(), std::ios::trunc) << "[]";
    EXPECT_EQ(*sha256_file_cached(a.string()), *sha256_file(a.string()));
    auto missing = sha256_file_cached((dir_ / "missing.safetensors").string());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("missing.safetensors"), std::string::npos) << missing.error().message;
}

}  // namespace
}  // namespace nb
