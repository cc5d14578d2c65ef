// AUTOMATIC1111 prompt syntax (modules/prompt_parser.py @28bd8e14, extra_networks.py):
// attention weights, prompt editing / alternation schedules, AND multi-conditioning, <lora:...> tags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace nb::text {

// One run of prompt text with its attention multiplier; {"BREAK", -1} marks a chunk break.
struct WeightedText {
    std::string text;
    double weight = 1.0;  // float64 products of 1.1, 1/1.1 and user weights, as Python computes them
};

// parse_prompt_attention: (x) *1.1, [x] /1.1, (x:w) *w, \( \) \[ \] \\ literals, unclosed brackets
// apply to the rest, stray ) ] are text, BREAK (whole word) -> {"BREAK", -1} (multiplied inside
// brackets), neighbours with equal weights merged, never empty ({"", 1.0} at least).
// Deviation: a weight A1111 cannot parse as a float (e.g. "(a:1.2.3)") makes A1111 raise; here the
// ":1.2.3)" is kept as text instead.
std::vector<WeightedText> parse_prompt_attention(std::string_view text);

// The text to use up to and including sampling step `end_step` (1-based).
struct ScheduledText {
    int end_step;
    std::string text;
};

// get_learned_conditioning_prompt_schedules([prompt], steps, hires_steps or None, use_old_scheduling):
// [before:after:when], [after:when], [before::when], [a|b|...] alternation, nesting. `when` with a "."
// is a fraction of the steps, otherwise an absolute step (minus `steps` in the hires pass). A prompt
// the grammar rejects (a stray '|', a trailing '\') is returned unchanged as a single entry.
// hires_steps == 0 means "not a hires pass".
std::vector<ScheduledText> prompt_schedules(std::string_view prompt, int steps, int hires_steps = 0,
                                            bool use_old_scheduling = false);

// get_multicond_prompt_list for one prompt: split on the word AND, each part may end in ":weight".
struct AndPart {
    int index;      // into MultiCond::subprompts
    double weight;  // 1.0 when not given
};
struct MultiCond {
    std::vector<std::string> subprompts;  // distinct texts, in first-seen order
    std::vector<AndPart> parts;           // one per AND-separated part, in prompt order
};
MultiCond and_split(std::string_view prompt);

// <lora:name:w> (te = unet = w), <lora:name:te_w:unet_w>, <lora:name> (1.0), also te=/unet= named
// arguments and the <lyco:...> alias, as A1111 extra_networks + extensions-builtin/Lora.
struct LoraTag {
    std::string name;
    double te_weight = 1.0;
    double unet_weight = 1.0;
};
struct LoraExtraction {
    std::string prompt;               // every <word:args> extra-network tag removed (as A1111 does)
    std::vector<LoraTag> loras;
    std::vector<std::string> ignored;  // other extra-network tags removed (e.g. "hypernet:x:1"), for warnings
};
// Error (invalid_argument) when a weight is not a number, naming the tag.
Result<LoraExtraction> extract_lora_tags(std::string_view prompt);

}  // namespace nb::text
