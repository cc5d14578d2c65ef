#include "core/error.h"

namespace nb {

const char* errc_name(Errc c) {
    switch (c) {
        case Errc::io: return "io";
        case Errc::format: return "format";
        case Errc::unsupported: return "unsupported";
        case Errc::shape: return "shape";
        case Errc::missing: return "missing";
        case Errc::invalid_argument: return "invalid argument";
        case Errc::cancelled: return "cancelled";
        case Errc::internal: return "internal";
    }
    return "unknown";
}

}  // namespace nb
