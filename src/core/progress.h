// Progress bar with rate and ETA on stderr. Draws only when stderr is a terminal
// (or AWQ_PROGRESS=1); otherwise prints a line every ~10% so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

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

}  // namespace awq
