#include "server/metrics.h"

#include <algorithm>
#include <cstdio>

namespace awq::server {

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lk(mu_);
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  ++counts_[i];
  sum_ += v;
  ++n_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lk(mu_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  char buf[128];
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                  (unsigned long long)cum);
    out += buf;
  }
  cum += counts_.back();
  std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(), (unsigned long long)cum);
  out += buf;
  std::snprintf(buf, sizeof buf, "%s_sum %.6f\n%s_count %llu\n", name.c_str(), sum_, name.c_str(),
                (unsigned long long)n_);
  out += buf;
}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard<std::mutex> lk(mu);
  ++requests[{route, status}];
}

void Metrics::add_tokens(int prompt, int generated) {
  std::lock_guard<std::mutex> lk(mu);
  prompt_tokens += prompt;
  generated_tokens += generated;
}

}  // namespace awq::server
