// include/nanobanana/engine.h: tokenize(), the CLIP tokenizer behind the public API.
#include "nanobanana/engine.h"
#include "text/clip_tokenizer.h"

namespace nb {

Result<std::vector<int>> tokenize(const std::string& text, const std::string& vocab_path,
                                  const std::string& model_path) {
    NB_TRY(path, text::find_vocab(vocab_path, model_path));
    NB_TRY(tok, text::ClipTokenizer::load(path));
    return tok.encode_with_special(text);
}

}  // namespace nb
