#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>

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

namespace {
std::atomic<JobProgress*> g_active{nullptr};
}

void report_phase_fraction(double f) {
  if (JobProgress* p = g_active.load()) p->set_fraction(f);
}

JobProgress::JobProgress(std::string label, double total_work, bool enabled)
    : label_(std::move(label)), enabled_(enabled) {
  start_ = std::chrono::steady_clock::now();
  set_total(total_work);
  const char* env = std::getenv("AWQ_PROGRESS");
  tty_ = env ? env[0] == '1' : isatty(STDERR_FILENO);
  if (const char* iv = std::getenv("AWQ_PROGRESS_INTERVAL")) {
    const double v = std::atof(iv);
    if (v > 0) interval_s_ = v;
  }
  g_active.store(this);
  if (enabled_) th_ = std::thread([this] { loop(); });
}

JobProgress::~JobProgress() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (th_.joinable()) th_.join();
  JobProgress* self = this;
  g_active.compare_exchange_strong(self, nullptr);
}

void JobProgress::set_total(double w) { total_.store(w > 0 ? w : 1); }

void JobProgress::begin_phase(const std::string& name, double work) {
  std::lock_guard<std::mutex> l(mu_);
  done_phases_.store(done_phases_.load() + cur_work_.load());
  cur_work_.store(std::max(0.0, work));
  cur_frac_.store(0);
  phase_ = name;
}

void JobProgress::set_fraction(double f) { cur_frac_.store(std::clamp(f, 0.0, 1.0)); }

double JobProgress::fraction() const {
  const double done = done_phases_.load() + cur_work_.load() * cur_frac_.load();
  return std::clamp(done / total_.load(), 0.0, 1.0);
}

std::string JobProgress::line() const {
  const double el =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double f = fraction();
  std::string phase;
  {
    std::lock_guard<std::mutex> l(mu_);
    phase = phase_;
  }
  char b[512];
  const std::string eta = (f >= 0.01 || (f > 0 && el >= 5)) && f < 1
                              ? fmt_time(el * (1 - f) / f)
                              : (f >= 1 ? fmt_time(0) : std::string("--"));
  std::snprintf(b, sizeof b, "%s %s %d%% | %.1f%% elapsed %s ETA %s", label_.c_str(),
                phase.c_str(), (int)(cur_frac_.load() * 100), f * 100, fmt_time(el).c_str(),
                eta.c_str());
  return b;
}

void JobProgress::loop() {
  std::unique_lock<std::mutex> l(mu_);
  auto last = std::chrono::steady_clock::now();
  bool first = true;
  while (!stop_) {
    const auto now = std::chrono::steady_clock::now();
    if (tty_ || first || std::chrono::duration<double>(now - last).count() >= interval_s_) {
      first = false;
      last = now;
      l.unlock();
      const std::string s = line();
      if (tty_) std::fprintf(stderr, "\r%s   ", s.c_str());
      else std::fprintf(stderr, "%s\n", s.c_str());
      std::fflush(stderr);
      l.lock();
    }
    cv_.wait_for(l, std::chrono::milliseconds(tty_ ? 500 : 250), [this] { return stop_; });
  }
}

void JobProgress::finish() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    done_phases_.store(total_.load());
    cur_work_.store(0);
    cur_frac_.store(1);
    phase_ = "done";
    stop_ = true;
  }
  cv_.notify_all();
  if (th_.joinable()) th_.join();
  if (enabled_) std::fprintf(stderr, tty_ ? "\r%s   \n" : "%s\n", line().c_str());
}

}  // namespace awq
