// A1111 prompt syntax (text/prompt_*): emphasis, BREAK, [from:to:when] scheduling, [a|b] alternation, AND with
// weights, <lora:...> tags. Any text parses; the results keep their documented shape.
#include <cstdint>
#include <string_view>

#include "../fuzz_input.h"
#include "text/prompt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    // The first byte picks the step count (1..64) and the hires pass, as the UI would.
    int steps = 1 + data[0] % 64;
    int hires_steps = (data[1] & 1) ? 1 + data[1] / 2 % 32 : 0;
    std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);

    auto pieces = nb::text::parse_prompt_attention(text);
    nb::fuzz::require(!pieces.empty(), "parse_prompt_attention is never empty");

    auto schedules = nb::text::prompt_schedules(text, steps, hires_steps, data[1] & 2);
    nb::fuzz::require(!schedules.empty(), "a prompt has at least one schedule entry");
    for (size_t i = 1; i < schedules.size(); ++i)
        nb::fuzz::require(schedules[i - 1].end_step < schedules[i].end_step, "schedule steps increase");
    for (const auto& s : schedules) (void)nb::text::parse_prompt_attention(s.text);

    auto multi = nb::text::and_split(text);
    for (const auto& part : multi.parts)
        nb::fuzz::require(part.index >= 0 && size_t(part.index) < multi.subprompts.size(), "AND part index");

    if (auto tags = nb::text::extract_lora_tags(text))
        nb::fuzz::require(tags->prompt.size() <= text.size(), "removing tags never adds text");
    return 0;
}
