// Python html.unescape() (the CLIP tokenizer's basic_clean applies it twice).
#pragma once

#include <string>
#include <string_view>

namespace nb::text {

// Numeric references (&#NN; &#xHH;, with Python's replacements for invalid code points) are handled
// exactly. Named references use a compact table: the 106 legacy names that HTML5 also accepts without
// ';' (all of Latin-1, with Python's longest-prefix rule) plus ~70 common ones (&hellip; &mdash; &rsquo;
// &trade; &euro; arrows, a few Greek letters...). The remaining ~2000 HTML5 names are left as text.
std::string html_unescape(std::string_view s);

}  // namespace nb::text
