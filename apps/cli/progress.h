// Progress display on stderr: a redrawn bar on a terminal, plain lines otherwise. Ctrl-C requests a stop
// that the engine honours between steps.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "nanobanana/engine.h"

namespace nb::cli {

class ProgressBar {
public:
    ProgressBar();
    // Returns false once Ctrl-C was pressed.
    bool update(const Progress& p);
    void finish();
    static std::string fmt_rate(double v, const char* unit);

private:
    bool tty_;
    int last_step_ = -1, last_image_ = -1;
    std::chrono::steady_clock::time_point start_, image_start_, last_update_;
};

void install_interrupt_handler();
bool interrupted();

}  // namespace nb::cli
