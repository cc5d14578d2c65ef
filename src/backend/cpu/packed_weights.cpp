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
    dnnl::memory mem;      // current packed layout; empty while only a Winograd copy exists
    dnnl::memory wino;     // Winograd-transformed copy (derived; the values or `mem` stay the weight)
};

std::mutex g_mu;
std::map<const void*, Packed> g_packed;

}  // namespace

dnnl::memory packed_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::lock_guard lock(g_mu);
    auto it = g_packed.find(w.storage_id());
    if (it != g_packed.end() && it->second.mem) {
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
    if (it != g_packed.end()) it->second.mem = m;
    else g_packed.emplace(w.storage_id(), Packed{w, user, m, {}});
    // The packed copy is now the weight: bf16 by design, fp32 losslessly (only re-laid out).
    w.release_values();
    return m;
}

dnnl::memory winograd_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    std::lock_guard lock(g_mu);
    auto it = g_packed.find(w.storage_id());
    if (it != g_packed.end() && it->second.wino && it->second.wino.get_desc() == want) return it->second.wino;
    // oneDNN transforms only from the plain layout: use the values, or unpack the packed copy into a temporary.
    dnnl::memory plain;
    if (w.has_values()) {
        plain = dnnl::memory(user, eng, const_cast<float*>(w.data()));
    } else {
        if (it == g_packed.end() || !it->second.mem)
            throw std::logic_error("winograd_weights: weight has neither values nor a packed copy");
        plain = dnnl::memory(user, eng);
        dnnl::reorder(it->second.mem, plain).execute(strm, it->second.mem, plain);
    }
    dnnl::memory m(want, eng);
    dnnl::reorder(plain, m).execute(strm, plain, m);
    strm.wait();
    if (it != g_packed.end()) it->second.wino = m;
    else g_packed.emplace(w.storage_id(), Packed{w, user, {}, m});
    return m;
}

}  // namespace nb::cpu

namespace nb::ops {

void ensure_values(const Tensor& w) {
    if (!w.defined() || w.has_values()) return;
    std::lock_guard lock(cpu::g_mu);
    auto it = cpu::g_packed.find(w.storage_id());
    if (it == cpu::g_packed.end() || !it->second.mem)
        throw std::logic_error("ensure_values: released weight without a packed copy");
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
