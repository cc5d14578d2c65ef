// Textual-inversion embeddings (issue 24) on the demo model (CLIP width 64): an embedding holding the token
// rows of words gives the image of those words (plain and with emphasis, from .safetensors and from torch .pt /
// .bin files written by torch.save: tools/ti_fixtures), a multi-vector embedding moves the chunk boundary, a
// wrong-width or unreadable file is skipped with a warning naming it, and the infotext carries A1111's
// "TI hashes" through a round trip.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/hash.h"
#include "io/safetensors.h"
#include "io/torch_zip.h"
#include "nanobanana/a1111.h"
#include "nanobanana/engine.h"
#include "pipeline/embeddings.h"
#include "pipeline/infotext.h"
#include "text/chunking.h"
#include "text/clip_tokenizer.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

const fs::path kDemo = (fs::path(__FILE__).parent_path() / "../../models/demo").lexically_normal();
const fs::path kFixtures = fs::path(NB_TEST_DATA_DIR) / "ti";
constexpr const char* kTokenTable = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";

const text::ClipTokenizer& tokenizer() {
    static const auto t = text::ClipTokenizer::load((kDemo / "vocab.json").string());
    return *t;
}

// The demo checkpoint's token-embedding rows of `words` (one token each), [words, 64] as F32 bytes.
std::vector<float> token_rows(const std::vector<std::string>& words) {
    auto st = SafeTensors::open((kDemo / "demo.safetensors").string());
    EXPECT_TRUE(st) << st.error().message;
    auto table = st->load_f32(kTokenTable);
    EXPECT_TRUE(table);
    std::vector<float> out;
    for (const auto& w : words) {
        const auto id = tokenizer().token_id(w + "</w>");
        EXPECT_TRUE(id) << w;
        const float* row = table->data() + int64_t(*id) * table->dim(1);
        out.insert(out.end(), row, row + table->dim(1));
    }
    return out;
}

void write_embedding(const fs::path& path, const std::vector<float>& v, int64_t width, const std::string& key = "emb_params") {
    TensorToWrite t{key, "F32", {int64_t(v.size()) / width, width}, std::vector<uint8_t>(v.size() * 4)};
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    ASSERT_TRUE(write_safetensors(path.string(), {t}));
}

fs::path fresh_dir(const std::string& name) {
    const fs::path d = fs::path(::testing::TempDir()) / ("nb_ti_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::unique_ptr<Engine> load(const std::string& embedding_dir) {
    LoadOptions o;
    o.model_path = (kDemo / "demo.safetensors").string();
    o.embedding_dir = embedding_dir;
    auto e = Engine::load(o);
    EXPECT_TRUE(e) << e.error().message;
    return e ? std::move(*e) : nullptr;
}

GeneratedImage generate(Engine& e, const std::string& prompt, const std::string& negative = "") {
    GenerateParams p;
    p.prompt = prompt;
    p.negative_prompt = negative;
    p.width = p.height = 64;
    p.steps = 4;
    p.seed = 11;
    auto r = e.generate(p);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->front() : GeneratedImage{};
}

// ---------------------------------------------------------------------------------------------- chunking

TEST(Embedding, MultiVectorEmbeddingMovesTheChunkBoundary) {
    text::EmbeddingNames names;
    names.add({tokenizer().encode("circle"), 3, 7});
    text::ChunkOptions opt;
    opt.embeddings = &names;
    std::string prompt;
    for (int i = 0; i < 73; ++i) prompt += "red ";
    // 73 words + 3 vectors > 75: the embedding starts chunk 2; without it the word fits in chunk 1.
    const auto with = text::tokenize_weighted(tokenizer(), prompt + "circle", opt);
    const auto without = text::tokenize_weighted(tokenizer(), prompt + "circle");
    ASSERT_EQ(without.chunks.size(), 1u);
    EXPECT_EQ(without.token_count, 74);
    ASSERT_EQ(with.chunks.size(), 2u);
    EXPECT_EQ(with.token_count, 75 + 3);
    EXPECT_TRUE(with.chunks[0].fixes.empty());
    EXPECT_EQ(with.chunks[0].tokens[74], tokenizer().eos());  // padded after the 73 words
    ASSERT_EQ(with.chunks[1].fixes.size(), 1u);
    EXPECT_EQ(with.chunks[1].fixes[0].position, 1);
    EXPECT_EQ(with.chunks[1].fixes[0].index, 7);
    for (int i = 1; i <= 3; ++i) EXPECT_EQ(with.chunks[1].tokens[size_t(i)], 0) << i;
    EXPECT_EQ(with.chunks[1].tokens[4], tokenizer().eos());
    // Two vectors fit: 73 + 2 = 75 in chunk 1.
    text::EmbeddingNames two;
    two.add({tokenizer().encode("circle"), 2, 0});
    opt.embeddings = &two;
    const auto fits = text::tokenize_weighted(tokenizer(), prompt + "circle", opt);
    ASSERT_EQ(fits.chunks.size(), 1u);
    EXPECT_EQ(fits.token_count, 75);
    EXPECT_EQ(fits.chunks[0].fixes[0].position, 74);
}

TEST(Embedding, EmphasisWeighsEveryVectorAndLongerNamesWin) {
    text::EmbeddingNames names;
    names.add({tokenizer().encode("red"), 1, 0});
    names.add({tokenizer().encode("red circle"), 4, 1});  // tried first: longer
    text::ChunkOptions opt;
    opt.embeddings = &names;
    const auto pc = text::tokenize_weighted(tokenizer(), "a (red circle:1.3) on red", opt);
    ASSERT_EQ(pc.chunks.size(), 1u);
    const auto& c = pc.chunks[0];
    ASSERT_EQ(c.fixes.size(), 2u);
    EXPECT_EQ(c.fixes[0].index, 1);
    EXPECT_EQ(c.fixes[0].position, 2);
    for (int i = 2; i < 6; ++i) EXPECT_FLOAT_EQ(c.multipliers[size_t(i)], 1.3f) << i;
    EXPECT_EQ(c.fixes[1].index, 0);
    EXPECT_EQ(c.fixes[1].position, 7);  // after "on"
    EXPECT_EQ(pc.token_count, 1 + 4 + 1 + 1);
}

TEST(Embedding, CommaBacktrackLeavesTheVectorsBehindAsA1111) {
    // A1111 tokenize_line moves the tokens after the last comma to the next chunk but keeps chunk.fixes: the
    // vectors stay at their old place (now padding) and the moved slots are plain token 0.
    text::EmbeddingNames names;
    names.add({tokenizer().encode("circle"), 2, 0});
    text::ChunkOptions opt;
    opt.embeddings = &names;
    std::string prompt;
    for (int i = 0; i < 70; ++i) prompt += "red ";
    const auto pc = text::tokenize_weighted(tokenizer(), prompt + ", circle blue blue blue", opt);
    ASSERT_EQ(pc.chunks.size(), 2u);
    ASSERT_EQ(pc.chunks[0].fixes.size(), 1u);
    EXPECT_EQ(pc.chunks[0].fixes[0].position, 72);
    EXPECT_EQ(pc.chunks[0].tokens[72], tokenizer().eos());
    EXPECT_TRUE(pc.chunks[1].fixes.empty());
    EXPECT_EQ(pc.chunks[1].tokens[1], 0);
    EXPECT_EQ(pc.chunks[1].tokens[2], 0);
    EXPECT_EQ(pc.chunks[1].tokens[5], int(*tokenizer().token_id("blue</w>")));
}

// ------------------------------------------------------------------------------------------- the images

TEST(Embedding, WordRowsGiveTheImageOfTheWords) {
    const fs::path dir = fresh_dir("words");
    write_embedding(dir / "redcircle.safetensors", token_rows({"red", "circle"}), 64);
    auto e = load(dir.string());
    ASSERT_TRUE(e);
    ASSERT_EQ(e->embeddings().size(), 1u);
    EXPECT_EQ(e->embeddings()[0].vectors, 2);
    EXPECT_EQ(e->embeddings()[0].shape, 64);
    const auto words = generate(*e, "a red circle on a blue background");
    const auto emb = generate(*e, "a redcircle on a blue background");
    EXPECT_EQ(emb.image.pixels, words.image.pixels);
    EXPECT_EQ(emb.latent, words.latent);
    auto plain = load("");  // without the embedding the word is text, and the picture differs
    ASSERT_TRUE(plain);
    EXPECT_NE(generate(*plain, "a redcircle on a blue background").latent, words.latent);
    // Emphasis applies to the vectors as to the words.
    EXPECT_EQ(generate(*e, "a (redcircle:1.3) on a blue background").latent,
              generate(*e, "a (red circle:1.3) on a blue background").latent);
    EXPECT_NE(generate(*e, "a (redcircle:1.3) on a blue background").latent, words.latent);
    // Infotext: A1111's TI hashes (first 12 hex of the file's sha256), quoted because of the ':'.
    const std::string hash = sha256_file((dir / "redcircle.safetensors").string())->substr(0, 12);
    EXPECT_NE(emb.parameters.find("TI hashes: \"redcircle: " + hash + "\""), std::string::npos) << emb.parameters;
    EXPECT_EQ(words.parameters.find("TI hashes"), std::string::npos);
    // Round trip: parsed back, and the same image again from the infotext.
    const auto it = pipeline::Infotext::parse(emb.parameters);
    EXPECT_EQ(it.get("TI hashes"), "redcircle: " + hash);
    GenerateParams again;
    ASSERT_TRUE(params_from_infotext(emb.parameters, again));
    auto r = e->generate(again);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->front().parameters, emb.parameters);
    EXPECT_EQ(r->front().image.pixels, emb.image.pixels);
}

TEST(Embedding, TiHashesListThePromptsThenTheNegativesAsA1111) {
    const fs::path dir = fresh_dir("hashes");
    write_embedding(dir / "redcircle.safetensors", token_rows({"red", "circle"}), 64);
    write_embedding(dir / "blue.safetensors", token_rows({"blue"}), 64);
    write_embedding(dir / "sq,u:are.safetensors", token_rows({"square"}), 64);
    auto e = load(dir.string());
    ASSERT_TRUE(e);
    auto h = [&](const char* stem) { return sha256_file((dir / (std::string(stem) + ".safetensors")).string())->substr(0, 12); };
    const auto g = generate(*e, "redcircle on blue, sq,u:are", "blue");
    EXPECT_EQ(pipeline::Infotext::parse(g.parameters).get("TI hashes"),
              "redcircle: " + h("redcircle") + ", blue: " + h("blue") + ", square: " + h("sq,u:are") + ", blue: " + h("blue"));
}

TEST(Embedding, TorchFilesFromTorchSaveAreRead) {
    // A1111's .pt layout, the original repo's ParameterDict and a diffusers concept (.bin, a 1-D tensor).
    const std::vector<float> red_circle = token_rows({"red", "circle"});
    for (const char* f : {"a1111_redcircle.pt", "ldm_paramdict.pt"}) {
        auto emb = pipeline::read_embedding((kFixtures / f).string());
        ASSERT_TRUE(emb) << emb.error().message;
        EXPECT_EQ(emb->info.vectors, 2) << f;
        EXPECT_EQ(emb->info.shape, 64) << f;
        EXPECT_EQ(std::vector<float>(emb->vectors.span().begin(), emb->vectors.span().end()), red_circle) << f;
    }
    auto a = pipeline::read_embedding((kFixtures / "a1111_redcircle.pt").string());
    EXPECT_EQ(a->info.name, "a1111_redcircle");  // the file stem, not the "name" inside (A1111)
    EXPECT_EQ(a->info.step, 500);
    EXPECT_EQ(a->info.sd_checkpoint, "7d1e4ea4");
    EXPECT_EQ(a->info.sd_checkpoint_name, "demo");
    auto b = pipeline::read_embedding((kFixtures / "diffusers_blue.bin").string());
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->info.vectors, 1);
    EXPECT_EQ(std::vector<float>(b->vectors.span().begin(), b->vectors.span().end()), token_rows({"blue"}));

    const fs::path dir = fresh_dir("torch");
    fs::copy_file(kFixtures / "a1111_redcircle.pt", dir / "tired.pt");
    fs::copy_file(kFixtures / "diffusers_blue.bin", dir / "sky.bin");
    auto e = load(dir.string());
    ASSERT_TRUE(e);
    EXPECT_EQ(generate(*e, "a tired on a sky background").latent,
              generate(*e, "a red circle on a blue background").latent);
}

TEST(Embedding, WrongWidthAndBadFilesAreSkippedWithAWarning) {
    const fs::path dir = fresh_dir("bad");
    write_embedding(dir / "narrow.safetensors", std::vector<float>(2 * 32, 0.5f), 32);
    std::ofstream(dir / "junk.pt") << "this is not a torch file";
    write_embedding(dir / "cut.safetensors", token_rows({"red"}), 64);
    fs::resize_file(dir / "cut.safetensors", fs::file_size(dir / "cut.safetensors") - 40);
    write_embedding(dir / "two.safetensors", token_rows({"red", "blue"}), 64);
    {   // two terms in one file
        TensorToWrite a{"a", "F32", {1, 64}, std::vector<uint8_t>(256)}, b{"b", "F32", {1, 64}, std::vector<uint8_t>(256)};
        ASSERT_TRUE(write_safetensors((dir / "many.safetensors").string(), {a, b}));
    }
    std::ofstream(dir / "empty.pt");          // empty: ignored, as A1111
    std::ofstream(dir / "notes.txt") << "x";  // not an embedding
    auto e = load(dir.string());
    ASSERT_TRUE(e);
    const auto warnings = e->load_warnings();
    ASSERT_EQ(warnings.size(), 4u);
    auto warned = [&](const std::string& name, const std::string& what) {
        for (const auto& w : warnings)
            if (w.find("'" + name + "'") != std::string::npos && w.find(what) != std::string::npos) return true;
        return false;
    };
    EXPECT_TRUE(warned("narrow", "wrong width: its vectors have 32 values, the model's text encoder takes 64"));
    EXPECT_TRUE(warned("junk", "junk.pt"));
    EXPECT_TRUE(warned("cut", "cut.safetensors"));
    EXPECT_TRUE(warned("many", "multiple terms"));
    const auto list = e->embeddings();
    ASSERT_EQ(list.size(), 5u);
    EXPECT_EQ(list[0].name, "two");
    EXPECT_TRUE(list[0].skipped.empty());
    // The skipped word stays text: the same image as without any embeddings.
    auto plain = load("");
    ASSERT_TRUE(plain);
    EXPECT_EQ(generate(*e, "a narrow red circle").latent, generate(*plain, "a narrow red circle").latent);
    // Without a model nothing is checked for width: narrow loads, the unreadable ones are still skipped.
    int loaded = 0;
    for (const auto& i : list_embeddings(dir.string())) loaded += i.skipped.empty();
    EXPECT_EQ(loaded, 2);
}

TEST(Embedding, CApiOptionNamesTheFolder) {
    auto o = a1111::parse_load_options("m.safetensors", R"({"embd_dir": "/x/embeddings"})");
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->embedding_dir, "/x/embeddings");
    o = a1111::parse_load_options("m.safetensors", R"({"embd_dir": 3})");
    ASSERT_FALSE(o);
    EXPECT_NE(o.error().message.find("embd_dir"), std::string::npos) << o.error().message;
}

}  // namespace
}  // namespace nb
