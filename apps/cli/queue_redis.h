// A small RAII wrapper over hiredis for the Redis job queue (`serve --queue`, `worker`; docs/scale-out.md):
// connect from a redis:// URL, run a command with binary-safe arguments, and get its reply as a plain value.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nanobanana/engine.h"

struct redisContext;

namespace nb::cli {

// A reply, copied out of hiredis's tree.
struct RedisValue {
    enum class Type { nil, string, integer, array, status };
    Type type = Type::nil;
    std::string str;  // string and status replies
    long long integer = 0;
    std::vector<RedisValue> elements;
    bool nil() const { return type == Type::nil; }
};

class Redis {
public:
    // "redis://HOST:PORT[/DB]" (port 6379 when left out); an error names the URL and what failed.
    static Result<std::unique_ptr<Redis>> connect(const std::string& url);
    ~Redis();
    Redis(const Redis&) = delete;
    Redis& operator=(const Redis&) = delete;

    // One command; a Redis error reply or a lost connection is an Error naming the command (a lost connection is
    // tried once more on a new one).
    Result<RedisValue> cmd(const std::vector<std::string>& args);
    // Commands run as one MULTI/EXEC transaction, sent together on one connection: all of them take effect or,
    // when the connection breaks first, none (then it is tried once more on a new one). Returns EXEC's reply.
    Result<RedisValue> transaction(const std::vector<std::vector<std::string>>& commands);

private:
    Redis() = default;
    Result<void> open();
    std::string url_, host_;
    int port_ = 6379, db_ = 0;
    redisContext* c_ = nullptr;
};

// The job layout in Redis, shared by the front and the workers (docs/scale-out.md).
namespace rq {
inline constexpr const char* kGroup = "workers";
inline constexpr const char* kDead = "nb:dead";
inline std::string stream(const std::string& model) { return "nb:jobs:" + model; }
inline std::string job_key(const std::string& id) { return "nb:job:" + id; }
inline std::string result_key(const std::string& id) { return "nb:result:" + id; }
inline std::string progress_key(const std::string& id) { return "nb:progress:" + id; }
inline std::string cancel_key(const std::string& id) { return "nb:cancel:" + id; }
inline std::string skip_key(const std::string& id) { return "nb:skip:" + id; }
// A result as a file `<id>.json` in `dir` (written whole, then renamed into place); returns its name.
Result<std::string> write_result_file(const std::string& dir, const std::string& id, const std::string& text);
Result<std::string> read_result_file(const std::string& dir, const std::string& name);
// Creates the consumer group of `stream` (and the stream) unless it exists.
Result<void> ensure_group(Redis& r, const std::string& stream);
}  // namespace rq

}  // namespace nb::cli
