// The pixel stages of A1111's img2img / inpaint / outpaint, integer-exact: Pillow's resampling, paste,
// premultiply, box blur and alpha_composite, OpenCV's 8-bit Gaussian, and A1111's resize_image, flatten,
// crop region and masking.fill on top of them (golden/README.md section 10, "Mask", "Image", "Output").
// Images are 8-bit interleaved: channels 1 = L, 2 = LA, 3 = RGB, 4 = RGBA (straight alpha unless a function
// says "premultiplied").
#pragma once

#include <optional>
#include <vector>

#include "image/image.h"

namespace nb {

enum class Resample { nearest, bilinear, bicubic, lanczos };

// Pillow Image.resize((w, h), f): separable, horizontal pass then vertical, each rounding to uint8 with
// 22-bit integer weights; a pass runs only when its size changes (same size = copy). Supports: bilinear 1,
// bicubic 2 (a = -0.5), lanczos 3, widened by the scale when shrinking. nearest = Pillow NEAREST (source
// index from an accumulated float position). LA / RGBA are resampled premultiplied, as Pillow does.
// w, h <= 0 or an empty input give an empty image.
Image pil_resize(const Image& im, int w, int h, Resample f = Resample::lanczos);
// The same with Pillow's `box=(x0, y0, x1, y1)`: the source region (fractional; may be zero-sized, then it
// extrapolates from the border rows as Pillow does) mapped onto w x h.
Image pil_resize_box(const Image& im, int w, int h, Resample f, double x0, double y0, double x1, double y1);

Image to_l(const Image& im);     // PIL convert("L"): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
Image to_rgb(const Image& im);   // L/LA -> gray replicated; RGBA -> alpha dropped; RGB -> copy
Image to_rgba(const Image& im);  // opaque alpha added (L replicated); RGBA -> copy
Image invert(const Image& im);   // 255 - v on every byte

// RGBA <-> premultiplied RGBa (Pillow): c' = DIV255(c*a); back: alpha 0 or 255 unchanged, else
// c = min(255, 255*c // a). 4 channels only.
Image premultiply(const Image& rgba);
Image unpremultiply(const Image& rgba_premul);

// M1 (A1111 create_binary_mask, mask_round on): an RGBA mask whose alpha is not all 255 -> its alpha,
// thresholded (> 128 -> 255 else 0); any other mask -> convert("L"), not thresholded.
Image mask_to_l(const Image& mask);

// M2: OpenCV GaussianBlur on uint8, (n, 1) with sigma blur_x, then (1, n) with sigma blur_y (blur 0: no
// pass), n = 2*int(2.5*s + 0.5) + 1, fixed-point kernel (8 fractional bits, sum 256), reflect-101 borders.
// Every channel is blurred the same way.
Image gaussian_blur_mask(const Image& l, int blur_x, int blur_y);
// The integer kernel of one such pass (exposed for tests): k_i = round(256*C_i) - round(256*C_{i-1}).
std::vector<int> gaussian_kernel_fixed(int sigma);

// A1111 images.flatten: RGBA pasted with its alpha onto opaque white -> RGB; others -> to_rgb.
Image flatten(const Image& im);

// Pillow Image.paste(src, (x, y)) without a mask: src converted to dst's mode (L replicated, RGB gains an
// opaque alpha, RGBA into RGB keeps the colour bytes); parts outside dst are cut off.
Image paste(const Image& dst, const Image& src, int x, int y);
// Pillow paste with an L mask (same size as src): every byte, alpha included,
// out = DIV255(dst*(255 - m) + src*m); src converted to dst's mode first.
Image paste_masked(const Image& dst, const Image& src, const Image& mask_l, int x, int y);

// A1111 images.resize_image without an upscaler. 0: LANCZOS stretch (mode kept); 1: keep aspect, cover,
// centre-crop; 2: keep aspect, fit, centre, fill the bands by stretching the border rows / columns (Pillow
// BICUBIC of a zero-height box). Modes 1 and 2 return RGB (a gray input is replicated). Any other mode
// is treated as 0.
Image resize_image(int mode, const Image& im, int w, int h);

struct Box {
    int x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // x2, y2 exclusive
    int width() const { return x2 - x1; }
    int height() const { return y2 - y1; }
    bool operator==(const Box&) const = default;
};

// Bounding box of the pixels > 0 (any channel); nullopt when the mask is all zero (PIL getbbox).
std::optional<Box> mask_bbox(const Image& l);
// "Only masked" crop (A1111 get_crop_region_v2 + expand_crop_region): bbox grown by `pad` on every side and
// clamped to the mask, then grown along one axis to the processing aspect W/H, shifted back inside and
// clamped. Precondition: mask_bbox(mask_l) has a value (otherwise the whole mask is returned).
Box crop_region(const Image& mask_l, int pad, int W, int H);
// Pillow crop: pixels outside the image are zero.
Image crop(const Image& im, Box b);

// O1: the overlay A1111 composites over the result: RGBA, colour kept where mask_for_overlay is 0,
// transparent where it is 255: paste of opaque rgb into zero RGBa with mask 255 - M3, then unpremultiply.
Image make_overlay(const Image& rgb, const Image& mask_for_overlay_l);

// I3 (A1111 masking.fill): masked area filled by a cascade of blurred copies of the unmasked area.
// Returns RGB.
Image masking_fill(const Image& rgb, const Image& mask_l);

// Pillow GaussianBlur(radius) on every channel as it is (3 horizontal then 3 vertical box passes of
// fractional radius); exposed for tests. box_blur_radius(r) is that fractional radius.
Image pil_gaussian_blur(const Image& im, float radius);
float box_blur_radius(float radius);

// Pillow Image.alpha_composite(dst, src): both RGBA of the same size.
Image alpha_composite(const Image& dst_rgba, const Image& src_rgba);

// D2: the W x H result back onto the input. paste_to (only masked): resize_image(1, result, box size)
// pasted at (x1, y1) on a transparent canvas of the overlay's size; none (whole picture): the result as
// opaque RGBA. Then alpha_composite(canvas, overlay), alpha dropped -> RGB.
Image apply_overlay(const Image& result_rgb, const std::optional<Box>& paste_to, const Image& overlay_rgba);

}  // namespace nb
