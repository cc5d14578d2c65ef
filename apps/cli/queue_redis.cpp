// hiredis behind queue_redis.h.
#include "queue_redis.h"

#include <sys/time.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <hiredis/hiredis.h>

namespace nb::cli {

namespace {

Error redis_error(std::string msg) { return Error{Errc::internal, std::move(msg)}; }

RedisValue copy(const redisReply* r) {
    RedisValue v;
    switch (r->type) {
        case REDIS_REPLY_STRING: v.type = RedisValue::Type::string, v.str.assign(r->str, r->len); break;
        case REDIS_REPLY_STATUS: v.type = RedisValue::Type::status, v.str.assign(r->str, r->len); break;
        case REDIS_REPLY_INTEGER: v.type = RedisValue::Type::integer, v.integer = r->integer; break;
        case REDIS_REPLY_ARRAY:
            v.type = RedisValue::Type::array;
            for (size_t i = 0; i < r->elements; ++i) v.elements.push_back(copy(r->element[i]));
            break;
        default: break;  // nil
    }
    return v;
}

}  // namespace

Result<std::unique_ptr<Redis>> Redis::connect(const std::string& url) {
    std::unique_ptr<Redis> r(new Redis);
    r->url_ = url;
    std::string rest = url;
    if (!rest.starts_with("redis://"))
        return std::unexpected(Error{Errc::invalid_argument, "--queue '" + url + "': expected redis://HOST:PORT[/DB]"});
    rest = rest.substr(8);
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
        const std::string db = rest.substr(slash + 1);
        char* end = nullptr;
        r->db_ = int(std::strtol(db.c_str(), &end, 10));
        if (db.empty() || *end || r->db_ < 0)
            return std::unexpected(Error{Errc::invalid_argument, "--queue '" + url + "': database '" + db + "' is not a number"});
        rest = rest.substr(0, slash);
    }
    if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
        char* end = nullptr;
        const std::string port = rest.substr(colon + 1);
        r->port_ = int(std::strtol(port.c_str(), &end, 10));
        if (port.empty() || *end || r->port_ <= 0 || r->port_ > 65535)
            return std::unexpected(Error{Errc::invalid_argument, "--queue '" + url + "': port '" + port + "' is not a port"});
        rest = rest.substr(0, colon);
    }
    r->host_ = rest.empty() ? "127.0.0.1" : rest;
    if (auto o = r->open(); !o) return std::unexpected(o.error());
    return r;
}

Redis::~Redis() {
    if (c_) redisFree(c_);
}

Result<void> Redis::open() {
    if (c_) redisFree(c_);
    const timeval tv{5, 0};
    c_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
    if (!c_ || c_->err) {
        const std::string why = c_ ? c_->errstr : "out of memory";
        if (c_) redisFree(c_);
        c_ = nullptr;
        return std::unexpected(redis_error("cannot connect to Redis at " + url_ + ": " + why));
    }
    if (db_ != 0) {
        auto* rep = static_cast<redisReply*>(redisCommand(c_, "SELECT %d", db_));
        const bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (rep) freeReplyObject(rep);
        if (!ok) return std::unexpected(redis_error("Redis at " + url_ + ": cannot select database " + std::to_string(db_)));
    }
    return {};
}

Result<RedisValue> Redis::cmd(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!c_ || c_->err)
            if (auto o = open(); !o) return std::unexpected(o.error());
        auto* rep = static_cast<redisReply*>(redisCommandArgv(c_, int(argv.size()), argv.data(), lens.data()));
        if (!rep) continue;  // the connection broke: once more on a new one
        std::unique_ptr<redisReply, void (*)(void*)> own(rep, freeReplyObject);
        if (rep->type == REDIS_REPLY_ERROR)
            return std::unexpected(redis_error("Redis " + args.front() + ": " + std::string(rep->str, rep->len)));
        return copy(rep);
    }
    return std::unexpected(redis_error("Redis " + args.front() + ": connection to " + url_ + " lost: " +
                                       (c_ ? c_->errstr : "")));
}

Result<RedisValue> Redis::transaction(const std::vector<std::vector<std::string>>& commands) {
    std::vector<std::vector<std::string>> all;
    all.reserve(commands.size() + 2);
    all.push_back({"MULTI"});
    all.insert(all.end(), commands.begin(), commands.end());
    all.push_back({"EXEC"});
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!c_ || c_->err)
            if (auto o = open(); !o) return std::unexpected(o.error());
        bool sent = true;
        for (const auto& args : all) {
            std::vector<const char*> argv;
            std::vector<size_t> lens;
            for (const auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
            sent = sent && redisAppendCommandArgv(c_, int(argv.size()), argv.data(), lens.data()) == REDIS_OK;
        }
        if (!sent) continue;
        // Redis queues nothing before EXEC arrives: a connection lost before that discards the whole transaction.
        std::optional<RedisValue> exec;
        bool lost = false;
        std::string error;
        for (size_t i = 0; i < all.size(); ++i) {
            void* raw = nullptr;
            if (redisGetReply(c_, &raw) != REDIS_OK || !raw) {
                lost = true;
                break;
            }
            std::unique_ptr<redisReply, void (*)(void*)> own(static_cast<redisReply*>(raw), freeReplyObject);
            const auto* rep = own.get();
            if (rep->type == REDIS_REPLY_ERROR && error.empty())
                error = "Redis " + all[i].front() + ": " + std::string(rep->str, rep->len);
            if (i + 1 == all.size()) exec = copy(rep);
        }
        if (lost) continue;
        if (!error.empty()) return std::unexpected(redis_error(error));
        return *exec;
    }
    return std::unexpected(redis_error("Redis MULTI: connection to " + url_ + " lost: " + (c_ ? c_->errstr : "")));
}

Result<std::string> rq::write_result_file(const std::string& dir, const std::string& id, const std::string& text) {
    const std::string name = id + ".json";
    const std::filesystem::path path = std::filesystem::path(dir) / name, tmp = path.string() + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary);
        f << text;
        if (!f.flush())
            return std::unexpected(Error{Errc::io, "--results-dir: cannot write " + tmp.string()});
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) return std::unexpected(Error{Errc::io, "--results-dir: cannot rename " + tmp.string() + ": " + ec.message()});
    return name;
}

Result<std::string> rq::read_result_file(const std::string& dir, const std::string& name) {
    if (dir.empty())
        return std::unexpected(Error{Errc::io, "the result " + name + " is a file on shared storage: start the "
                                               "front with the workers' --results-dir"});
    std::ifstream f(std::filesystem::path(dir) / name, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!f.good() && !f.eof()) return std::unexpected(Error{Errc::io, "--results-dir: cannot read " + name});
    if (text.empty()) return std::unexpected(Error{Errc::io, "--results-dir: no result file " + dir + "/" + name});
    return text;
}

Result<void> rq::ensure_group(Redis& r, const std::string& stream) {
    auto v = r.cmd({"XGROUP", "CREATE", stream, kGroup, "0", "MKSTREAM"});
    if (!v && v.error().message.find("BUSYGROUP") == std::string::npos) return std::unexpected(v.error());
    return {};
}

}  // namespace nb::cli
