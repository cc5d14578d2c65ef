// JPEG decoding through libjpeg(-turbo); reading a file whole (codec.h); read_image / decode_image: PNG
// or JPEG chosen by the first bytes.
// libjpeg's default error handler calls exit(); ours longjmps back to decode(), which (like png.cpp) declares
// no C++ objects after setjmp: everything it owns lives in JpegState, released by its destructor.
// clang-format off
#include <cstdio>    // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>  // after jpeglib.h: the message codes (JWRN_JPEG_EOF)
// clang-format on

#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>

#include "image/codec.h"
#include "image/image.h"

namespace nb {

namespace {

constexpr JDIMENSION kMaxSide = 32768;
constexpr uintmax_t kMaxFileBytes = 1ull << 30;
constexpr long kMaxDecoderBytes = 512l << 20;  // libjpeg's own buffers (progressive coefficients: ~6 bytes a pixel)
constexpr int kMaxScans = 100;                 // encoders write ~10 (jpegtran) to ~60 (mozjpeg) scans

struct JpegErr {
    jpeg_error_mgr mgr;  // first member: libjpeg hands us a pointer to it
    std::jmp_buf jump;
    char msg[JMSG_LENGTH_MAX] = "unknown libjpeg error";
};

void on_error_exit(j_common_ptr cinfo) {
    auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->msg);
    std::longjmp(e->jump, 1);
}

// Warnings are corrupt-data notices; a file that ends early is decoded by libjpeg as grey padding, which
// Pillow refuses ("image file is truncated") and so do we. Other warnings (e.g. extraneous bytes between
// markers) are ignored silently, as viewers do.
void on_emit_message(j_common_ptr cinfo, int level) {
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error_exit(cinfo);
}

// Progressive files: input_scan_number counts the scans read so far.
void on_progress(j_common_ptr cinfo) {
    auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (!cinfo->is_decompressor || !d->progressive_mode || d->input_scan_number <= kMaxScans) return;
    auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
    std::snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", kMaxScans);
    std::longjmp(e->jump, 1);
}

struct JpegState {
    jpeg_decompress_struct cinfo{};
    jpeg_progress_mgr progress{};
    JpegErr err;
    bool created = false;
    std::span<const uint8_t> bytes;
    Image img;
    ~JpegState() {
        if (created) jpeg_destroy_decompress(&cinfo);
    }
};

// Returns false with st.err.msg set on any libjpeg error.
bool decode(JpegState& st) {
    st.cinfo.err = jpeg_std_error(&st.err.mgr);
    st.err.mgr.error_exit = on_error_exit;
    st.err.mgr.emit_message = on_emit_message;
    if (setjmp(st.err.jump)) return false;
    jpeg_create_decompress(&st.cinfo);
    st.created = true;
    jpeg_mem_src(&st.cinfo, st.bytes.data(), static_cast<unsigned long>(st.bytes.size()));
    jpeg_read_header(&st.cinfo, TRUE);
    const J_COLOR_SPACE cs = st.cinfo.jpeg_color_space;
    if (cs == JCS_CMYK || cs == JCS_YCCK) {
        std::snprintf(st.err.msg, sizeof st.err.msg, "CMYK JPEG images are not supported");
        return false;
    }
    st.cinfo.out_color_space = JCS_RGB;  // grayscale and YCbCr both come out as RGB
    if (st.cinfo.image_width > kMaxSide || st.cinfo.image_height > kMaxSide ||
        uint64_t(st.cinfo.image_width) * st.cinfo.image_height > kMaxDecodedPixels) {
        std::snprintf(st.err.msg, sizeof st.err.msg, "image too large (%ux%u)", st.cinfo.image_width,
                      st.cinfo.image_height);
        return false;
    }
    // A Huffman-coded file spends at least one bit on every 8x8 block of its first component, so fewer than
    // pixels / 512 bytes cannot be the whole image: refused before libjpeg sizes (and, progressive, zeroes) its
    // buffers for the declared size. Fuzzing found a 189-byte progressive file declaring 12544x4608 that made
    // it allocate and clear ~350 MB before reaching the end of the data (0.3-1.5 s).
    if (!st.cinfo.arith_code &&
        uint64_t(st.bytes.size()) * 512 < uint64_t(st.cinfo.image_width) * st.cinfo.image_height) {
        std::snprintf(st.err.msg, sizeof st.err.msg, "truncated: %zu bytes cannot hold a %ux%u image", st.bytes.size(),
                      st.cinfo.image_width, st.cinfo.image_height);
        return false;
    }
    // A progressive file keeps every coefficient of the image until its last scan (about 6 bytes a pixel at
    // 4:4:4): memory beyond kMaxDecoderBytes is refused up front (libjpeg has no backing store here), and a
    // file with more scans than any encoder writes is refused while it decodes.
    st.cinfo.mem->max_memory_to_use = kMaxDecoderBytes;
    st.progress.progress_monitor = on_progress;
    st.cinfo.progress = &st.progress;
    jpeg_start_decompress(&st.cinfo);
    if (st.cinfo.output_components != 3) {
        std::snprintf(st.err.msg, sizeof st.err.msg, "unexpected %d output components",
                      st.cinfo.output_components);
        return false;
    }
    st.img.width = int(st.cinfo.output_width), st.img.height = int(st.cinfo.output_height),
    st.img.channels = 3;
    st.img.pixels.resize(size_t(st.img.width) * size_t(st.img.height) * 3);
    while (st.cinfo.output_scanline < st.cinfo.output_height) {
        JSAMPROW row = st.img.at(0, int(st.cinfo.output_scanline));
        jpeg_read_scanlines(&st.cinfo, &row, 1);
    }
    jpeg_finish_decompress(&st.cinfo);
    return true;
}

}  // namespace

Result<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return make_error(Errc::io, "{}: cannot open: {}", path, std::strerror(errno));
    f.seekg(0, std::ios::end);
    const auto size = f.tellg();
    if (size < 0) return make_error(Errc::io, "{}: cannot read", path);
    if (uintmax_t(size) > kMaxFileBytes)
        return make_error(Errc::invalid_argument, "{}: file too large", path);
    f.seekg(0);
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    if (!f.read(reinterpret_cast<char*>(bytes.data()), size))
        return make_error(Errc::io, "{}: cannot read", path);
    return bytes;
}

bool is_jpeg(std::span<const uint8_t> b) {
    return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

Result<Image> decode_jpeg(std::span<const uint8_t> bytes, const std::string& what) {
    if (!is_jpeg(bytes)) return make_error(Errc::format, "{}: not a JPEG file (bad signature)", what);
    JpegState st;
    st.bytes = bytes;
    if (!decode(st)) return make_error(Errc::format, "{}: invalid or truncated JPEG: {}", what, st.err.msg);
    return std::move(st.img);
}

Result<Image> read_jpeg(const std::string& path) {
    NB_TRY(bytes, read_file_bytes(path));
    return decode_jpeg(bytes, path);
}

Result<Image> decode_image(std::span<const uint8_t> bytes, const std::string& what) {
    if (is_png(bytes)) return decode_png(bytes, what);
    if (is_jpeg(bytes)) return decode_jpeg(bytes, what);
    return make_error(Errc::format, "{}: not a PNG or JPEG image", what);
}

Result<Image> read_image(const std::string& path) {
    NB_TRY(bytes, read_file_bytes(path));
    return decode_image(bytes, path);
}

}  // namespace nb
