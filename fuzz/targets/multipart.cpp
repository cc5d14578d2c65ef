// HTTP requests as the server reads them, multipart/form-data bodies above all (the OpenAI-style
// /v1/images/edits takes its image, mask and fields that way): the bytes go through cpp-httplib's request
// parser (Server::process_request over an in-memory stream, as on a socket) to a handler that reads every part
// the way ours do. cpp-httplib is Debian's shared library, not instrumented here: coverage guidance comes from
// this file only, so the seeds and the dictionary (fuzz/dict/multipart.dict) carry the structure; crashes, hangs,
// leaks and bad frees inside it still show. Checks: each part's content lies within the request, a request the
// parser accepts reaches the handler once.
#include <httplib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "../fuzz_input.h"

namespace {

class BytesStream : public httplib::Stream {
public:
    BytesStream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool is_readable() const override { return true; }
    bool is_writable() const override { return true; }
    ssize_t read(char* ptr, size_t size) override {
        const size_t n = std::min(size, size_ - pos_);
        std::memcpy(ptr, data_ + pos_, n);
        pos_ += n;
        return ssize_t(n);
    }
    ssize_t write(const char*, size_t size) override { return ssize_t(size); }  // the response is not kept
    void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 40000; }
    void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 7860; }
    socket_t socket() const override { return INVALID_SOCKET; }

private:
    const uint8_t* data_;
    size_t size_, pos_ = 0;
};

size_t g_size = 0;   // this input's size
int g_handled = 0;   // handler calls for this input

class FuzzServer : public httplib::Server {
public:
    FuzzServer() {
        set_payload_max_length(1 << 20);
        auto handler = [](const httplib::Request& req, httplib::Response& res) {
            ++g_handled;
            size_t total = 0;
            for (const auto& [name, part] : req.files) {
                nb::fuzz::require(part.content.size() <= g_size, "a part lies within the request");
                total += part.content.size() + part.filename.size() + part.content_type.size();
            }
            nb::fuzz::require(total <= g_size, "the parts together lie within the request");
            for (const char* k : {"image", "mask", "prompt", "n", "size", "response_format"})
                if (req.has_file(k)) (void)req.get_file_value(k).content.size();
            res.set_content(req.is_multipart_form_data() ? "multipart" : "other", "text/plain");
        };
        Post("/v1/images/edits", handler);
        Post("/sdapi/v1/png-info", handler);
    }
    void feed(httplib::Stream& s) {
        bool closed = false;
        process_request(s, /*close_connection=*/true, closed, nullptr);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static FuzzServer* server = new FuzzServer;  // one, as in the server (its routes are fixed)
    g_size = size;
    g_handled = 0;
    BytesStream s(data, size);
    server->feed(s);
    nb::fuzz::require(g_handled <= 1, "one request, at most one handler call");
    return 0;
}
