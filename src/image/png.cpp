// PNG read/write through libpng's full API (not the simplified one: that treats 16-bit files as linear
// light and gamma-converts them, which would change pixel values compared with PIL/A1111).
// libpng reports errors by longjmp: every object it can jump over lives in a *State struct owned by the
// caller, and the functions holding setjmp declare no C++ objects after it.
// Reading decodes from memory (a file is read whole first: codec.h), so files and in-memory images
// (decode_image) share one decoder.
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>

#include "image/codec.h"
#include "image/image.h"

namespace nb {

namespace {

constexpr png_uint_32 kMaxSide = 32768;
constexpr png_alloc_size_t kMaxChunkBytes = 16u << 20;  // one ancillary chunk, decompressed (text, ICC, ...)
constexpr png_uint_32 kMaxAncillaryChunks = 1000;        // text / sPLT / unknown chunks kept per file

struct PngCtx {
    char msg[256] = "unknown libpng error";
};

void on_error(png_structp png, png_const_charp msg) {
    auto* c = static_cast<PngCtx*>(png_get_error_ptr(png));
    std::snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}  // e.g. "iCCP: known incorrect sRGB profile": harmless

std::string latin1_to_utf8(const char* s) {
    std::string out;
    for (; *s; ++s) {
        auto c = static_cast<unsigned char>(*s);
        if (c < 0x80) out.push_back(char(c));
        else out.push_back(char(0xC0 | (c >> 6))), out.push_back(char(0x80 | (c & 0x3F)));
    }
    return out;
}

// Decodes UTF-8 into code points; nullopt when malformed.
std::optional<std::vector<uint32_t>> utf8_decode(const std::string& s) {
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (n < 0 || i + size_t(n) >= s.size()) return std::nullopt;
        uint32_t cp = n == 0 ? c : c & (0x3F >> n);
        for (int k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + size_t(k)]);
            if ((d >> 6) != 2) return std::nullopt;
            cp = (cp << 6) | (d & 0x3F);
        }
        cps.push_back(cp);
        i += size_t(n) + 1;
    }
    return cps;
}

// UTF-8 -> Latin-1 when every character fits; nullopt otherwise (the chunk then becomes iTXt).
std::optional<std::string> utf8_to_latin1(const std::string& s) {
    auto cps = utf8_decode(s);
    if (!cps) return std::nullopt;
    std::string out;
    for (uint32_t cp : *cps) {
        if (cp > 0xFF) return std::nullopt;
        out.push_back(char(cp));
    }
    return out;
}

struct ReadState {
    std::span<const uint8_t> src;  // the whole PNG
    size_t pos = 0;                // next byte libpng reads
    png_structp png = nullptr;
    png_infop info = nullptr, end = nullptr;
    Image img;
    std::vector<png_bytep> rows;
    std::map<std::string, std::string> text;
    PngCtx ctx;
    ~ReadState() {
        if (png) png_destroy_read_struct(&png, &info, &end);
    }
};

// libpng's read callback over ReadState::src; running out of bytes is a libpng error (a truncated file).
void read_from_memory(png_structp png, png_bytep out, size_t n) {
    auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
    if (n > st->src.size() - st->pos) png_error(png, "unexpected end of data");
    std::memcpy(out, st->src.data() + st->pos, n);
    st->pos += n;
}

void collect_text(ReadState& st, png_infop info) {
    png_textp t = nullptr;
    int n = png_get_text(st.png, info, &t, nullptr);
    for (int i = 0; i < n; ++i) {
        bool itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE || t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        std::string value = itxt ? std::string(t[i].text ? t[i].text : "", t[i].itxt_length)
                                 : latin1_to_utf8(t[i].text ? t[i].text : "");
        st.text[latin1_to_utf8(t[i].key)] = std::move(value);
    }
}

bool decode(ReadState& st) {
    if (setjmp(png_jmpbuf(st.png))) return false;
    png_set_read_fn(st.png, &st, read_from_memory);
    png_set_user_limits(st.png, kMaxSide, kMaxSide);
    // A chunk's declared length is allocated (and cleared) before its bytes are read: without a cap a 200-byte
    // file declaring a 1.4 GB tEXt chunk takes seconds and gigabytes (found by fuzz/targets/png.cpp). Text chunks
    // of real files (A1111's parameters) are kilobytes; libpng skips a larger ancillary chunk with a warning.
    png_set_chunk_malloc_max(st.png, kMaxChunkBytes);
    png_set_chunk_cache_max(st.png, kMaxAncillaryChunks);
    png_read_info(st.png, st.info);
    png_set_expand(st.png);  // palette -> RGB, gray < 8 bit -> 8 bit, tRNS -> alpha channel
    png_set_strip_16(st.png);
    png_set_gray_to_rgb(st.png);
    png_set_interlace_handling(st.png);
    png_read_update_info(st.png, st.info);
    const png_uint_32 w = png_get_image_width(st.png, st.info), h = png_get_image_height(st.png, st.info);
    const int ch = png_get_channels(st.png, st.info);
    if (uint64_t(w) * h > kMaxDecodedPixels) png_error(st.png, "image has too many pixels");
    if (ch != 3 && ch != 4) png_error(st.png, "unexpected channel count after conversion");
    st.img.width = int(w), st.img.height = int(h), st.img.channels = ch;
    st.img.pixels.resize(size_t(w) * h * size_t(ch));
    st.rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) st.rows[y] = st.img.at(0, int(y));
    png_read_image(st.png, st.rows.data());
    png_read_end(st.png, st.end);
    collect_text(st, st.info);
    collect_text(st, st.end);
    return true;
}

// Every chunk's declared length must fit in the bytes that follow it. libpng allocates and clears a text chunk's
// declared length before reading it (png_set_chunk_malloc_max does not stop that in Debian's libpng 1.6.39): a
// 200-byte file declaring a 1.7 GB tEXt chunk took 25 s and 1.7 GB (found by fuzz/targets/png.cpp).
Result<void> check_chunk_lengths(std::span<const uint8_t> bytes, const std::string& what) {
    const auto be32 = [&](size_t at) {  // PNG's big-endian 32-bit fields
        return uint32_t(bytes[at]) << 24 | uint32_t(bytes[at + 1]) << 16 | uint32_t(bytes[at + 2]) << 8 |
               uint32_t(bytes[at + 3]);
    };
    size_t pos = 8;  // after the signature
    while (pos + 8 <= bytes.size()) {
        const uint32_t len = be32(pos);
        const std::string type(reinterpret_cast<const char*>(bytes.data() + pos + 4), 4);
        if (uint64_t(len) + 12 > bytes.size() - pos)
            return make_error(Errc::format, "{}: invalid or truncated PNG: chunk '{}' declares {} bytes, {} left", what,
                              std::all_of(type.begin(), type.end(), [](char c) { return std::isalpha(uint8_t(c)); })
                                  ? type : "?",
                              len, bytes.size() - pos - 8);
        if (type == "IHDR" && len >= 8) {  // libpng would refuse it too, but only as "Invalid IHDR data"
            const uint32_t w = be32(pos + 8), h = be32(pos + 12);
            if (w > kMaxSide || h > kMaxSide || uint64_t(w) * h > kMaxDecodedPixels)
                return make_error(Errc::format, "{}: the PNG declares {}x{} pixels; at most {} per side and {} in all are read",
                                  what, w, h, kMaxSide, kMaxDecodedPixels);
        }
        if (type == "IEND") break;
        pos += size_t(len) + 12;
    }
    return {};
}

// Decodes `bytes` into st (pixels and text chunks); `what` names the source in errors.
Result<void> decode_into(std::span<const uint8_t> bytes, const std::string& what, ReadState& st) {
    if (!is_png(bytes)) return make_error(Errc::format, "{}: not a PNG file (bad signature)", what);
    if (auto ok = check_chunk_lengths(bytes, what); !ok) return ok;
    st.src = bytes;
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.ctx, on_error, on_warning);
    if (st.png) st.info = png_create_info_struct(st.png), st.end = png_create_info_struct(st.png);
    if (!st.png || !st.info || !st.end)
        return make_error(Errc::internal, "{}: libpng initialisation failed", what);
    if (!decode(st)) return make_error(Errc::format, "{}: invalid or truncated PNG: {}", what, st.ctx.msg);
    return {};
}

struct WriteState {
    FILE* f = nullptr;
    png_structp png = nullptr;
    png_infop info = nullptr;
    std::vector<std::string> strings;  // keys and values the png_text entries point into
    std::vector<png_text> texts;
    std::vector<png_bytep> rows;
    PngCtx ctx;
    ~WriteState() {
        if (png) png_destroy_write_struct(&png, &info);
        if (f) std::fclose(f);
    }
};

bool encode(WriteState& st, const Image& img, int color_type) {
    if (setjmp(png_jmpbuf(st.png))) return false;
    png_init_io(st.png, st.f);
    png_set_IHDR(st.png, st.info, png_uint_32(img.width), png_uint_32(img.height), 8, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!st.texts.empty()) png_set_text(st.png, st.info, st.texts.data(), int(st.texts.size()));
    png_write_info(st.png, st.info);
    png_write_image(st.png, st.rows.data());
    png_write_end(st.png, st.info);
    return true;
}

// Fills st.texts from UTF-8 pairs: tEXt when Latin-1 suffices, else iTXt.
Result<void> prepare_text(const std::string& path, const TextChunks& chunks, WriteState& st) {
    st.strings.reserve(chunks.size() * 2);
    for (const auto& [key, value] : chunks) {
        auto k = utf8_to_latin1(key);
        if (!k || k->empty() || k->size() > 79)
            return make_error(Errc::invalid_argument, "{}: PNG text key '{}' must be 1-79 Latin-1 characters", path,
                              key);
        auto v = utf8_to_latin1(value);
        if (!v && !utf8_decode(value))
            return make_error(Errc::invalid_argument, "{}: PNG text '{}' is not valid UTF-8", path, key);
        st.strings.push_back(*k);
        st.strings.push_back(v ? *v : value);
        png_text t{};
        t.compression = v ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        t.key = st.strings[st.strings.size() - 2].data();
        t.text = st.strings.back().data();
        if (v) t.text_length = st.strings.back().size();
        else t.itxt_length = st.strings.back().size();
        st.texts.push_back(t);
    }
    return {};
}

}  // namespace

bool is_png(std::span<const uint8_t> bytes) {
    return bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0;
}

Result<Image> decode_png(std::span<const uint8_t> bytes, const std::string& what) {
    ReadState st;
    if (auto r = decode_into(bytes, what, st); !r) return std::unexpected(r.error());
    return std::move(st.img);
}

Result<Image> read_png(const std::string& path) {
    NB_TRY(bytes, read_file_bytes(path));
    return decode_png(bytes, path);
}

Result<std::map<std::string, std::string>> decode_png_text(std::span<const uint8_t> bytes, const std::string& what) {
    ReadState st;
    if (auto r = decode_into(bytes, what, st); !r) return std::unexpected(r.error());
    return std::move(st.text);
}

Result<std::map<std::string, std::string>> read_png_text(const std::string& path) {
    NB_TRY(bytes, read_file_bytes(path));
    return decode_png_text(bytes, path);
}

Result<void> write_png(const std::string& path, const Image& img, const TextChunks& text_chunks) {
    static constexpr int kColor[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                      PNG_COLOR_TYPE_RGB_ALPHA};
    if (img.width <= 0 || img.height <= 0 || img.channels < 1 || img.channels > 4 ||
        img.pixels.size() != size_t(img.width) * size_t(img.height) * size_t(img.channels))
        return make_error(Errc::invalid_argument, "{}: cannot write a {}x{}x{} image with {} bytes", path, img.width,
                          img.height, img.channels, img.pixels.size());
    WriteState st;
    if (auto r = prepare_text(path, text_chunks, st); !r) return std::unexpected(r.error());
    for (int y = 0; y < img.height; ++y) st.rows.push_back(const_cast<png_bytep>(img.at(0, y)));

    std::string tmp = path + ".tmpXXXXXX";
    int fd = mkstemp(tmp.data());
    if (fd < 0) return make_error(Errc::io, "{}: cannot create a temporary file: {}", path, std::strerror(errno));
    fchmod(fd, 0644);  // mkstemp creates 0600; an image is not a secret
    st.f = fdopen(fd, "wb");
    if (!st.f) ::close(fd);
    st.png = st.f ? png_create_write_struct(PNG_LIBPNG_VER_STRING, &st.ctx, on_error, on_warning) : nullptr;
    if (st.png) st.info = png_create_info_struct(st.png);
    errno = 0;
    bool ok = st.info && encode(st, img, kColor[img.channels]);
    int err = ok ? 0 : errno;  // libpng reports a failed fwrite as "Write Error"; errno says why (ENOSPC, EFBIG)
    ok = ok && std::fflush(st.f) == 0 && fsync(fileno(st.f)) == 0;
    if (!ok && !err) err = errno;
    if (st.f) ok = (std::fclose(st.f) == 0) && ok, st.f = nullptr;
    if (!ok && !err) err = errno;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        if (!err) err = errno;
        ::unlink(tmp.c_str());
        return make_error(Errc::io, "{}: write failed: {}", path, err ? std::strerror(err) : st.ctx.msg);
    }
    return {};
}

Result<std::vector<uint8_t>> encode_png(const Image& img, const TextChunks& text_chunks) {
    static constexpr int kColor[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                      PNG_COLOR_TYPE_RGB_ALPHA};
    if (img.width <= 0 || img.height <= 0 || img.channels < 1 || img.channels > 4 ||
        img.pixels.size() != size_t(img.width) * size_t(img.height) * size_t(img.channels))
        return make_error(Errc::invalid_argument, "cannot encode a {}x{}x{} image with {} bytes", img.width,
                          img.height, img.channels, img.pixels.size());
    WriteState st;
    if (auto r = prepare_text("PNG", text_chunks, st); !r) return std::unexpected(r.error());
    for (int y = 0; y < img.height; ++y) st.rows.push_back(const_cast<png_bytep>(img.at(0, y)));
    char* buf = nullptr;
    size_t size = 0;
    st.f = open_memstream(&buf, &size);  // the same writer as write_png, into memory
    if (!st.f) return make_error(Errc::internal, "PNG: out of memory");
    st.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st.ctx, on_error, on_warning);
    if (st.png) st.info = png_create_info_struct(st.png);
    bool ok = st.info && encode(st, img, kColor[img.channels]);
    ok = (std::fclose(st.f) == 0) && ok;
    st.f = nullptr;
    std::vector<uint8_t> out;
    if (ok) out.assign(reinterpret_cast<uint8_t*>(buf), reinterpret_cast<uint8_t*>(buf) + size);
    std::free(buf);
    if (!ok) return make_error(Errc::internal, "PNG encoding failed: {}", st.ctx.msg);
    return out;
}

}  // namespace nb
