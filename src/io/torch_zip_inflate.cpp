// Raw DEFLATE decoder (RFC 1951) and CRC-32 for deflated zip members of re-zipped .pth files.
// Why our own: nb_io does not link zlib (src/CMakeLists.txt), and torch.save itself never deflates, so
// this only serves small re-packed checkpoints; a plain canonical-Huffman decoder is fast enough.
#include <array>
#include <cstring>

#include "io/torch_zip.h"

namespace nb {
namespace {

constexpr int kMaxBits = 15;
constexpr uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kCodeLenOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// Canonical Huffman table: number of codes per length and symbols ordered by (length, symbol).
struct Huffman {
    std::array<uint16_t, kMaxBits + 1> count{};
    std::array<uint16_t, 320> symbol{};
};

struct Inflater {
    const uint8_t* in;
    size_t n_in, pos = 0;
    uint32_t bitbuf = 0;
    int bitcnt = 0;
    uint8_t* out;
    size_t n_out, out_pos = 0;
    const char* error = nullptr;

    // Returns -1 (and sets error) when input runs out.
    int bits(int need) {
        while (bitcnt < need) {
            if (pos >= n_in) { error = "deflate stream is truncated"; return -1; }
            bitbuf |= uint32_t(in[pos++]) << bitcnt;
            bitcnt += 8;
        }
        int v = int(bitbuf & ((1u << need) - 1));
        bitbuf >>= need;
        bitcnt -= need;
        return v;
    }

    // Codes are read MSB-first one bit at a time against the canonical code ranges of each length.
    int decode(const Huffman& h) {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len <= kMaxBits; ++len) {
            int b = bits(1);
            if (b < 0) return -1;
            code |= b;
            int count = h.count[size_t(len)];
            if (code - first < count) return h.symbol[size_t(index + code - first)];
            index += count, first += count;
            first <<= 1, code <<= 1;
        }
        error = "invalid Huffman code";
        return -1;
    }

    bool build(Huffman& h, const uint8_t* lengths, int n) {
        h.count.fill(0);
        for (int i = 0; i < n; ++i) h.count[lengths[i]]++;
        h.count[0] = 0;
        int left = 1;  // over-subscribed code sets are malformed
        for (int len = 1; len <= kMaxBits; ++len) {
            left = (left << 1) - h.count[size_t(len)];
            if (left < 0) { error = "over-subscribed Huffman code"; return false; }
        }
        std::array<uint16_t, kMaxBits + 2> offs{};
        for (int len = 1; len <= kMaxBits; ++len) offs[size_t(len + 1)] = offs[size_t(len)] + h.count[size_t(len)];
        for (int i = 0; i < n; ++i)
            if (lengths[i]) h.symbol[offs[lengths[i]]++] = uint16_t(i);
        return true;
    }

    bool stored() {
        bitbuf = 0, bitcnt = 0;  // skip to the byte boundary
        if (n_in - pos < 4) { error = "stored block header is truncated"; return false; }
        size_t len = in[pos] | (in[pos + 1] << 8), nlen = in[pos + 2] | (in[pos + 3] << 8);
        pos += 4;
        if (len != (~nlen & 0xffff)) { error = "stored block length check failed"; return false; }
        if (n_in - pos < len) { error = "stored block is truncated"; return false; }
        if (n_out - out_pos < len) { error = "output is longer than declared"; return false; }
        std::memcpy(out + out_pos, in + pos, len);
        pos += len, out_pos += len;
        return true;
    }

    bool codes(const Huffman& lit, const Huffman& dist) {
        for (;;) {
            int sym = decode(lit);
            if (sym < 0) return false;
            if (sym < 256) {
                if (out_pos >= n_out) { error = "output is longer than declared"; return false; }
                out[out_pos++] = uint8_t(sym);
                continue;
            }
            if (sym == 256) return true;
            sym -= 257;
            if (sym >= 29) { error = "invalid length symbol"; return false; }
            int e = bits(kLenExtra[sym]);
            int ds = decode(dist);
            if (e < 0 || ds < 0) return false;
            if (ds >= 30) { error = "invalid distance symbol"; return false; }
            int de = bits(kDistExtra[ds]);
            if (de < 0) return false;
            size_t len = kLenBase[sym] + size_t(e), d = kDistBase[ds] + size_t(de);
            if (d > out_pos) { error = "distance reaches before the start of the output"; return false; }
            if (n_out - out_pos < len) { error = "output is longer than declared"; return false; }
            for (size_t i = 0; i < len; ++i, ++out_pos) out[out_pos] = out[out_pos - d];  // may overlap
        }
    }

    bool fixed() {
        uint8_t l[288 + 30];
        for (int i = 0; i < 288; ++i) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
        for (int i = 0; i < 30; ++i) l[288 + i] = 5;
        Huffman lit, dist;
        return build(lit, l, 288) && build(dist, l + 288, 30) && codes(lit, dist);
    }

    bool dynamic() {
        int nlen = bits(5), ndist = bits(5), ncode = bits(4);
        if (nlen < 0 || ndist < 0 || ncode < 0) return false;
        nlen += 257, ndist += 1, ncode += 4;
        if (nlen > 286 || ndist > 30) { error = "bad dynamic block counts"; return false; }
        uint8_t l[320] = {};
        for (int i = 0; i < ncode; ++i) {
            int v = bits(3);
            if (v < 0) return false;
            l[kCodeLenOrder[i]] = uint8_t(v);
        }
        Huffman lencode, lit, dist;
        if (!build(lencode, l, 19)) return false;
        std::memset(l, 0, sizeof l);
        for (int i = 0; i < nlen + ndist;) {
            int sym = decode(lencode);
            if (sym < 0) return false;
            if (sym < 16) { l[i++] = uint8_t(sym); continue; }
            int rep = sym == 16 ? bits(2) + 3 : sym == 17 ? bits(3) + 3 : bits(7) + 11;
            if (error) return false;
            if (sym == 16 && i == 0) { error = "repeat with no previous length"; return false; }
            uint8_t v = sym == 16 ? l[i - 1] : 0;
            if (i + rep > nlen + ndist) { error = "code lengths overflow"; return false; }
            while (rep--) l[i++] = v;
        }
        return build(lit, l, nlen) && build(dist, l + nlen, ndist) && codes(lit, dist);
    }
};

}  // namespace

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), checked on inflated members only: stored members
// are mmapped views and checking them would read multi-GB checkpoints at open.
uint32_t zip_crc32(const uint8_t* p, size_t n) {
    static const auto table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

Result<std::vector<uint8_t>> inflate_raw(std::span<const uint8_t> in, size_t out_size) {
    std::vector<uint8_t> out(out_size);
    Inflater z{in.data(), in.size(), 0, 0, 0, out.data(), out.size()};
    for (int last = 0; !last;) {
        last = z.bits(1);
        int type = z.bits(2);
        if (last < 0 || type < 0) break;
        bool ok = type == 0 ? z.stored() : type == 1 ? z.fixed() : type == 2 ? z.dynamic() : false;
        if (!ok) {
            if (!z.error) z.error = "invalid block type 3";
            break;
        }
    }
    if (z.error) return make_error(Errc::format, "{}", z.error);
    if (z.out_pos != out_size)
        return make_error(Errc::format, "inflates to {} bytes, {} declared", z.out_pos, out_size);
    return out;
}

}  // namespace nb
