// A1111 "parameters" infotext: the text chunk A1111's PNG Info tab and civitai read.
//   <prompt>
//   Negative prompt: <negative>
//   Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x512, ...
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace nb::pipeline {

struct Infotext {
    std::string prompt;
    std::string negative_prompt;
    std::vector<std::pair<std::string, std::string>> params;  // in order

    std::string get(const std::string& key, const std::string& fallback = "") const;
    void set(const std::string& key, const std::string& value);  // replaces or appends
    std::string format() const;
    static Infotext parse(const std::string& text);
};

// The "Key: value" pairs of an infotext's last line as A1111's re_param finds them (values raw: quoted ones still
// quoted, trailing spaces kept). Linear time, no recursion.
std::vector<std::pair<std::string, std::string>> scan_params(std::string_view line);

// A1111 number formatting for CFG scale / denoising strength: "7", "7.5", "0.35".
std::string format_number(double v);

}  // namespace nb::pipeline
