// Progress bar with rate and ETA on stderr. Draws only when stderr is a terminal
// (or AWQ_PROGRESS=1); otherwise prints a line every ~10% so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace awq {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "");
  void update(int64_t done);  // absolute count
  void finish();
  double elapsed_s() const;

 private:
  std::string label_, unit_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_;
  int last_decile_ = -1;
  bool finished_ = false;
};

// Progress of a long job made of phases of estimated cost ("work": e.g. FLOP), for jobs where
// one unit of the outer loop (a decoder block of a 1.5B model) takes minutes. A background
// thread reports, so a line appears even while one BLAS call runs:
//   <label> <phase> <phase %> | <overall %> elapsed 4m10s ETA 31m05s
// on a terminal redrawn twice a second; otherwise one line every `interval_s` (default 30 s,
// AWQ_PROGRESS_INTERVAL=seconds) plus one at the end. The ETA is elapsed * (left / done) over
// the work, shown as "--" until 1% of the work or 5 s are done (never "0m00s" at the start).
class JobProgress {
 public:
  JobProgress(std::string label, double total_work, bool enabled);
  ~JobProgress();
  JobProgress(const JobProgress&) = delete;
  JobProgress& operator=(const JobProgress&) = delete;
  void set_total(double total_work);
  // Starts a phase worth `work` units; the previous phase counts as done.
  void begin_phase(const std::string& name, double work);
  void set_fraction(double f);  // 0..1 of the current phase
  double fraction() const;      // of the whole job
  void finish();                // the job is done: final line, thread stopped
  // The line that would be printed now (tests).
  std::string line() const;

 private:
  void loop();
  std::string label_;
  std::atomic<double> total_{1}, done_phases_{0}, cur_work_{0}, cur_frac_{0};
  mutable std::mutex mu_;
  std::string phase_;
  std::chrono::steady_clock::time_point start_;
  bool enabled_, tty_;
  double interval_s_ = 30;
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread th_;
};

// Reports the fraction done of the current phase of the active JobProgress (the most recently
// constructed one still alive), from anywhere, e.g. a grid search's loop; no-op without one.
void report_phase_fraction(double f);

}  // namespace awq
