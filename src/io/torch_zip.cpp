#include "io/torch_zip.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace nb {

// ---------------------------------------------------------------------------------------------------------
// Zip (PKWARE APPNOTE 6.3): end of central directory -> central directory -> local headers -> data.
namespace {

constexpr uint32_t kSigEocd = 0x06054b50, kSigZip64Locator = 0x07064b50, kSigZip64Eocd = 0x06064b50;
constexpr uint32_t kSigCentral = 0x02014b50, kSigLocal = 0x04034b50;
constexpr size_t kMaxDeflateRatio = 1032;  // deflate cannot expand more than ~1032:1 (zlib tech notes)

uint64_t le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

struct CentralDir {
    uint64_t count = 0, offset = 0, size = 0;
};

Result<CentralDir> find_central_dir(const MappedFile& f) {
    const uint8_t* p = f.data();
    const size_t n = f.size();
    if (n < 22) return make_error(Errc::format, "{}: too small to be a zip archive ({} bytes)", f.path(), n);
    size_t lo = n - 22 > 65535 ? n - 22 - 65535 : 0;
    size_t at = SIZE_MAX;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (le(p + i, 4) == kSigEocd) { at = i; break; }
    if (at == SIZE_MAX)
        return make_error(Errc::format, "{}: no zip end-of-central-directory record (not a torch zip, or truncated)",
                          f.path());
    CentralDir cd{le(p + at + 10, 2), le(p + at + 16, 4), le(p + at + 12, 4)};
    if (cd.count == 0xFFFF || cd.offset == 0xFFFFFFFF || cd.size == 0xFFFFFFFF) {
        if (at < 20 || le(p + at - 20, 4) != kSigZip64Locator)
            return make_error(Errc::format, "{}: zip64 fields without a zip64 locator", f.path());
        uint64_t z = le(p + at - 20 + 8, 8);
        if (z > n || n - z < 56 || le(p + z, 4) != kSigZip64Eocd)
            return make_error(Errc::format, "{}: zip64 end-of-central-directory record is missing or truncated",
                              f.path());
        cd = {le(p + z + 32, 8), le(p + z + 48, 8), le(p + z + 40, 8)};
    }
    if (cd.offset > n || cd.size > n - cd.offset)
        return make_error(Errc::format, "{}: central directory [{}, +{}) goes past the end of the file ({} bytes)",
                          f.path(), cd.offset, cd.size, n);
    return cd;
}

Result<std::shared_ptr<std::vector<uint8_t>>> inflate_member(const std::string& path, const std::string& name,
                                                            const uint8_t* src, size_t csize, size_t usize,
                                                            uint32_t crc) {
    if (usize / kMaxDeflateRatio > csize + 1)
        return make_error(Errc::format, "{}: zip member '{}' claims an impossible size {} from {} deflated bytes",
                          path, name, usize, csize);
    auto out = inflate_raw({src, csize}, usize);
    if (!out) return make_error(Errc::format, "{}: zip member '{}': {}", path, name, out.error().message);
    if (zip_crc32(out->data(), out->size()) != crc)
        return make_error(Errc::format, "{}: zip member '{}' fails its CRC-32 check", path, name);
    return std::make_shared<std::vector<uint8_t>>(std::move(*out));
}

// Parses one central-directory record at `p` (`avail` bytes left); advances `used`.
Result<ZipMember> read_member(const MappedFile& f, const uint8_t* p, size_t avail, size_t& used,
                              std::vector<std::shared_ptr<std::vector<uint8_t>>>& owned) {
    const std::string& path = f.path();
    if (avail < 46 || le(p, 4) != kSigCentral)
        return make_error(Errc::format, "{}: corrupt central directory record", path);
    size_t name_len = le(p + 28, 2), extra_len = le(p + 30, 2), comment_len = le(p + 32, 2);
    used = 46 + name_len + extra_len + comment_len;
    if (used > avail) return make_error(Errc::format, "{}: central directory record runs past its end", path);
    ZipMember m;
    m.name.assign(reinterpret_cast<const char*>(p + 46), name_len);
    uint64_t flags = le(p + 8, 2), method = le(p + 10, 2);
    uint64_t csize = le(p + 20, 4), usize = le(p + 24, 4), off = le(p + 42, 4);
    // zip64 extended information: only the fields whose 32-bit slot is saturated, in this order.
    for (const uint8_t *e = p + 46 + name_len, *end = e + extra_len; e + 4 <= end;) {
        uint64_t id = le(e, 2), len = le(e + 2, 2);
        if (e + 4 + len > end) break;
        if (id == 0x0001) {
            const uint8_t* q = e + 4;
            auto take = [&](uint64_t& v) {
                if (v == 0xFFFFFFFF && q + 8 <= e + 4 + len) v = le(q, 8), q += 8;
            };
            take(usize), take(csize), take(off);
        }
        e += 4 + len;
    }
    if (flags & 1) return make_error(Errc::unsupported, "{}: zip member '{}' is encrypted", path, m.name);
    if (off > f.size() || f.size() - off < 30 || le(f.data() + off, 4) != kSigLocal)
        return make_error(Errc::format, "{}: zip member '{}' has a bad local header offset {}", path, m.name, off);
    uint64_t data_off = off + 30 + le(f.data() + off + 26, 2) + le(f.data() + off + 28, 2);
    if (data_off > f.size() || csize > f.size() - data_off)
        return make_error(Errc::format, "{}: zip member '{}' ({} bytes at {}) goes past the end of the file", path,
                          m.name, csize, data_off);
    const uint8_t* src = f.data() + data_off;
    if (method == 0) {
        if (csize != usize) return make_error(Errc::format, "{}: stored zip member '{}' has csize != size", path, m.name);
        m.data = src, m.size = size_t(usize);
        m.mapping = {f.data(), f.size()};
        m.file = &f;
    } else if (method == 8) {
        NB_TRY(buf, inflate_member(path, m.name, src, size_t(csize), size_t(usize), uint32_t(le(p + 16, 4))));
        m.data = buf->data(), m.size = buf->size();
        owned.push_back(std::move(buf));
    } else {
        return make_error(Errc::unsupported, "{}: zip member '{}' uses compression method {} (only 0 stored, 8 deflate)",
                          path, m.name, method);
    }
    return m;
}

}  // namespace

Result<std::vector<ZipMember>> read_zip(const MappedFile& f,
                                        std::vector<std::shared_ptr<std::vector<uint8_t>>>& owned) {
    NB_TRY(cd, find_central_dir(f));
    std::vector<ZipMember> out;
    const uint8_t* p = f.data() + cd.offset;
    size_t left = size_t(cd.size);
    for (uint64_t i = 0; i < cd.count; ++i) {
        size_t used = 0;
        NB_TRY(m, read_member(f, p, left, used, owned));
        p += used, left -= used;
        if (!m.name.empty() && m.name.back() == '/') continue;  // directory entry
        out.push_back(std::move(m));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Pickle VM (protocol 2..5 subset). Values are a small tagged tree; nothing is ever called.
namespace {

enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, storage, tensor, opaque };

struct PyObj;
using Obj = std::shared_ptr<PyObj>;

struct TensorRef {
    DType dtype = DType::f32;
    std::string key;  // storage key: member <root>data/<key>
    int64_t storage_numel = 0;
    int64_t offset = 0;
    Shape size, stride;
};

struct PyObj {
    Kind kind = Kind::none;
    int64_t i = 0;
    double f = 0;
    std::string s;                             // string value, or "module name" of a global
    std::vector<Obj> items;                    // tuple / list
    std::vector<std::pair<Obj, Obj>> dict;     // insertion order kept
    TensorRef tensor;                          // storage (key, dtype, numel) or tensor
};

Obj mk(Kind k) {
    auto o = std::make_shared<PyObj>();
    o->kind = k;
    return o;
}

// The only globals the VM accepts. `inert` ones build opaque placeholders (never called): they occur in
// real SD .ckpt files beside the state dict (lightning callbacks, numpy scalars) and are dropped.
// `parameter_dict`: torch.nn.ParameterDict (the original textual-inversion repo's `string_to_param`), read as
// the dict of its `_parameters` state.
enum class GlobalKind { ordered_dict, rebuild_tensor, rebuild_parameter, storage, parameter_dict, inert };
struct GlobalInfo {
    const char* name;
    GlobalKind kind;
    DType dtype;
};
constexpr GlobalInfo kGlobals[] = {
    {"collections OrderedDict", GlobalKind::ordered_dict, DType::f32},
    {"torch._utils _rebuild_tensor_v2", GlobalKind::rebuild_tensor, DType::f32},
    {"torch._utils _rebuild_parameter", GlobalKind::rebuild_parameter, DType::f32},
    {"torch FloatStorage", GlobalKind::storage, DType::f32},
    {"torch HalfStorage", GlobalKind::storage, DType::f16},
    {"torch BFloat16Storage", GlobalKind::storage, DType::bf16},
    {"torch DoubleStorage", GlobalKind::storage, DType::f64},
    {"torch LongStorage", GlobalKind::storage, DType::i64},
    {"torch IntStorage", GlobalKind::storage, DType::i32},
    {"torch ByteStorage", GlobalKind::storage, DType::u8},
    {"torch BoolStorage", GlobalKind::storage, DType::boolean},
    {"pytorch_lightning.callbacks.model_checkpoint ModelCheckpoint", GlobalKind::inert, DType::f32},
    {"numpy.core.multiarray scalar", GlobalKind::inert, DType::f32},
    {"numpy dtype", GlobalKind::inert, DType::f32},
    {"_codecs encode", GlobalKind::inert, DType::f32},
    {"torch.nn.modules.container ParameterDict", GlobalKind::parameter_dict, DType::f32},
    {"__builtin__ set", GlobalKind::inert, DType::f32},  // a module's _non_persistent_buffers_set
};

const GlobalInfo* global_info(const std::string& name) {
    for (const auto& g : kGlobals)
        if (name == g.name) return &g;
    return nullptr;
}

constexpr const char* kParameterDict = "ParameterDict";  // PyObj::s of a dict built from a ParameterDict

class PickleVm {
public:
    PickleVm(std::string path, const uint8_t* p, size_t n) : path_(std::move(path)), p_(p), n_(n) {}
    Result<Obj> run();

private:
    template <class... A>
    std::unexpected<Error> bad(fmt::format_string<A...> f, A&&... a) {
        return std::unexpected(Error{Errc::format, fmt::format("{}: data.pkl at byte {}: {}", path_, op_pos_,
                                                               fmt::format(f, std::forward<A>(a)...))});
    }
    bool take(size_t k, const uint8_t*& out) {
        if (k > n_ - pos_) return false;
        out = p_ + pos_, pos_ += k;
        return true;
    }
    Result<uint64_t> uint_arg(int bytes);
    Result<std::string> line();
    Result<Obj> pop();
    Result<std::vector<Obj>> pop_mark();
    Result<bool> step_value(uint8_t op);  // true when `op` was a value opcode
    Result<void> step_struct(uint8_t op, bool& done);
    Result<void> op_global();
    Result<void> op_reduce();
    Result<void> op_persid();
    Result<void> op_setitems(bool many);
    Result<Obj> rebuild_tensor(const std::vector<Obj>& args);

    std::string path_;
    const uint8_t* p_;
    size_t n_, pos_ = 0, op_pos_ = 0;
    std::vector<Obj> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, Obj> memo_;
};

Result<uint64_t> PickleVm::uint_arg(int bytes) {
    const uint8_t* q;
    if (!take(size_t(bytes), q)) return bad("truncated operand");
    return le(q, bytes);
}

Result<std::string> PickleVm::line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_ + pos_, '\n', n_ - pos_));
    if (!nl) return bad("unterminated GLOBAL line");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(nl - (p_ + pos_)));
    pos_ = size_t(nl - p_) + 1;
    return s;
}

Result<Obj> PickleVm::pop() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) return bad("stack underflow");
    Obj o = std::move(stack_.back());
    stack_.pop_back();
    return o;
}

Result<std::vector<Obj>> PickleVm::pop_mark() {
    if (marks_.empty()) return bad("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj> items(std::make_move_iterator(stack_.begin() + std::ptrdiff_t(m)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
}

Result<void> PickleVm::op_global() {
    NB_TRY(module, line());
    NB_TRY(name, line());
    std::string full = module + " " + name;
    if (!global_info(full))
        return make_error(Errc::unsupported, "{}: data.pkl references global '{}.{}', which is not allowed "
                          "(only tensor/state-dict globals are accepted; nothing is executed)", path_, module, name);
    Obj g = mk(Kind::global);
    g->s = full;
    stack_.push_back(std::move(g));
    return {};
}

Result<Obj> PickleVm::rebuild_tensor(const std::vector<Obj>& a) {
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.size() < 4 || a[0]->kind != Kind::storage || a[1]->kind != Kind::integer || a[2]->kind != Kind::tuple ||
        a[3]->kind != Kind::tuple)
        return bad("_rebuild_tensor_v2 called with unexpected arguments");
    Obj t = mk(Kind::tensor);
    t->tensor = a[0]->tensor;
    t->tensor.offset = a[1]->i;
    for (const auto& d : a[2]->items) {
        if (d->kind != Kind::integer || d->i < 0) return bad("tensor size must be non-negative integers");
        t->tensor.size.push_back(d->i);
    }
    for (const auto& d : a[3]->items) {
        if (d->kind != Kind::integer) return bad("tensor stride must be integers");
        t->tensor.stride.push_back(d->i);
    }
    if (t->tensor.size.size() != t->tensor.stride.size()) return bad("tensor size and stride ranks differ");
    return t;
}

Result<void> PickleVm::op_reduce() {
    NB_TRY(args, pop());
    NB_TRY(fn, pop());
    if (fn->kind != Kind::global) return bad("REDUCE on something that is not an allowed global");
    if (args->kind != Kind::tuple) return bad("REDUCE arguments are not a tuple");
    const GlobalInfo* g = global_info(fn->s);
    Obj out;
    switch (g->kind) {
        case GlobalKind::ordered_dict: out = mk(Kind::dict); break;
        case GlobalKind::rebuild_tensor: {
            NB_TRY(t, rebuild_tensor(args->items));
            out = std::move(t);
            break;
        }
        case GlobalKind::rebuild_parameter:
            if (args->items.empty() || args->items[0]->kind != Kind::tensor)
                return bad("_rebuild_parameter without a tensor");
            out = args->items[0];
            break;
        case GlobalKind::storage: return bad("storage type '{}' cannot be called", fn->s);
        case GlobalKind::parameter_dict: return bad("'{}' is only built with NEWOBJ", fn->s);
        case GlobalKind::inert: out = mk(Kind::opaque); break;
    }
    stack_.push_back(std::move(out));
    return {};
}

Result<void> PickleVm::op_persid() {
    // torch persistent id: ('storage', <StorageType global>, key, location, numel)
    NB_TRY(pid, pop());
    const auto& it = pid->items;
    if (pid->kind != Kind::tuple || it.size() < 5 || it[0]->kind != Kind::string || it[0]->s != "storage" ||
        it[1]->kind != Kind::global || it[2]->kind != Kind::string || it[4]->kind != Kind::integer)
        return bad("persistent id is not a torch storage reference");
    const GlobalInfo* g = global_info(it[1]->s);
    if (g->kind != GlobalKind::storage) return bad("persistent id names '{}', not a storage type", it[1]->s);
    if (it[4]->i < 0) return bad("negative storage size");
    Obj s = mk(Kind::storage);
    s->tensor.dtype = g->dtype;
    s->tensor.key = it[2]->s;
    s->tensor.storage_numel = it[4]->i;
    stack_.push_back(std::move(s));
    return {};
}

Result<void> PickleVm::op_setitems(bool many) {
    std::vector<Obj> kv;
    if (many) {
        NB_TRY(items, pop_mark());
        kv = std::move(items);
    } else {
        NB_TRY(v, pop());
        NB_TRY(k, pop());
        kv = {k, v};
    }
    if (kv.size() % 2) return bad("SETITEMS with an odd number of items");
    if (stack_.empty() || stack_.back()->kind != Kind::dict) return bad("SETITEM(S) target is not a dict");
    for (size_t i = 0; i < kv.size(); i += 2) stack_.back()->dict.emplace_back(kv[i], kv[i + 1]);
    return {};
}


// Opcodes that push a value (numbers, strings, empty containers, memo reads).
Result<bool> PickleVm::step_value(uint8_t op) {
    auto push = [&](Obj o) { stack_.push_back(std::move(o)); };
    auto integer = [&](int64_t v) { Obj o = mk(Kind::integer); o->i = v; push(std::move(o)); };
    auto string = [&](size_t len) -> Result<bool> {
        const uint8_t* q;
        if (!take(len, q)) return bad("truncated string");
        Obj o = mk(Kind::string);
        o->s.assign(reinterpret_cast<const char*>(q), len);
        push(std::move(o));
        return true;
    };
    switch (op) {
        case 'N': push(mk(Kind::none)); return true;
        case 0x88: case 0x89: { Obj o = mk(Kind::boolean); o->i = op == 0x88; push(std::move(o)); return true; }
        case 'K': { NB_TRY(v, uint_arg(1)); integer(int64_t(v)); return true; }
        case 'M': { NB_TRY(v, uint_arg(2)); integer(int64_t(v)); return true; }
        case 'J': { NB_TRY(v, uint_arg(4)); integer(int64_t(int32_t(uint32_t(v)))); return true; }
        case 0x8a: {  // LONG1: n-byte little-endian two's complement
            NB_TRY(n, uint_arg(1));
            if (n > 8) return bad("LONG1 of {} bytes is too large", n);
            NB_TRY(v, uint_arg(int(n)));
            int64_t x = n == 0 ? 0 : int64_t(v << (64 - 8 * n)) >> (64 - 8 * n);
            integer(x);
            return true;
        }
        case 'G': {  // BINFLOAT: big-endian double
            NB_TRY(v, uint_arg(8));
            uint64_t be = __builtin_bswap64(v);
            Obj o = mk(Kind::floating);
            std::memcpy(&o->f, &be, 8);
            push(std::move(o));
            return true;
        }
        case 'X': { NB_TRY(n, uint_arg(4)); return string(size_t(n)); }
        case 0x8c: case 'U': { NB_TRY(n, uint_arg(1)); return string(size_t(n)); }
        case '}': push(mk(Kind::dict)); return true;
        case ']': push(mk(Kind::list)); return true;
        case ')': push(mk(Kind::tuple)); return true;
        case 'h': case 'j': {
            NB_TRY(k, uint_arg(op == 'h' ? 1 : 4));
            auto it = memo_.find(k);
            if (it == memo_.end()) return bad("memo key {} read before it was written", k);
            push(it->second);
            return true;
        }
        default: return false;
    }
}

// Opcodes that build or modify structures.
Result<void> PickleVm::step_struct(uint8_t op, bool& done) {
    auto tuple_of = [&](std::vector<Obj> items) {
        Obj t = mk(Kind::tuple);
        t->items = std::move(items);
        stack_.push_back(std::move(t));
    };
    switch (op) {
        case 0x80: { NB_TRY(v, uint_arg(1)); (void)v; return {}; }    // PROTO
        case 0x95: { NB_TRY(v, uint_arg(8)); (void)v; return {}; }    // FRAME
        case '(': marks_.push_back(stack_.size()); return {};
        case 't': { NB_TRY(items, pop_mark()); tuple_of(std::move(items)); return {}; }
        case 0x85: case 0x86: case 0x87: {
            std::vector<Obj> items(size_t(op - 0x84));
            for (size_t i = items.size(); i-- > 0;) { NB_TRY(o, pop()); items[i] = std::move(o); }
            tuple_of(std::move(items));
            return {};
        }
        case 'q': case 'r': case 0x94: {
            uint64_t k = memo_.size();
            if (op != 0x94) { NB_TRY(v, uint_arg(op == 'q' ? 1 : 4)); k = v; }
            if (stack_.empty()) return bad("memo write with an empty stack");
            memo_[k] = stack_.back();
            return {};
        }
        case 'c': return op_global();
        case 'R': return op_reduce();
        case 'Q': return op_persid();
        case 's': return op_setitems(false);
        case 'u': return op_setitems(true);
        case 'a': case 'e': {
            std::vector<Obj> items;
            if (op == 'e') { NB_TRY(m, pop_mark()); items = std::move(m); }
            else { NB_TRY(o, pop()); items.push_back(std::move(o)); }
            if (stack_.empty() || stack_.back()->kind != Kind::list) return bad("APPEND(S) target is not a list");
            for (auto& o : items) stack_.back()->items.push_back(std::move(o));
            return {};
        }
        case 'b': {  // BUILD: object state; dict attributes (OrderedDict._metadata) and opaque state are dropped
            NB_TRY(state, pop());
            if (stack_.empty() || (stack_.back()->kind != Kind::dict && stack_.back()->kind != Kind::opaque))
                return bad("BUILD on an object that is not a dict");
            PyObj& target = *stack_.back();
            if (target.s == kParameterDict && state->kind == Kind::dict)  // its tensors are state['_parameters']
                for (const auto& [k, v] : state->dict)
                    if (k->kind == Kind::string && k->s == "_parameters" && v->kind == Kind::dict) target.dict = v->dict;
            return {};
        }
        case 0x81: {  // NEWOBJ: only for inert globals and ParameterDict (an empty dict until its BUILD)
            NB_TRY(args, pop());
            NB_TRY(cls, pop());
            const GlobalInfo* g = cls->kind == Kind::global ? global_info(cls->s) : nullptr;
            if (!g || (g->kind != GlobalKind::inert && g->kind != GlobalKind::parameter_dict))
                return bad("NEWOBJ on a class that is not allowed");
            Obj o = mk(g->kind == GlobalKind::inert ? Kind::opaque : Kind::dict);
            if (g->kind == GlobalKind::parameter_dict) o->s = kParameterDict;
            stack_.push_back(std::move(o));
            return {};
        }
        case '.': done = true; return {};
        default:
            return make_error(Errc::unsupported, "{}: data.pkl at byte {}: pickle opcode 0x{:02x} ('{}') is not "
                              "supported by the restricted loader", path_, op_pos_, op,
                              op >= 0x20 && op < 0x7f ? char(op) : '?');
    }
}

Result<Obj> PickleVm::run() {
    bool done = false;
    while (!done) {
        op_pos_ = pos_;
        const uint8_t* q;
        if (!take(1, q)) return bad("pickle ends without STOP");
        NB_TRY(pushed, step_value(*q));
        if (pushed) continue;
        if (auto r = step_struct(*q, done); !r) return std::unexpected(r.error());
    }
    if (stack_.size() != 1) return bad("pickle leaves {} objects on the stack (expected 1)", stack_.size());
    return stack_.back();
}

const Obj* dict_get(const PyObj& d, std::string_view key) {
    for (const auto& [k, v] : d.dict)
        if (k->kind == Kind::string && k->s == key) return &v;
    return nullptr;
}

void flatten(const PyObj& d, const std::string& prefix, std::vector<std::pair<std::string, TensorRef>>& out) {
    for (const auto& [k, v] : d.dict) {
        if (k->kind != Kind::string) continue;
        if (v->kind == Kind::tensor) out.emplace_back(prefix + k->s, v->tensor);
        else if (v->kind == Kind::dict) flatten(*v, prefix + k->s + ".", out);
        // other values (epoch, global_step, opaque callbacks) are not weights
    }
}

// Resolves a tensor reference against the archive's storages; contiguous tensors only.
Result<TensorEntry> make_entry(const std::string& path, const std::string& name, const TensorRef& t,
                               const std::map<std::string, ZipMember>& storages) {
    auto it = storages.find(t.key);
    if (it == storages.end())
        return make_error(Errc::format, "{}: tensor '{}' refers to storage '{}', which is not in the archive", path,
                          name, t.key);
    const size_t esize = dtype_size(t.dtype);
    int64_t expect = 1, numel = 1;
    for (size_t i = t.size.size(); i-- > 0;) {
        if (t.size[i] != 1 && t.stride[i] != expect)
            return make_error(Errc::unsupported, "{}: tensor '{}' is not contiguous (size {}, stride {})", path, name,
                              shape_str(t.size), shape_str(t.stride));
        if (t.size[i] > 0 && numel > (int64_t(1) << 48) / t.size[i])
            return make_error(Errc::format, "{}: tensor '{}' has an absurd size {}", path, name, shape_str(t.size));
        expect *= t.size[i], numel *= t.size[i];
    }
    if (t.offset < 0 || t.offset > t.storage_numel || numel > t.storage_numel - t.offset)
        return make_error(Errc::format, "{}: tensor '{}' [offset {}, {} elements] exceeds its storage ({} elements)",
                          path, name, t.offset, numel, t.storage_numel);
    if (uint64_t(t.storage_numel) * esize > it->second.size)
        return make_error(Errc::format, "{}: storage '{}' declares {} elements but its member has only {} bytes",
                          path, t.key, t.storage_numel, it->second.size);
    TensorEntry e;
    e.name = name;
    e.dtype = t.dtype;
    e.dtype_name = dtype_name(t.dtype);
    e.shape = t.size;
    e.data = it->second.data + size_t(t.offset) * esize;
    e.mapping = it->second.mapping;
    e.file = it->second.file;
    e.nbytes = size_t(numel) * esize;
    e.source = path;
    return e;
}

}  // namespace

Result<TorchZip> TorchZip::open(const std::string& path) {
    NB_TRY(file, MappedFile::open(path));
    return parse(std::move(file));
}

Result<TorchZip> TorchZip::parse(std::shared_ptr<MappedFile> file) {
    TorchZip z;
    z.file_ = file;
    z.path_ = file->path();
    NB_TRY(members, read_zip(*file, z.inflated_));
    // The root folder is whatever precedes data.pkl ("archive/" from torch.save, or the file's stem).
    const ZipMember* pkl = nullptr;
    for (const auto& m : members)
        if (m.name.ends_with("data.pkl") && std::count(m.name.begin(), m.name.end(), '/') <= 1) pkl = &m;
    if (!pkl) return make_error(Errc::format, "{}: zip archive has no <root>/data.pkl (not a torch checkpoint)", z.path_);
    const std::string root = pkl->name.substr(0, pkl->name.size() - 8) + "data/";
    std::map<std::string, ZipMember> storages;
    for (const auto& m : members)
        if (m.name.starts_with(root)) storages[m.name.substr(root.size())] = m;

    PickleVm vm(z.path_, pkl->data, pkl->size);
    NB_TRY(top, vm.run());
    if (top->kind != Kind::dict) return make_error(Errc::format, "{}: data.pkl does not hold a dict", z.path_);
    Obj sd = top;
    for (const char* key : {"params_ema", "params", "state_dict"}) {
        const Obj* v = dict_get(*top, key);
        if (v && (*v)->kind == Kind::dict) { sd = *v, z.unwrapped_ = key; break; }
    }
    for (const auto& [k, v] : top->dict) {
        if (k->kind != Kind::string) continue;
        if (v->kind == Kind::string) z.values_[k->s] = v->s;
        if (v->kind == Kind::integer) z.values_[k->s] = std::to_string(v->i);
    }
    std::vector<std::pair<std::string, TensorRef>> refs;
    flatten(*sd, "", refs);
    for (const auto& [name, ref] : refs) {
        NB_TRY(e, make_entry(z.path_, name, ref, storages));
        z.entries_.push_back(std::move(e));
    }
    std::sort(z.entries_.begin(), z.entries_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (size_t i = 1; i < z.entries_.size(); ++i)
        if (z.entries_[i].name == z.entries_[i - 1].name)
            return make_error(Errc::format, "{}: tensor name '{}' occurs twice", z.path_, z.entries_[i].name);
    return z;
}

const TensorEntry* TorchZip::find(std::string_view name) const {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                               [](const TensorEntry& e, std::string_view n) { return e.name < n; });
    return it != entries_.end() && it->name == name ? &*it : nullptr;
}

Result<Tensor> TorchZip::load_f32(std::string_view name) const {
    const TensorEntry* e = find(name);
    if (!e) return make_error(Errc::missing, "{}: no tensor named '{}'", path_, name);
    return entry_to_f32(*e);
}

}  // namespace nb
