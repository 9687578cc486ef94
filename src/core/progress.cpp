#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace awq {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total > 0 ? total : 1) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  const char* env = std::getenv("AWQ_PROGRESS");
  tty_ = env ? env[0] == '1' : isatty(STDERR_FILENO);
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

static std::string fmt_time(double s) {
  char b[32];
  int t = (int)(s + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", t / 3600, (t / 60) % 60);
  else std::snprintf(b, sizeof b, "%dm%02ds", t / 60, t % 60);
  return b;
}

void Progress::update(int64_t done) {
  const auto now = std::chrono::steady_clock::now();
  const double el = std::chrono::duration<double>(now - start_).count();
  const double frac = (double)done / (double)total_;
  const double eta = done > 0 ? el * (1.0 - frac) / frac : 0.0;
  const double rate = el > 0 ? done / el : 0.0;
  if (tty_) {
    if (done < total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    const int width = 30, fill = (int)(frac * width);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %.1f%s/s elapsed %s ETA %s   ", label_.c_str(),
                 bar.c_str(), (long long)done, (long long)total_, rate, unit_.c_str(),
                 fmt_time(el).c_str(), fmt_time(eta).c_str());
    std::fflush(stderr);
  } else {
    const int decile = (int)(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s %lld/%lld (%d%%) elapsed %s ETA %s\n", label_.c_str(),
                 (long long)done, (long long)total_, (int)(frac * 100), fmt_time(el).c_str(),
                 fmt_time(eta).c_str());
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_) {
    update(total_);
    std::fprintf(stderr, "\n");
  }
}

}  // namespace awq
