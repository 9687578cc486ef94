// Prometheus text exposition for `awq serve`: counters, gauges and fixed-bucket histograms.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace awq::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  // Lines "name_bucket{le=...} n", "name_sum", "name_count".
  void write(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t n_ = 0;
};

struct Metrics {
  Histogram ttft{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram itl{{0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1, 2.5}};
  Histogram e2e{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}};
  std::mutex mu;
  std::map<std::pair<std::string, int>, uint64_t> requests;  // (route, status) -> count
  uint64_t prompt_tokens = 0, generated_tokens = 0;

  void count_request(const std::string& route, int status);
  void add_tokens(int prompt, int generated);
};

}  // namespace awq::server
