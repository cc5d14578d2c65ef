#include "progress.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace nb::cli {

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
    if (g_interrupted.exchange(true)) std::_Exit(130);  // second Ctrl-C: stop now
}
}  // namespace

void install_interrupt_handler() { std::signal(SIGINT, on_sigint); }
bool interrupted() { return g_interrupted.load(); }

ProgressBar::ProgressBar() : tty_(isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

bool ProgressBar::update(const Progress& p) {
    using namespace std::chrono;
    const auto now = steady_clock::now();
    // A new image's clock starts at the previous update (or at construction, after the model loaded).
    if (p.image != last_image_) image_start_ = last_image_ < 0 ? start_ : last_update_, last_image_ = p.image;
    last_update_ = now;
    const double elapsed = duration<double>(now - image_start_).count();
    const double per_step = p.step > 0 ? elapsed / p.step : 0.0;
    const double eta = per_step * (p.total - p.step);
    const std::string rate = per_step >= 1.0 || per_step == 0.0 ? fmt_rate(per_step, "s/it") : fmt_rate(1.0 / per_step, "it/s");
    char head[64] = "";
    if (p.n_images > 1) std::snprintf(head, sizeof head, "image %d/%d ", p.image + 1, p.n_images);
    if (tty_) {
        constexpr int kWidth = 30;
        const int fill = p.total > 0 ? p.step * kWidth / p.total : 0;
        std::string bar(size_t(fill), '#');
        bar.resize(kWidth, '.');
        std::fprintf(stderr, "\r%s[%s] %d/%d %s, ETA %.0fs   ", head, bar.c_str(), p.step, p.total, rate.c_str(), eta);
        if (p.step == p.total) std::fputc('\n', stderr);
    } else if (p.step != last_step_) {
        std::fprintf(stderr, "%sstep %d/%d %s, ETA %.0fs\n", head, p.step, p.total, rate.c_str(), eta);
    }
    std::fflush(stderr);
    last_step_ = p.step;
    return !interrupted();
}

std::string ProgressBar::fmt_rate(double v, const char* unit) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %s", v, unit);
    return buf;
}

void ProgressBar::finish() {
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "done in %.1fs\n", total);
}

}  // namespace nb::cli
