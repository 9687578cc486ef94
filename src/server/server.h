// `awq serve`: an OpenAI-compatible HTTP server (cpp-httplib) over the continuous-batching
// Scheduler. HTTP worker threads parse and validate requests, submit them to the scheduler and
// wait on their RequestStream; one engine thread runs Scheduler::run. A streaming client that
// disconnects cancels its request (its blocks are freed at the next step). See docs/SERVING.md.
#pragma once
#include <memory>
#include <string>

#include "core/status.h"
#include "runtime/scheduler.h"
#include "server/api.h"

namespace awq::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (bind() returns it)
  std::string api_key;           // non-empty: every route but /health needs "Bearer <key>"
  size_t max_body_bytes = 4u << 20;
  int http_threads = 64;         // worker threads (each holds one connection at a time)
  double drain_seconds = 5;      // on shutdown: time in-flight requests get to finish
};

class Server {
 public:
  // model, scheduler and ctx's tokenizer/template must outlive the server.
  Server(BatchModel& model, Scheduler& sched, ApiContext ctx, ServeOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Bind the listening socket; returns the port. Errors: the address is unusable.
  Expected<int> bind();
  // Serve (runs the engine thread) until shutdown(); returns when every connection is done.
  void serve();
  // From any thread (e.g. a signal watcher): stop accepting, let in-flight requests run for
  // drain_seconds, then end them (finish_reason "abort", streams still get [DONE]).
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace awq::server
