// Errors are values across layers (STYLE.md #3): the library never exits or aborts on bad input.
#pragma once

#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace nb {

enum class Errc {
    io,              // file missing, unreadable, mmap failed
    format,          // malformed file contents (header, JSON, offsets)
    unsupported,     // valid but not supported (dtype, architecture, pickle)
    shape,           // tensor shape does not match what the model expects
    missing,         // required tensor/key/file absent
    invalid_argument,// bad user input (size, sampler name, prompt option)
    cancelled,       // user interrupted
    internal,
};

struct Error {
    Errc code = Errc::internal;
    std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

template <class... Args>
std::unexpected<Error> make_error(Errc code, fmt::format_string<Args...> f, Args&&... args) {
    return std::unexpected(Error{code, fmt::format(f, std::forward<Args>(args)...)});
}

const char* errc_name(Errc c);

}  // namespace nb

// Propagate an error from an expression returning Result<T>; yields the value otherwise.
#define NB_TRY(var, expr)                                         \
    auto var##_result_ = (expr);                                  \
    if (!var##_result_) return std::unexpected(var##_result_.error()); \
    auto var = std::move(*var##_result_)
