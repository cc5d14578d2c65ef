#include "backend/cpu/cpu_backend.h"

namespace nb::backend {

const Backend& cpu_backend() {
    static const CpuBackend b;  // stateless
    return b;
}

}  // namespace nb::backend
