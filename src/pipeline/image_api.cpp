// include/nanobanana/engine.h, image files: the public names of the image layer's readers (kernel-free, so the
// A1111 request parser that uses them also builds into the fuzz targets).
#include "image/image.h"
#include "nanobanana/engine.h"

namespace nb {

Result<Image> load_png(const std::string& path) { return read_png(path); }
Result<Image> load_image(const std::string& path) { return read_image(path); }
Result<Image> decode_image(const std::vector<uint8_t>& bytes, const std::string& what) {
    return decode_image(std::span<const uint8_t>(bytes), what);
}

}  // namespace nb
