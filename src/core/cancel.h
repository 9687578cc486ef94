// Cooperative cancellation: one process-wide flag, set by SIGINT/SIGTERM (install_cancel_handlers)
// or by request_cancel(), and polled by every long loop (quantize grid and clip search, the
// calibration forward, perplexity / KL windows, conversion). A loop that sees the flag stops
// early and returns; its results are then unspecified, so every caller checks
// cancel_requested() (or check_cancel()) after a long call and returns the error. Output files
// are written to a temporary name and renamed only when complete, so unwinding leaves nothing.
#pragma once
#include "core/status.h"

namespace awq {

// True once a cancel was requested (relaxed atomic load: cheap enough for inner loops).
bool cancel_requested();
// Async-signal-safe.
void request_cancel();
// Clears the flag (tests, or a caller that handled the cancel and goes on).
void clear_cancel();
// Error when a cancel was requested: "interrupted by a signal (...)", what = the command.
Status check_cancel(const char* what = "");
// SIGINT and SIGTERM set the flag; a second one of either restores the default action and
// re-raises it (a user who presses Ctrl-C twice gets an immediate exit). Idempotent.
void install_cancel_handlers();
// The signal that requested the cancel (0: none or request_cancel()).
int cancel_signal();

}  // namespace awq
