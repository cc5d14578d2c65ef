#include "backend/cpu/packed_weights.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "backend/cpu/dnnl_context.h"
#include "backend/ops.h"

namespace nb::cpu {

namespace {

struct Packed {
    Tensor owner;          // keeps the storage (and so the key) alive
    dnnl::memory::desc user;
    dnnl::memory mem;      // current packed layout
};

std::mutex g_mu;
std::map<const void*, Packed> g_packed;

}  // namespace

dnnl::memory packed_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::lock_guard lock(g_mu);
    auto it = g_packed.find(w.storage_id());
    if (it != g_packed.end()) {
        if (it->second.mem.get_desc() == want) return it->second.mem;
        // Another shape's kernel wants another layout: re-lay out the packed copy (values may be released).
        dnnl::memory m(want, eng);
        dnnl::reorder(it->second.mem, m).execute(strm, it->second.mem, m);
        strm.wait();
        it->second.mem = m;
        return m;
    }
    if (!w.has_values()) throw std::logic_error("packed_weights: weight has neither values nor a packed copy");
    dnnl::memory src(user, eng, const_cast<float*>(w.data()));
    dnnl::memory m(want, eng);
    dnnl::reorder(src, m).execute(strm, src, m);
    strm.wait();
    g_packed.emplace(w.storage_id(), Packed{w, user, m});
    // The packed copy is now the weight: bf16 by design, fp32 losslessly (only re-laid out).
    w.release_values();
    return m;
}

}  // namespace nb::cpu

namespace nb::ops {

void ensure_values(const Tensor& w) {
    if (!w.defined() || w.has_values()) return;
    std::lock_guard lock(cpu::g_mu);
    auto it = cpu::g_packed.find(w.storage_id());
    if (it == cpu::g_packed.end()) throw std::logic_error("ensure_values: released weight without a packed copy");
    w.restore_values();
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    dnnl::memory dst(it->second.user, eng, const_cast<float*>(w.data()));
    dnnl::reorder(it->second.mem, dst).execute(strm, it->second.mem, dst);
    strm.wait();
}

void weights_changed(const Tensor& w) {
    std::lock_guard lock(cpu::g_mu);
    cpu::g_packed.erase(w.storage_id());
}

}  // namespace nb::ops
