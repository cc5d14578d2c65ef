// `nanobanana serve` driven over HTTP as A1111 clients drive it: the real binary on a free port, the demo model.
// Response shapes, generation (txt2img, img2img / inpaint, LoRA, batch seeds), upscaling, PNG info, options and
// model switching, VAE files (sd-vae, sd_vae), progress + interrupt + skip, concurrent clients, auth, OpenAI
// images, and bad input (the server keeps answering after each).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include "image/image.h"
#include "io/safetensors.h"
#include "nanobanana/a1111.h"
#include "testutil/cli.h"
#include "testutil/server.h"
#include "testutil/vae_files.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kDemo = (fs::path(__FILE__).parent_path() / "../../models/demo").lexically_normal();

using test::ServerProcess;

ServerProcess& server() {
    static ServerProcess s("");
    return s;
}

json post(httplib::Client& c, const std::string& path, const json& body, int want = 200) {
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return nullptr;
    EXPECT_EQ(r->status, want) << path << ": " << r->body.substr(0, 400);
    return json::parse(r->body, nullptr, false);
}
json get(httplib::Client& c, const std::string& path) {
    auto r = c.Get(path.c_str());
    EXPECT_TRUE(r) << path;
    if (!r) return nullptr;
    EXPECT_EQ(r->status, 200) << path << ": " << r->body.substr(0, 400);
    return json::parse(r->body, nullptr, false);
}

Image decode(const json& b64) {
    auto bytes = a1111::decode_base64(b64.get<std::string>(), "image");
    EXPECT_TRUE(bytes);
    auto im = decode_image(*bytes);
    EXPECT_TRUE(im);
    return im ? *im : Image{};
}
std::string parameters(const json& b64) {
    auto bytes = a1111::decode_base64(b64.get<std::string>(), "image");
    auto p = png_parameters(*bytes);
    return p ? *p : "";
}

json small_txt2img(int seed = 5, int steps = 3) {
    return {{"prompt", "a red circle on a blue background"}, {"steps", steps}, {"width", 64}, {"height", 64},
            {"seed", seed}, {"sampler_name", "Euler a"}};
}

TEST(Server, ListsWhatA1111ClientsAskFor) {
    ASSERT_GT(server().port(), 0) << server().log();
    auto c = server().client();
    const json models = get(c, "/sdapi/v1/sd-models");
    ASSERT_TRUE(models.is_array() && !models.empty());
    for (const char* k : {"title", "model_name", "hash", "sha256", "filename", "config"}) EXPECT_TRUE(models[0].contains(k)) << k;
    EXPECT_EQ(models[0]["model_name"], "demo");
    const json samplers = get(c, "/sdapi/v1/samplers");
    bool euler_a = false;
    for (const auto& s : samplers) euler_a |= s["name"] == "Euler a";
    EXPECT_TRUE(euler_a);
    EXPECT_EQ(get(c, "/sdapi/v1/schedulers")[0]["name"], "automatic");
    EXPECT_EQ(get(c, "/sdapi/v1/upscalers")[0]["name"], "None");
    EXPECT_EQ(get(c, "/sdapi/v1/latent-upscale-modes")[0]["name"], "Latent");
    EXPECT_EQ(get(c, "/sdapi/v1/loras")[0]["name"], "demo_monochrome");
    EXPECT_TRUE(get(c, "/sdapi/v1/sd-vae").is_array());
    EXPECT_TRUE(get(c, "/sdapi/v1/embeddings").contains("loaded"));
    EXPECT_TRUE(get(c, "/sdapi/v1/scripts").contains("txt2img"));
    EXPECT_GT(get(c, "/sdapi/v1/memory")["ram"]["total"].get<double>(), 0);
    EXPECT_TRUE(get(c, "/sdapi/v1/cmd-flags").is_object());
    for (const char* empty : {"/sdapi/v1/sd-modules", "/sdapi/v1/face-restorers", "/sdapi/v1/prompt-styles"})
        EXPECT_TRUE(get(c, empty).is_array()) << empty;
    const json opts = get(c, "/sdapi/v1/options");
    EXPECT_TRUE(opts["sd_model_checkpoint"].get<std::string>().starts_with("demo.safetensors"));
    EXPECT_EQ(opts["CLIP_stop_at_last_layers"], 1);
    // A client posts back the whole dict it got, with keys we do not know.
    json back = opts;
    back["some_extension_setting"] = 3;
    post(c, "/sdapi/v1/options", back);
    EXPECT_EQ(get(c, "/sdapi/v1/options")["some_extension_setting"], 3);
    const json p = get(c, "/sdapi/v1/progress");
    for (const char* k : {"progress", "eta_relative", "state", "current_image", "textinfo"}) EXPECT_TRUE(p.contains(k)) << k;
    EXPECT_EQ(p["state"]["job_count"], 0);
}

TEST(Server, Txt2ImgAnswersAsA1111AndMatchesTheCli) {
    auto c = server().client();
    json req = small_txt2img();
    req["batch_size"] = 2;
    req["some_extension_field"] = {{"x", 1}};  // ignored
    // What the Python webuiapi client sends along by default (and A1111 ignores or defaults).
    req.update(json{{"sampler_index", "Euler a"}, {"script_args", json::array()}, {"alwayson_scripts", json::object()},
                    {"send_images", true}, {"save_images", false}, {"restore_faces", false}, {"tiling", false},
                    {"denoising_strength", 0.7}, {"subseed", -1}, {"subseed_strength", 0}, {"seed_resize_from_h", -1},
                    {"seed_resize_from_w", -1}, {"styles", json::array()}, {"eta", 1.0}, {"s_churn", 0},
                    {"hr_upscaler", "Latent"}, {"hr_second_pass_steps", 0}, {"hr_resize_x", 0}, {"hr_resize_y", 0},
                    {"enable_hr", false}, {"override_settings", json::object()},
                    {"override_settings_restore_afterwards", true}, {"hr_sampler_name", nullptr},
                    {"refiner_checkpoint", nullptr}, {"scheduler", nullptr}});
    const json r = post(c, "/sdapi/v1/txt2img", req);
    ASSERT_EQ(r["images"].size(), 2u);
    ASSERT_TRUE(r["info"].is_string());
    const json info = json::parse(r["info"].get<std::string>());
    EXPECT_EQ(info["all_seeds"], json::array({5, 6}));
    EXPECT_EQ(info["seed"], 5);
    EXPECT_EQ(info["width"], 64);
    EXPECT_EQ(info["infotexts"].size(), 2u);
    EXPECT_EQ(r["parameters"]["prompt"], req["prompt"]);
    EXPECT_NE(parameters(r["images"][1]).find("Seed: 6"), std::string::npos);
    // The same picture as the CLI makes.
    const std::string out = ::testing::TempDir() + "/nb_server_cli.png";
    ASSERT_EQ(test::run_cli("generate -p 'a red circle on a blue background' --steps 3 -W 64 -H 64 -s 5 "
                            "--sampling-method 'Euler a' -o " + out).code, 0);
    auto cli = read_png(out);
    ASSERT_TRUE(cli);
    EXPECT_EQ(decode(r["images"][0]).pixels, cli->pixels);
}

TEST(Server, Img2ImgInpaintLoraUpscaleAndPngInfo) {
    auto c = server().client();
    const json t = post(c, "/sdapi/v1/txt2img", small_txt2img(9));
    const std::string init = t["images"][0];
    Image mask{64, 64, 1, std::vector<uint8_t>(64 * 64, 0)};
    for (int y = 16; y < 48; ++y)
        for (int x = 16; x < 48; ++x) *mask.at(x, y) = 255;
    const std::string mask_b64 = a1111::encode_base64(*encode_png(mask, ""));
    json req = small_txt2img(9);
    req["prompt"] = "a green circle on a blue background <lora:demo_monochrome:0.8>";
    req["init_images"] = {"data:image/png;base64," + init};
    req["mask"] = mask_b64;
    req["denoising_strength"] = 0.7;
    req["inpainting_fill"] = 1;
    req["inpaint_full_res"] = false;
    const json r = post(c, "/sdapi/v1/img2img", req);
    ASSERT_EQ(r["images"].size(), 1u);
    EXPECT_EQ(decode(r["images"][0]).width, 64);
    EXPECT_TRUE(r["parameters"]["init_images"].is_null());
    const std::string text = parameters(r["images"][0]);
    EXPECT_NE(text.find("Denoising strength: 0.7"), std::string::npos) << text;
    EXPECT_NE(text.find("Lora hashes"), std::string::npos) << text;
    const json up = post(c, "/sdapi/v1/extra-single-image", {{"image", init}, {"upscaler_1", "Lanczos"}, {"upscaling_resize", 2}});
    EXPECT_EQ(decode(up["image"]).width, 128);
    // A1111 keeps the picture's parameters through an upscale, and adds the upscale to them.
    const std::string up_text = parameters(up["image"]);
    EXPECT_NE(up_text.find("Seed: 9"), std::string::npos) << up_text;
    EXPECT_NE(up_text.find("Postprocess upscaler: Lanczos"), std::string::npos) << up_text;
    const json info = post(c, "/sdapi/v1/png-info", {{"image", init}});
    EXPECT_EQ(info["parameters"]["Seed"], "9");
    EXPECT_NE(info["info"].get<std::string>().find("Steps: 3"), std::string::npos);
}

TEST(Server, ProgressInterruptAndSkip) {
    auto c = server().client();
    json req = small_txt2img(1, 400);
    req["batch_size"] = 3;
    json result;
    std::thread job([&] {
        auto cj = server().client();
        result = post(cj, "/sdapi/v1/txt2img", req);
    });
    auto wait_step = [&](int image) {
        for (int i = 0; i < 600; ++i) {
            const json p = get(c, "/sdapi/v1/progress");
            if (p["state"]["job_no"] == image && p["state"]["sampling_step"].get<int>() > 2) return p;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return json();
    };
    const json p = wait_step(0);
    ASSERT_FALSE(p.is_null()) << "no progress seen";
    EXPECT_GT(p["progress"].get<double>(), 0);
    EXPECT_EQ(p["state"]["sampling_steps"], 400);
    ASSERT_TRUE(p["current_image"].is_string()) << "a live preview while sampling";
    EXPECT_EQ(decode(p["current_image"]).width, 8);  // latent resolution of a 64x64 picture
    EXPECT_TRUE(get(c, "/sdapi/v1/progress?skip_current_image=true")["current_image"].is_null());
    post(c, "/sdapi/v1/skip", json::object());  // image 0 kept as it stands, image 1 starts
    ASSERT_FALSE(wait_step(1).is_null());
    post(c, "/sdapi/v1/interrupt", json::object());
    job.join();
    ASSERT_TRUE(result.is_object());
    // As A1111: the skipped and the interrupted image come back as they stood (decoded from their last
    // step's prediction), the third never started.
    ASSERT_EQ(result["images"].size(), 2u);
    const json info = json::parse(result["info"].get<std::string>());
    EXPECT_EQ(info["all_seeds"].size(), 2u);
    for (const auto& im : result["images"]) {
        const Image pic = decode(im);
        EXPECT_EQ(pic.width, 64);
        long sum = 0;
        for (uint8_t v : pic.pixels) sum += v;
        EXPECT_GT(sum, 0) << "an interrupted image came back black";
    }
    EXPECT_EQ(get(c, "/sdapi/v1/progress")["progress"], 0);
}

// A client that disconnects while its job is queued gives its turn up: the job never runs, the queue moves on.
TEST(Server, DisconnectedClientsQueuedJobIsDropped) {
    auto c = server().client();
    json result;
    std::thread job([&] {
        auto cj = server().client();
        result = post(cj, "/sdapi/v1/txt2img", small_txt2img(31, 400));
    });
    auto job_count = [&] { return get(c, "/sdapi/v1/progress")["state"]["job_count"].get<int>(); };
    auto wait_for = [&](auto pred) {
        for (int i = 0; i < 400 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return pred();
    };
    ASSERT_TRUE(wait_for([&] { return get(c, "/sdapi/v1/progress")["state"]["sampling_step"].get<int>() > 0; }));
    EXPECT_EQ(job_count(), 1);

    // A raw client: sends a whole txt2img request, then hangs up without reading the answer.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(server().port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string body = small_txt2img(32, 400).dump();
    const std::string http = "POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(send(fd, http.data(), http.size(), 0), ssize_t(http.size()));
    EXPECT_TRUE(wait_for([&] { return job_count() == 2; })) << "the second request was not queued";
    close(fd);
    EXPECT_TRUE(wait_for([&] { return job_count() == 1; })) << "the disconnected client's job stayed queued";

    post(c, "/sdapi/v1/interrupt", json::object());
    job.join();
    ASSERT_TRUE(result.is_object());
    // The queue is not stuck on the dropped ticket: the next job runs at once.
    const json next = post(c, "/sdapi/v1/txt2img", small_txt2img(33));
    EXPECT_EQ(next["images"].size(), 1u);
    EXPECT_NE(server().log().find("client disconnected while queued; dropped"), std::string::npos);
}

TEST(Server, ConcurrentClientsGetTheirOwnPictures) {
    auto c = server().client();
    const json a = post(c, "/sdapi/v1/txt2img", small_txt2img(21));
    const json b = post(c, "/sdapi/v1/txt2img", small_txt2img(22));
    json ra, rb;
    std::thread ta([&] {
        auto cc = server().client();
        ra = post(cc, "/sdapi/v1/txt2img", small_txt2img(21));
    });
    std::thread tb([&] {
        auto cc = server().client();
        rb = post(cc, "/sdapi/v1/txt2img", small_txt2img(22));
    });
    ta.join();
    tb.join();
    EXPECT_EQ(ra["images"], a["images"]);
    EXPECT_EQ(rb["images"], b["images"]);
}

TEST(Server, BadInputIsAnErrorAndTheServerStaysUp) {
    auto c = server().client();
    auto r = c.Post("/sdapi/v1/txt2img", "{not json", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422);
    json q = small_txt2img();
    q["steps"] = 5000;
    EXPECT_NE(post(c, "/sdapi/v1/txt2img", q, 422)["detail"].get<std::string>().find("steps"), std::string::npos);
    q = small_txt2img();
    q["width"] = 13;
    EXPECT_NE(post(c, "/sdapi/v1/txt2img", q, 422)["detail"].get<std::string>().find("width"), std::string::npos);
    q = small_txt2img();
    q["init_images"] = {"not%base64"};
    EXPECT_NE(post(c, "/sdapi/v1/img2img", q, 422)["detail"].get<std::string>().find("init_images"), std::string::npos);
    q["init_images"] = {a1111::encode_base64(std::vector<uint8_t>{1, 2, 3, 4})};
    post(c, "/sdapi/v1/img2img", q, 422);
    post(c, "/sdapi/v1/options", {{"sd_model_checkpoint", "../../etc/passwd"}}, 422);
    q = small_txt2img();
    q["override_settings"] = {{"sd_model_checkpoint", "nope.safetensors"}};
    post(c, "/sdapi/v1/txt2img", q, 422);
    post(c, "/sdapi/v1/png-info", {{"image", "AAAA"}}, 422);
    post(c, "/sdapi/v1/extra-single-image", {{"image", "AAAA"}, {"upscaler_1", "Lanczos"}}, 422);
    // ... and it still answers.
    EXPECT_EQ(post(c, "/sdapi/v1/txt2img", small_txt2img())["images"].size(), 1u);
}

// A PNG that declares width x height (RGB, 8 bits) with a few bytes of pixel data: a decompression bomb's header.
std::string png_declaring(uint32_t width, uint32_t height) {
    auto be32 = [](uint32_t v) {
        return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    };
    auto chunk = [&](const std::string& type, const std::string& data) {
        const std::string td = type + data;
        return be32(uint32_t(data.size())) + td +
               be32(uint32_t(crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
    };
    const std::string ihdr = be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};
    const std::string idat("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);  // an empty zlib stream
    return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", "");
}

// Issue 22's resource limits on the server: a 1 MB prompt, 10,000 LoRA tags (and 65 short ones, under the prompt
// limit), a batch of 10^6, a 100,000 x 100,000 PNG as an init image: each answered 422 with what is too big, in
// well under a second, without the server's memory growing; it still generates afterwards.
TEST(Server, ResourceLimitsAreRefusedNamingWhatIsTooBig) {
    ServerProcess s("");
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    auto detail = [&](const json& q, const std::string& path = "/sdapi/v1/txt2img") {
        const auto t0 = std::chrono::steady_clock::now();
        const json r = post(c, path, q, 422);
        EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0) << q.dump().substr(0, 80);
        return r.is_object() && r.contains("detail") ? r["detail"].get<std::string>() : std::string("(no detail)");
    };
    json q = small_txt2img();
    q["prompt"] = std::string(1 << 20, 'a');
    EXPECT_NE(detail(q).find("prompt is 1048576 bytes"), std::string::npos);
    std::string tags;
    for (int i = 0; i < 10000; ++i) tags += "<lora:demo_monochrome:0.1> ";
    q["prompt"] = tags;
    EXPECT_NE(detail(q).find("prompt is"), std::string::npos);
    tags.clear();
    for (int i = 0; i < 65; ++i) tags += "<lora:x:1>";
    q["prompt"] = tags;
    EXPECT_NE(detail(q).find("65 LoRAs"), std::string::npos);
    q = small_txt2img();
    q["batch_size"] = 1000000;
    EXPECT_NE(detail(q).find("batch"), std::string::npos);
    q = small_txt2img();
    q["n_iter"] = 1000000;
    EXPECT_NE(detail(q).find("batch"), std::string::npos);
    const std::string bomb = png_declaring(100000, 100000);
    q = small_txt2img();
    q["init_images"] = {a1111::encode_base64({reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size()})};
    const std::string why = detail(q, "/sdapi/v1/img2img");
    EXPECT_NE(why.find("declares 100000x100000 pixels"), std::string::npos) << why;
    EXPECT_NE(detail({{"image", a1111::encode_base64({reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size()})}},
                     "/sdapi/v1/png-info")
                  .find("100000x100000"),
              std::string::npos);
    EXPECT_EQ(post(c, "/sdapi/v1/txt2img", small_txt2img())["images"].size(), 1u) << "still generates";
    std::ifstream status("/proc/" + std::to_string(s.pid()) + "/status");
    std::string line;
    long hwm_kb = 0;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) hwm_kb = std::stol(line.substr(6));
    EXPECT_LT(hwm_kb, 400 * 1024) << "peak RSS of the server (demo model): the refusals allocated nothing big";
    EXPECT_EQ(s.stop(), 0);
}

TEST(Server, BodyLimitAuthCorsAndOpenAI) {
    ServerProcess s("--api-auth alice:secret,bob:pw --max-body-mb 1 --cors-allow-origins http://x.example");
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    auto r = c.Get("/sdapi/v1/progress");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    c.set_basic_auth("bob", "pw");
    r = c.Get("/sdapi/v1/progress");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://x.example");
    const std::string big(2 << 20, 'a');
    r = c.Post("/sdapi/v1/txt2img", big, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    const json o = post(c, "/v1/images/generations", {{"prompt", "a red circle"}, {"n", 1}, {"size", "64x64"},
                                                      {"extra", {{"steps", 2}}}});
    ASSERT_EQ(o["data"].size(), 1u);
    EXPECT_EQ(decode(o["data"][0]["b64_json"]).width, 64);
    const json u = post(c, "/v1/images/generations", {{"prompt", "a red circle"}, {"size", "64x64"},
                                                      {"response_format", "url"}, {"extra", {{"steps", 2}}}});
    const std::string url = u["data"][0]["url"];
    auto f = c.Get(url.substr(url.find("/v1/files/")).c_str());
    ASSERT_TRUE(f);
    EXPECT_EQ(f->status, 200);
    EXPECT_EQ(f->get_header_value("Content-Type"), "image/png");
    // Edits: multipart image + mask (transparent = repaint, as OpenAI), the rest kept.
    Image pic = decode(o["data"][0]["b64_json"]);
    Image mask{64, 64, 4, std::vector<uint8_t>(64 * 64 * 4, 255)};
    for (int y = 16; y < 48; ++y)
        for (int x = 16; x < 48; ++x) mask.at(x, y)[3] = 0;
    const auto pic_png = *encode_png(pic, ""), mask_png = *encode_png(mask, "");
    httplib::MultipartFormDataItems items = {
        {"image", std::string(pic_png.begin(), pic_png.end()), "image.png", "image/png"},
        {"mask", std::string(mask_png.begin(), mask_png.end()), "mask.png", "image/png"},
        {"prompt", "a green circle on a blue background", "", ""},
        {"steps", "3", "", ""}};
    auto er = c.Post("/v1/images/edits", items);
    ASSERT_TRUE(er);
    ASSERT_EQ(er->status, 200) << er->body.substr(0, 300);
    const Image edited = decode(json::parse(er->body)["data"][0]["b64_json"]);
    ASSERT_EQ(edited.width, 64);
    EXPECT_TRUE(std::equal(edited.at(0, 0), edited.at(0, 0) + 3, pic.at(0, 0))) << "outside the mask kept";
    EXPECT_NE(edited.pixels, pic.pixels);
    // The log line is written after the answer is sent: give it a moment.
    for (int i = 0; i < 50 && s.log().find("POST /v1/images/edits 200") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_NE(s.log().find("POST /v1/images/edits 200"), std::string::npos) << s.log();
    EXPECT_EQ(s.stop(), 0) << "SIGTERM ends the server cleanly";
}

// The studio (apps/studio/, compiled into the binary) at / and /studio/..., talking only to /sdapi/v1.
TEST(Server, ServesTheStudio) {
    auto c = server().client();
    auto index = c.Get("/");
    ASSERT_TRUE(index);
    EXPECT_EQ(index->status, 200);
    EXPECT_TRUE(index->get_header_value("Content-Type").starts_with("text/html"));
    EXPECT_NE(index->body.find("<title>nanobanana studio</title>"), std::string::npos);
    for (const auto& [path, type] : {std::pair{"/studio/js/main.js", "text/javascript"}, {"/studio/studio.css", "text/css"}}) {
        auto r = c.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 200) << path;
        EXPECT_TRUE(r->get_header_value("Content-Type").starts_with(type)) << path;
        EXPECT_GT(r->body.size(), 100u) << path;
    }
    for (const char* missing : {"/studio/nope.js", "/studio/../CMakeLists.txt"}) {
        auto r = c.Get(missing);
        ASSERT_TRUE(r) << missing;
        EXPECT_EQ(r->status, 404) << missing;
    }
}

TEST(Server, ModelsFolderAndSwitching) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_models_" + std::to_string(getpid()));
    fs::remove_all(dir);  // a folder left by an earlier run whose pid this one reuses
    fs::create_directories(dir / "Stable-diffusion");
    fs::create_directories(dir / "Lora");
    for (const char* n : {"one", "two"}) {
        fs::create_symlink(kDemo / "demo.safetensors", dir / "Stable-diffusion" / (std::string(n) + ".safetensors"));
        fs::create_symlink(kDemo / "vocab.json", dir / "Stable-diffusion" / (std::string(n) + ".vocab.json"));
        fs::create_symlink(kDemo / "merges.txt", dir / "Stable-diffusion" / (std::string(n) + ".merges.txt"));
    }
    ServerProcess s("--models-dir " + dir.string() + " --ckpt two");
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    EXPECT_EQ(get(c, "/sdapi/v1/sd-models").size(), 2u);
    EXPECT_EQ(get(c, "/sdapi/v1/options")["sd_model_checkpoint"], "two.safetensors");
    post(c, "/sdapi/v1/options", {{"sd_model_checkpoint", "one.safetensors"}});
    EXPECT_TRUE(get(c, "/sdapi/v1/options")["sd_model_checkpoint"].get<std::string>().starts_with("one.safetensors ["));
    const json r = post(c, "/sdapi/v1/txt2img", small_txt2img());
    EXPECT_EQ(json::parse(r["info"].get<std::string>())["sd_model_name"], "one");
    // Once loaded, a checkpoint's title carries A1111's short hash, and that title selects it too.
    const json models = get(c, "/sdapi/v1/sd-models");
    std::string one_title;
    for (const auto& m : models)
        if (m["model_name"] == "one") one_title = m["title"];
    EXPECT_EQ(one_title.size(), std::string("one.safetensors [0123456789]").size()) << one_title;
    // The catalog's nanobanana extras: the size on disk always, the family once loaded (as the hash).
    for (const auto& m : models) {
        EXPECT_EQ(m["size_bytes"], fs::file_size(kDemo / "demo.safetensors")) << m.dump();
        if (m["model_name"] == "one") {
            EXPECT_EQ(m["family"], "SD 1.x") << m.dump();
        } else {
            EXPECT_TRUE(m["family"].is_null()) << m.dump();
        }
    }
    post(c, "/sdapi/v1/options", {{"sd_model_checkpoint", "two"}});
    post(c, "/sdapi/v1/options", {{"sd_model_checkpoint", one_title}});
    EXPECT_EQ(get(c, "/sdapi/v1/options")["sd_model_checkpoint"], one_title);
    EXPECT_NE(s.log().find("loaded one.safetensors"), std::string::npos) << s.log();
}

// Entries named like models that cannot be read (a broken link, a FIFO) are skipped with a warning naming them,
// and the rest of the folder is still offered (issue 22: an unreadable models-folder entry).
TEST(Server, ModelsFolderSkipsEntriesThatCannotBeReadWithAWarning) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_models_bad_" + std::to_string(getpid()));
    fs::remove_all(dir);
    const fs::path sd = dir / "Stable-diffusion";
    fs::create_directories(sd);
    fs::create_directories(dir / "Lora");
    fs::create_symlink(kDemo / "demo.safetensors", sd / "good.safetensors");
    fs::create_symlink(kDemo / "vocab.json", sd / "good.vocab.json");
    fs::create_symlink(kDemo / "merges.txt", sd / "good.merges.txt");
    fs::create_symlink(dir / "nowhere.safetensors", sd / "ghost.safetensors");
    ASSERT_EQ(mkfifo((sd / "pipe.safetensors").c_str(), 0644), 0);
    fs::create_symlink(dir / "nowhere", dir / "Lora" / "lost.safetensors");
    ServerProcess s("--models-dir " + dir.string());
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    const json models = get(c, "/sdapi/v1/sd-models");
    ASSERT_EQ(models.size(), 1u) << models.dump();
    EXPECT_EQ(models[0]["model_name"], "good");
    EXPECT_EQ(get(c, "/sdapi/v1/loras").size(), 0u);
    const std::string log = s.log();
    EXPECT_NE(log.find("warning: skipped " + (sd / "ghost.safetensors").string() + ": a broken symbolic link"),
              std::string::npos) << log;
    EXPECT_NE(log.find("warning: skipped " + (sd / "pipe.safetensors").string() + ": not a regular file"),
              std::string::npos) << log;
    EXPECT_NE(log.find("lost.safetensors: a broken symbolic link"), std::string::npos) << log;
    EXPECT_EQ(json::parse(post(c, "/sdapi/v1/txt2img", small_txt2img())["info"].get<std::string>())["sd_model_name"],
              "good");
}

// Textual-inversion embeddings from <models dir>/embeddings: used in prompts (TI hashes in the infotext), and
// listed by /embeddings as A1111 lists them, the wrong-width and unreadable files under "skipped" with why.
TEST(Server, EmbeddingsFolderIsUsedAndListed) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_models_ti_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "Stable-diffusion");
    fs::create_directories(dir / "embeddings");
    for (const char* f : {"demo.safetensors", "vocab.json", "merges.txt"})
        fs::create_symlink(kDemo / f, dir / "Stable-diffusion" / f);
    auto write = [&](const std::string& name, int64_t n, int64_t width) {
        TensorToWrite t{"emb_params", "F32", {n, width}, std::vector<uint8_t>(size_t(n * width) * 4, 0)};
        ASSERT_TRUE(write_safetensors((dir / "embeddings" / name).string(), {t}));
    };
    write("flat.safetensors", 3, 64);
    write("wide.safetensors", 1, 768);
    std::ofstream(dir / "embeddings" / "junk.pt") << "not a torch file";
    ServerProcess s("--models-dir " + dir.string());
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    json req = small_txt2img();
    req["prompt"] = "a red flat on a blue background";
    const json r = post(c, "/sdapi/v1/txt2img", req);
    ASSERT_TRUE(r.contains("images")) << r.dump().substr(0, 300);
    EXPECT_NE(parameters(r["images"][0]).find("TI hashes: \"flat: "), std::string::npos) << parameters(r["images"][0]);
    const json e = get(c, "/sdapi/v1/embeddings");
    ASSERT_TRUE(e["loaded"].contains("flat")) << e.dump();
    EXPECT_EQ(e["loaded"]["flat"]["vectors"], 3);
    EXPECT_EQ(e["loaded"]["flat"]["shape"], 64);
    EXPECT_TRUE(e["loaded"]["flat"]["step"].is_null());
    ASSERT_TRUE(e["skipped"].contains("wide")) << e.dump();
    EXPECT_EQ(e["skipped"]["wide"]["shape"], 768);
    EXPECT_NE(e["skipped"]["wide"]["reason"].get<std::string>().find("wrong width"), std::string::npos);
    EXPECT_TRUE(e["skipped"].contains("junk")) << e.dump();
    EXPECT_NE(s.log().find("embedding 'wide' skipped"), std::string::npos) << s.log();
}

// A1111's VAE files: VAE/ and <model>.vae.safetensors beside a checkpoint (not a checkpoint itself), listed by file
// name; sd_vae from /options and override_settings ("Automatic", "None", a name), unknown names refused.
TEST(Server, VaeFilesAndSdVae) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_models_vae_" + std::to_string(getpid()));
    fs::remove_all(dir);  // a folder left by an earlier run whose pid this one reuses
    fs::create_directories(dir / "Stable-diffusion");
    fs::create_directories(dir / "VAE");
    fs::create_symlink(kDemo / "demo.safetensors", dir / "Stable-diffusion" / "one.safetensors");
    for (const char* f : {"vocab.json", "merges.txt"}) fs::create_symlink(kDemo / f, dir / "Stable-diffusion" / f);
    const std::string demo = (kDemo / "demo.safetensors").string();
    test::write_vae_file(demo, (dir / "Stable-diffusion" / "one.vae.safetensors").string(), {.perturb = 0.25f});
    test::write_vae_file(demo, (dir / "VAE" / "same.safetensors").string(), {.keep_prefix = false});
    test::write_vae_file(demo, (dir / "VAE" / "other.safetensors").string(), {.perturb = -0.25f});
    ServerProcess s("--models-dir " + dir.string());
    ASSERT_GT(s.port(), 0) << s.log();
    auto c = s.client();
    EXPECT_EQ(get(c, "/sdapi/v1/sd-models").size(), 1u);  // one.vae.safetensors is not a checkpoint
    const json vaes = get(c, "/sdapi/v1/sd-vae");
    ASSERT_EQ(vaes.size(), 3u) << vaes.dump();
    std::set<std::string> names;
    for (const auto& v : vaes) {
        names.insert(v["model_name"].get<std::string>());
        EXPECT_TRUE(fs::exists(v["filename"].get<std::string>())) << v.dump();
    }
    EXPECT_EQ(names, (std::set<std::string>{"one.vae.safetensors", "same.safetensors", "other.safetensors"}));

    auto image_and_vae = [&](const json& body) {
        const json r = post(c, "/sdapi/v1/txt2img", body);
        const json info = json::parse(r["info"].get<std::string>());
        const std::string vae = info["sd_vae_name"].is_string() ? info["sd_vae_name"].get<std::string>() : "";
        EXPECT_EQ(info["infotexts"][0].get<std::string>().find("VAE: ") != std::string::npos, !vae.empty());
        return std::pair{decode(r["images"][0]).pixels, vae};
    };
    EXPECT_EQ(get(c, "/sdapi/v1/options")["sd_vae"], "Automatic");
    const auto [automatic, auto_vae] = image_and_vae(small_txt2img());  // Automatic: the one beside the checkpoint
    EXPECT_EQ(auto_vae, "one.vae.safetensors");
    post(c, "/sdapi/v1/options", {{"sd_vae", "None"}});
    const auto [own, own_vae] = image_and_vae(small_txt2img());
    EXPECT_EQ(own_vae, "");
    EXPECT_NE(own, automatic);
    json body = small_txt2img();
    body["override_settings"] = {{"sd_vae", "same.safetensors"}};
    const auto [same, same_vae] = image_and_vae(body);
    EXPECT_EQ(same_vae, "same.safetensors");
    EXPECT_EQ(same, own);  // the checkpoint's VAE cut out: the same picture
    body["override_settings"] = {{"sd_vae", "other.safetensors"}};
    const auto [other, other_vae] = image_and_vae(body);
    EXPECT_EQ(other_vae, "other.safetensors");
    EXPECT_NE(other, own);
    EXPECT_EQ(image_and_vae(small_txt2img()).first, own);  // the override lasted one request: None again
    // Unknown names are refused, by /options and in a request.
    post(c, "/sdapi/v1/options", {{"sd_vae", "nope.safetensors"}}, 422);
    body["override_settings"] = {{"sd_vae", "nope.safetensors"}};
    post(c, "/sdapi/v1/txt2img", body, 422);
    EXPECT_EQ(get(c, "/sdapi/v1/options")["sd_vae"], "None");
}

}  // namespace
}  // namespace nb
