#include "core/cancel.h"

#include <atomic>
#include <csignal>

namespace awq {
namespace {

std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

extern "C" void on_cancel_signal(int sig) {
  if (g_cancel.exchange(true)) {  // second signal: give up waiting for the loops
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal.store(sig);
}

}  // namespace

bool cancel_requested() { return g_cancel.load(std::memory_order_relaxed); }
void request_cancel() { g_cancel.store(true); }
void clear_cancel() {
  g_cancel.store(false);
  g_signal.store(0);
}
int cancel_signal() { return g_signal.load(); }

Status check_cancel(const char* what) {
  if (!cancel_requested()) return Status::Ok();
  const int s = cancel_signal();
  return make_error(what && *what ? what : "", what && *what ? ": " : "", "interrupted by ",
                    s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "a cancel request");
}

void install_cancel_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_cancel_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace awq
