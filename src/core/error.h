// Errors are values across layers (STYLE.md #3): the library never exits or aborts on bad input.
#pragma once

#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "nanobanana/error.h"

namespace nb {

template <class... Args>
std::unexpected<Error> make_error(Errc code, fmt::format_string<Args...> f, Args&&... args) {
    return std::unexpected(Error{code, fmt::format(f, std::forward<Args>(args)...)});
}


}  // namespace nb

// Propagate an error from an expression returning Result<T>; yields the value otherwise.
#define NB_TRY(var, expr)                                         \
    auto var##_result_ = (expr);                                  \
    if (!var##_result_) return std::unexpected(var##_result_.error()); \
    auto var = std::move(*var##_result_)
