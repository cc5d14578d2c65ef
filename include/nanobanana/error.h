// Public error type of the nanobanana library: every fallible call returns Result<T>.
#pragma once

#include <expected>
#include <string>

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

const char* errc_name(Errc c);

}  // namespace nb
