#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include <sys/socket.h>

#include "core/threads.h"
#include "server/metrics.h"

extern "C" const unsigned char awq_web_index_html[];
extern "C" const unsigned long awq_web_index_html_size;

namespace awq::server {

using nlohmann::json;
using clk = std::chrono::steady_clock;

namespace {

double since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_json(e)); }

ApiError make_api_error(int status, const std::string& msg, const std::string& type = "invalid_request_error",
                        const std::string& code = "") {
  ApiError e;
  e.status = status;
  e.message = msg;
  e.type = type;
  e.code = code;
  return e;
}

// Parse a JSON body; a syntax error or invalid UTF-8 is a 400 that says where.
std::optional<ApiError> parse_body(const httplib::Request& req, json& out) {
  try {
    out = json::parse(req.body);
  } catch (const json::parse_error& e) {
    return make_api_error(400, std::string("invalid JSON body: ") + e.what());
  }
  if (!out.is_object()) return make_api_error(400, "the request body must be a JSON object");
  return std::nullopt;
}

std::string token_str(const Tokenizer& tok, int32_t id) { return tok.token_text(id); }

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back((int)c);
  return b;
}

}  // namespace

// Everything one generation request accumulates from its events.
struct Gen {
  ParsedRequest pr;
  std::shared_ptr<RequestStream> rs;
  std::string id, route;
  int64_t created = 0;
  clk::time_point t_start;
  struct Choice {
    std::string text, finish;
    int tokens = 0;
    double last_t = -1;
    json lp_content = json::array();  // chat logprobs entries
    json lp_tokens = json::array(), lp_token_logprobs = json::array(), lp_top = json::array(),
         lp_offsets = json::array();  // completions logprobs
    bool role_sent = false;
  };
  std::vector<Choice> choices;
  int n_done = 0;
  double ttft = -1;
  std::string error;
  bool logged = false;
};

constexpr int kListenBacklog = 1024;

struct Server::Impl {
  BatchModel& model;
  Scheduler& sched;
  ApiContext ctx;
  ServeOptions opt;
  httplib::Server svr;
  Metrics metrics;
  std::atomic<bool> stopping{false}, engine_stop{false};
  std::atomic<uint64_t> next_id{1};
  std::atomic<int> active{0};  // generation requests whose response is not written yet
  int64_t started = 0;
  int listen_fd = -1;  // the listening socket (for its backlog, see bind())

  Impl(BatchModel& m, Scheduler& s, ApiContext c, ServeOptions o)
      : model(m), sched(s), ctx(std::move(c)), opt(std::move(o)) {
    started = (int64_t)std::time(nullptr);
  }

  void log_gen(Gen& g, int status) {
    if (g.logged) return;
    g.logged = true;
    int gen = 0;
    std::string fin;
    for (auto& c : g.choices) {
      gen += c.tokens;
      if (!fin.empty()) fin += ",";
      fin += c.finish.empty() ? "-" : c.finish;
    }
    metrics.add_tokens(g.rs ? g.rs->prompt_tokens() : 0, gen);
    metrics.count_request(g.route, status);
    const double total = since(g.t_start);
    metrics.e2e.observe(total);
    std::fprintf(stderr,
                 "[%s] %s status=%d prompt=%d cached=%d generated=%d ttft=%.3fs total=%.3fs finish=%s%s\n",
                 g.id.c_str(), g.route.c_str(), status, g.rs ? g.rs->prompt_tokens() : 0,
                 g.rs ? g.rs->cached_tokens() : 0, gen, g.ttft, total, fin.c_str(),
                 g.pr.stream ? " stream" : "");
  }

  // Fold one event into g; returns the text/logprob delta entries for streaming.
  void absorb(Gen& g, const GenEvent& e, json* lp_delta) {
    Gen::Choice& c = g.choices[e.index];
    if (e.token >= 0) {
      ++c.tokens;
      if (g.ttft < 0) {
        g.ttft = e.t - g.rs->t_submit();
        metrics.ttft.observe(g.ttft);
      }
      if (c.last_t >= 0) metrics.itl.observe(e.t - c.last_t);
      c.last_t = e.t;
      if (g.pr.gen.logprobs >= 0) {
        const std::string ts = token_str(*ctx.tok, e.token);
        if (g.pr.chat) {
          json top = json::array();
          for (auto [id, lp] : e.top) {
            const std::string s = token_str(*ctx.tok, id);
            top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
          }
          json entry = {{"token", ts}, {"logprob", e.logprob}, {"bytes", bytes_of(ts)}, {"top_logprobs", top}};
          c.lp_content.push_back(entry);
          if (lp_delta) *lp_delta = json{{"content", json::array({entry})}};
        } else {
          json top = json::object();
          for (auto [id, lp] : e.top) top[token_str(*ctx.tok, id)] = lp;
          const int offset = (int)(c.text.size() + (g.pr.echo ? g.pr.prompt_text.size() : 0));
          c.lp_tokens.push_back(ts);
          c.lp_token_logprobs.push_back(e.logprob);
          c.lp_top.push_back(top);
          c.lp_offsets.push_back(offset);
          if (lp_delta)
            *lp_delta = json{{"tokens", json::array({ts})},
                             {"token_logprobs", json::array({e.logprob})},
                             {"top_logprobs", json::array({top})},
                             {"text_offset", json::array({offset})}};
        }
      }
    }
    c.text += e.text;
    if (e.finished) {
      c.finish = e.finish_reason == "cancelled" ? "abort" : e.finish_reason;
      if (!e.error.empty()) g.error = e.error;
      ++g.n_done;
    }
  }

  json usage(const Gen& g) const {
    int gen = 0;
    for (auto& c : g.choices) gen += c.tokens;
    const int p = g.rs->prompt_tokens();
    return json{{"prompt_tokens", p},
                {"completion_tokens", gen},
                {"total_tokens", p + gen},
                {"prompt_tokens_details", {{"cached_tokens", g.rs->cached_tokens()}}}};
  }

  json full_response(const Gen& g) const {
    json choices = json::array();
    for (size_t i = 0; i < g.choices.size(); ++i) {
      const Gen::Choice& c = g.choices[i];
      json ch = {{"index", i}, {"finish_reason", c.finish}};
      if (g.pr.chat) {
        ch["message"] = {{"role", "assistant"}, {"content", c.text}};
        ch["logprobs"] = g.pr.gen.logprobs >= 0 ? json{{"content", c.lp_content}} : json(nullptr);
      } else {
        ch["text"] = g.pr.echo ? g.pr.prompt_text + c.text : c.text;
        ch["logprobs"] = g.pr.gen.logprobs >= 0 ? json{{"tokens", c.lp_tokens},
                                                      {"token_logprobs", c.lp_token_logprobs},
                                                      {"top_logprobs", c.lp_top},
                                                      {"text_offset", c.lp_offsets}}
                                                : json(nullptr);
      }
      choices.push_back(ch);
    }
    return json{{"id", g.id},
                {"object", g.pr.chat ? "chat.completion" : "text_completion"},
                {"created", g.created},
                {"model", ctx.model_name},
                {"choices", choices},
                {"usage", usage(g)}};
  }

  json chunk(const Gen& g, json choices) const {
    json j = {{"id", g.id},
              {"object", g.pr.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", g.created},
              {"model", ctx.model_name},
              {"choices", std::move(choices)}};
    if (g.pr.include_usage) j["usage"] = nullptr;
    return j;
  }

  // SSE lines for one event (may be empty: nothing to say yet).
  std::string sse_for(Gen& g, const GenEvent& e) {
    json lp_delta = nullptr;
    absorb(g, e, &lp_delta);
    Gen::Choice& c = g.choices[e.index];
    std::string out;
    if (!e.error.empty()) {
      ApiError err = make_api_error(500, "generation failed: " + e.error, "server_error");
      out += "data: " + dump(error_json(err)) + "\n\n";
      return out;
    }
    const bool has_text = !e.text.empty(), has_lp = !lp_delta.is_null();
    if (!has_text && !has_lp && !e.finished) return out;
    json ch = {{"index", e.index}, {"logprobs", lp_delta}, {"finish_reason", e.finished ? json(c.finish) : json(nullptr)}};
    if (g.pr.chat) {
      json delta = json::object();
      if (!c.role_sent) {
        delta["role"] = "assistant";
        c.role_sent = true;
      }
      if (has_text || !e.finished) delta["content"] = e.text;
      ch["delta"] = delta;
    } else {
      ch["text"] = e.text;
    }
    out += "data: " + dump(chunk(g, json::array({ch}))) + "\n\n";
    return out;
  }

  void handle_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    auto g = std::make_shared<Gen>();
    g->t_start = clk::now();
    g->route = chat ? "/v1/chat/completions" : "/v1/completions";
    g->id = std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(started) + "-" +
            std::to_string(next_id.fetch_add(1));
    g->created = (int64_t)std::time(nullptr);
    auto reject = [&](const ApiError& e) {
      send_error(res, e);
      metrics.count_request(g->route, e.status);
      std::fprintf(stderr, "[%s] %s status=%d error: %s\n", g->id.c_str(), g->route.c_str(), e.status,
                   e.message.c_str());
    };
    json body;
    if (auto e = parse_body(req, body)) return reject(*e);
    if (auto e = parse_generation(body, chat, ctx, g->pr)) return reject(*e);
    if (stopping) return reject(make_api_error(503, "the server is shutting down", "server_error"));
    SubmitError se = SubmitError::kNone;
    std::string msg;
    g->rs = sched.submit(g->pr.gen, &se, &msg);
    if (!g->rs) {
      if (se == SubmitError::kInvalid) return reject(make_api_error(400, msg));
      return reject(make_api_error(503, msg, "server_error", se == SubmitError::kQueueFull ? "queue_full" : ""));
    }
    g->choices.resize(g->pr.gen.n);
    ++active;
    if (!g->pr.stream) {
      struct Done {
        std::atomic<int>& a;
        ~Done() { --a; }
      } done{active};
      GenEvent e;
      while (g->n_done < (int)g->choices.size())
        if (g->rs->pop(e, std::chrono::milliseconds(200))) absorb(*g, e, nullptr);
      if (!g->error.empty()) {
        reject(make_api_error(500, "generation failed: " + g->error, "server_error"));
        g->logged = true;
        return;
      }
      send_json(res, 200, full_response(*g));
      log_gen(*g, 200);
      return;
    }
    // Streaming: server-sent events, ending in "data: [DONE]".
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, g](size_t, httplib::DataSink& sink) -> bool {
          if (g->n_done == (int)g->choices.size()) {
            std::string tail;
            if (g->pr.include_usage) {
              json u = chunk(*g, json::array());
              u["usage"] = usage(*g);
              tail += "data: " + dump(u) + "\n\n";
            }
            tail += "data: [DONE]\n\n";
            if (!sink.write(tail.data(), tail.size())) return false;
            sink.done();
            return true;
          }
          GenEvent e;
          std::string out;
          auto idle_since = clk::now();
          // Wait for events; every second without one, a comment line finds a gone client.
          while (out.empty()) {
            if (g->rs->pop(e, std::chrono::milliseconds(100))) {
              out = sse_for(*g, e);
              // drain what is already queued into one write
              while (g->n_done < (int)g->choices.size() && g->rs->pop(e, std::chrono::milliseconds(0)))
                out += sse_for(*g, e);
              if (out.empty() && g->n_done == (int)g->choices.size()) return true;
            } else if (since(idle_since) > 1.0) {
              out = ": keep-alive\n\n";
            }
            if (g->n_done == (int)g->choices.size() && out.empty()) return true;
          }
          return sink.write(out.data(), out.size());  // false: the client is gone
        },
        [this, g](bool success) {
          if (!success || g->n_done < (int)g->choices.size()) g->rs->cancel();  // frees its blocks
          log_gen(*g, 200);
          --active;
        });
  }

  void handle_tokenize(const httplib::Request& req, httplib::Response& res) {
    json b;
    if (auto e = parse_body(req, b)) return send_error(res, *e);
    if (auto it = b.find("model"); it != b.end() && it->is_string() && it->get<std::string>() != ctx.model_name) {
      ApiError e = make_api_error(404, "The model '" + it->get<std::string>() + "' does not exist", "invalid_request_error", "model_not_found");
      e.param = "model";
      return send_error(res, e);
    }
    std::vector<int32_t> ids;
    if (b.contains("messages")) {
      std::string text;
      if (auto e = render_messages(b["messages"], ctx, text)) return send_error(res, *e);
      ids = ctx.tok->encode(text, false);
    } else {
      auto it = b.find("prompt");
      if (it == b.end() || !it->is_string()) {
        ApiError e = make_api_error(400, "'prompt' (a string) or 'messages' is required");
        e.param = "prompt";
        return send_error(res, e);
      }
      bool add_special = true;
      if (auto a = b.find("add_special_tokens"); a != b.end() && !a->is_null()) {
        if (!a->is_boolean()) {
          ApiError e = make_api_error(400, "'add_special_tokens' must be true or false");
          e.param = "add_special_tokens";
          return send_error(res, e);
        }
        add_special = a->get<bool>();
      }
      ids = ctx.tok->encode(it->get<std::string>(), add_special);
    }
    json strs = json::array();
    for (int32_t t : ids) strs.push_back(ctx.tok->token_text(t));
    send_json(res, 200, {{"count", ids.size()}, {"max_model_len", ctx.max_ctx}, {"tokens", ids}, {"token_strs", strs}});
  }

  void handle_detokenize(const httplib::Request& req, httplib::Response& res) {
    json b;
    if (auto e = parse_body(req, b)) return send_error(res, *e);
    auto it = b.find("tokens");
    ApiError bad_tokens = make_api_error(400, "'tokens' must be an array of token ids in [0, " +
                                                  std::to_string(ctx.tok->vocab_size()) + ")");
    bad_tokens.param = "tokens";
    if (it == b.end() || !it->is_array()) return send_error(res, bad_tokens);
    std::vector<int32_t> ids;
    for (const json& t : *it) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= (int64_t)ctx.tok->vocab_size())
        return send_error(res, bad_tokens);
      ids.push_back((int32_t)t.get<int64_t>());
    }
    send_json(res, 200, {{"prompt", ctx.tok->decode(ids, false)}});
  }

  std::string metrics_text() {
    const SchedulerStats s = sched.stats();
    std::string o;
    auto gauge = [&](const char* name, const char* help, double v, const char* type = "gauge") {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + buf + "\n";
    };
    {
      std::lock_guard<std::mutex> lk(metrics.mu);
      o += "# HELP awq_requests_total Requests by route and HTTP status.\n# TYPE awq_requests_total counter\n";
      for (const auto& [k, n] : metrics.requests)
        o += "awq_requests_total{route=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
             std::to_string(n) + "\n";
      gauge("awq_prompt_tokens_total", "Prompt tokens of finished requests.", (double)metrics.prompt_tokens, "counter");
      gauge("awq_generation_tokens_total", "Generated tokens of finished requests.", (double)metrics.generated_tokens, "counter");
    }
    gauge("awq_num_requests_running", "Sequences being decoded or prefilled.", s.running);
    gauge("awq_num_requests_waiting", "Sequences waiting for admission.", s.waiting);
    gauge("awq_kv_blocks_total", "KV cache blocks in the pool (16 tokens each).", s.kv.total);
    gauge("awq_kv_blocks_used", "KV blocks held by sequences.", s.kv.used);
    gauge("awq_kv_blocks_cached", "Unused KV blocks kept for prefix reuse (evictable).", s.kv.cached);
    gauge("awq_kv_blocks_free", "Unused, unregistered KV blocks.", s.kv.free);
    gauge("awq_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.", (double)s.kv.prefix_hit_tokens, "counter");
    gauge("awq_prefix_cache_queries_total", "Sequences admitted with a prefix-cache lookup.", (double)s.kv.prefix_queries, "counter");
    gauge("awq_prompt_tokens_computed_total", "Prompt tokens run through the model.", (double)s.prompt_tokens_computed, "counter");
    gauge("awq_engine_steps_total", "Engine forward steps.", (double)s.steps, "counter");
    gauge("awq_preemptions_total", "Sequences preempted (recomputed later) for lack of KV blocks.", (double)s.preemptions, "counter");
    metrics.ttft.write(o, "awq_time_to_first_token_seconds", "Time from submission to the first token.");
    metrics.itl.write(o, "awq_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.");
    metrics.e2e.write(o, "awq_e2e_request_latency_seconds", "Time from request to last byte.");
    return o;
  }

  void setup_routes() {
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_keep_alive_timeout(2);
    svr.set_read_timeout(30, 0);
    svr.set_write_timeout(30, 0);
    svr.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_fd = sock;
    });
    const int nthreads = std::max(4, opt.http_threads);
    svr.new_task_queue = [nthreads] { return new httplib::ThreadPool(nthreads); };
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // the chat page itself holds no data (the key is typed into the page), like /health
      if (opt.api_key.empty() || req.path == "/health" || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + opt.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, make_api_error(401, "invalid or missing API key (Authorization: Bearer <key>)",
                                     "invalid_request_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    // Statuses httplib sets itself (404 no route, 413 body too large, 400 bad request line...)
    // get an OpenAI error object too.
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string msg = res.status == 404   ? "no route " + req.method + " " + req.path
                        : res.status == 413 ? "the request body is larger than " +
                                                  std::to_string(opt.max_body_bytes) + " bytes"
                                            : "HTTP error " + std::to_string(res.status);
      send_error(res, make_api_error(res.status, msg));
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, make_api_error(500, what, "server_error"));
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // generation routes count and log themselves (with token counts) once they end
      if (req.path == "/v1/completions" || req.path == "/v1/chat/completions") {
        if (res.status == 413 || res.status == 401 || res.status == 404) {
          metrics.count_request(req.path, res.status);
          std::fprintf(stderr, "[-] %s %s status=%d\n", req.method.c_str(), req.path.c_str(), res.status);
        }
        return;
      }
      metrics.count_request(req.path == "/v1/models" || req.path == "/health" || req.path == "/metrics" ||
                                    req.path == "/tokenize" || req.path == "/detokenize" || req.path == "/"
                                ? req.path
                                : "other",
                            res.status);
      if (req.path != "/health" && req.path != "/metrics")
        std::fprintf(stderr, "[-] %s %s status=%d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (stopping) return send_json(res, 503, {{"status", "shutting down"}});
      send_json(res, 200, {{"status", "ok"}});
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"object", "list"},
                           {"data", json::array({{{"id", ctx.model_name},
                                                  {"object", "model"},
                                                  {"created", started},
                                                  {"owned_by", "awq-cpp"},
                                                  {"max_model_len", ctx.max_ctx}}})}});
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      // src/server/web/index.html, compiled in by cmake/embed.cmake (no files needed at run time)
      res.set_content(reinterpret_cast<const char*>(awq_web_index_html), awq_web_index_html_size,
                      "text/html; charset=utf-8");
    });
    svr.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(q, r, false); });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(q, r, true); });
    svr.Post("/tokenize", [this](const httplib::Request& q, httplib::Response& r) { handle_tokenize(q, r); });
    svr.Post("/detokenize", [this](const httplib::Request& q, httplib::Response& r) { handle_detokenize(q, r); });
  }
};

Server::Server(BatchModel& model, Scheduler& sched, ApiContext ctx, ServeOptions opt)
    : impl_(std::make_unique<Impl>(model, sched, std::move(ctx), std::move(opt))) {
  impl_->setup_routes();
}

Server::~Server() = default;

Expected<int> Server::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.svr.bind_to_any_port(s.opt.host);
    if (port < 0) return make_error("serve: cannot bind ", s.opt.host, " (any port)");
  } else if (!s.svr.bind_to_port(s.opt.host, port)) {
    return make_error("serve: cannot bind ", s.opt.host, ":", port, " (in use, or not a local address)");
  }
  // The httplib build listens with a backlog of 5: a burst of connections (32 clients starting
  // at once on a loaded machine) then overflows the accept queue and clients see resets. Linux
  // takes a new backlog from a second listen() on the same socket.
  if (s.listen_fd >= 0) ::listen(s.listen_fd, kListenBacklog);
  return port;
}

void Server::serve() {
  Impl& s = *impl_;
  // The engine loop runs on the calling thread and HTTP on a new one, not the other way round:
  // the caller loaded the model, so its OpenMP team already exists. A second team on another
  // thread makes libgomp count more threads than cores and cut its barrier spin to 100
  // iterations (the "throttled" spin count): every one of the ~200 parallel regions of a decode
  // step then sleeps and wakes through futexes (32 % of the server's samples at 1 stream, ITL
  // 10.6 ms against 3.3 ms/token in `awq bench`).
  std::thread http([&s] {
    s.svr.listen_after_bind();
    // every connection is done: no stream waits on the engine any more
    s.sched.abort_all();
    while (!s.sched.idle()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s.engine_stop = true;
  });
  s.sched.run(s.engine_stop);
  http.join();
}

void Server::shutdown() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.sched.shutdown();  // new requests: 503
  const auto t0 = clk::now();
  while (!s.sched.idle() && since(t0) < s.opt.drain_seconds)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  s.sched.abort_all();  // the rest end now, streams with their final chunk and [DONE]
  // httplib's stop() cuts chunked responses short: wait until every response is written
  while ((s.active > 0 || !s.sched.idle()) && since(t0) < s.opt.drain_seconds + 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s.svr.stop();  // close the listening socket; serve() returns once open connections end
}

}  // namespace awq::server
