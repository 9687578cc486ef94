// Request validation of the OpenAI routes (server/api.h) with the SmolLM2 tokenizer fixture, and
// the end-to-end server test (tests/server/test_serve.py: the `openai` client, faults, signals)
// on the W4 SmolLM2 checkpoint when AWQ_SMOLLM2_AWQ_DIR is set (make test sets it).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "server/api.h"

using namespace awq;
using namespace awq::server;
using nlohmann::json;

namespace {

struct Fixture {
  Tokenizer tok;
  ChatTemplate tmpl;
  ApiContext ctx;
};

Fixture& fx() {
  static Fixture* f = [] {
    auto tok = Tokenizer::load(std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/tokenizer/smollm2");
    EXPECT_TRUE(tok.ok()) << tok.error().message;
    auto tmpl = ChatTemplate::parse(tok->chat_template());
    EXPECT_TRUE(tmpl.ok());
    auto* f = new Fixture{std::move(*tok), std::move(*tmpl), {}};
    f->ctx.tok = &f->tok;
    f->ctx.chat_template = &f->tmpl;
    f->ctx.model_name = "m";
    f->ctx.max_ctx = 64;
    f->ctx.eos = f->tok.decode({f->tok.eos_id()}, false);
    return f;
  }();
  return *f;
}

std::optional<ApiError> parse(const std::string& body, bool chat, ParsedRequest* out = nullptr) {
  ParsedRequest pr;
  auto e = parse_generation(json::parse(body), chat, fx().ctx, pr);
  if (out) *out = pr;
  return e;
}

void expect_bad(const std::string& body, bool chat, int status, const std::string& param) {
  auto e = parse(body, chat);
  ASSERT_TRUE(e.has_value()) << body;
  EXPECT_EQ(e->status, status) << body;
  EXPECT_EQ(e->param, param) << body << ": " << e->message;
  EXPECT_FALSE(e->message.empty());
}

}  // namespace

TEST(ServerApi, ParsesCompletionFields) {
  ParsedRequest pr;
  auto e = parse(R"({"model": "m", "prompt": "Hello", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
                     "top_k": 40, "min_p": 0.1, "repetition_penalty": 1.1, "presence_penalty": 0.5,
                     "frequency_penalty": -0.5, "seed": 3, "stop": ["a", "b"], "n": 2, "logprobs": 2,
                     "echo": true, "stream": true, "stream_options": {"include_usage": true},
                     "some_future_field": {"x": 1}})",
                 false, &pr);
  ASSERT_FALSE(e.has_value()) << e->message;
  EXPECT_EQ(pr.gen.prompt, fx().tok.encode("Hello", true));
  EXPECT_EQ(pr.gen.max_tokens, 5);
  EXPECT_FLOAT_EQ(pr.gen.sampling.temperature, 0.5f);
  EXPECT_EQ(pr.gen.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(pr.gen.frequency_penalty, -0.5f);
  EXPECT_EQ(pr.gen.sampling.seed, 3u);
  EXPECT_EQ(pr.gen.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(pr.gen.n, 2);
  EXPECT_EQ(pr.gen.logprobs, 2);
  EXPECT_TRUE(pr.echo && pr.stream && pr.include_usage);
  for (int32_t id : fx().tok.eos_ids()) EXPECT_TRUE(pr.gen.stop_ids.count(id));
}

TEST(ServerApi, ChatUsesTheTemplateAndDefaults) {
  ParsedRequest pr;
  auto e = parse(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                     "max_completion_tokens": 7, "logprobs": true, "top_logprobs": 3})",
                 true, &pr);
  ASSERT_FALSE(e.has_value()) << e->message;
  auto text = fx().tmpl.apply({{"user", "Hi"}}, true, fx().ctx.bos, fx().ctx.eos);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(pr.gen.prompt, fx().tok.encode(*text, false));
  EXPECT_EQ(pr.gen.max_tokens, 7);
  EXPECT_EQ(pr.gen.logprobs, 3);
  // without max_tokens, chat may run to the end of the context; completions default to 16
  ASSERT_FALSE(parse(R"({"messages": [{"role": "user", "content": "Hi"}]})", true, &pr));
  EXPECT_EQ(pr.gen.max_tokens, 64 - (int)pr.gen.prompt.size());
  ASSERT_FALSE(parse(R"({"prompt": "Hi"})", false, &pr));
  EXPECT_EQ(pr.gen.max_tokens, 16);
}

TEST(ServerApi, BadFieldsAreA400NamingTheField) {
  expect_bad(R"({"prompt": "hi", "max_tokens": "5"})", false, 400, "max_tokens");
  expect_bad(R"({"prompt": "hi", "max_tokens": -3})", false, 400, "max_tokens");
  expect_bad(R"({"prompt": "hi", "max_tokens": 1e40})", false, 400, "max_tokens");
  expect_bad(R"({"prompt": "hi", "max_tokens": 18446744073709551615})", false, 400, "max_tokens");
  expect_bad(R"({"prompt": "hi", "max_tokens": 100})", false, 400, "max_tokens");  // > ctx - prompt
  expect_bad(R"({"prompt": "hi", "temperature": -1})", false, 400, "temperature");
  expect_bad(R"({"prompt": "hi", "top_p": 1.5})", false, 400, "top_p");
  expect_bad(R"({"prompt": "hi", "n": 0})", false, 400, "n");
  expect_bad(R"({"prompt": "hi", "stop": [1]})", false, 400, "stop");
  expect_bad(R"({"prompt": "hi", "seed": "x"})", false, 400, "seed");
  expect_bad(R"({"prompt": "hi", "stream_options": {"include_usage": 1}})", false, 400,
             "stream_options.include_usage");
  expect_bad(R"({"prompt": "hi", "logprobs": 50})", false, 400, "logprobs");
  expect_bad(R"({"prompt": ""})", false, 400, "prompt");
  expect_bad(R"({"prompt": [1, -2]})", false, 400, "prompt");
  expect_bad(R"({"prompt": ["a", "b"]})", false, 400, "prompt");
  expect_bad(R"({"prompt": ")" + std::string(300, 'x') + " " + std::string(300, 'y') + R"("})", false,
             400, "prompt");
  expect_bad(R"({"prompt": "hi", "model": "other"})", false, 404, "model");
  expect_bad(R"({"messages": []})", true, 400, "messages");
  expect_bad(R"({"messages": [{"role": "user", "content": 1}]})", true, 400, "messages[0].content");
  expect_bad(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true, 400,
             "messages[0].content[0]");
  expect_bad(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true, 400,
             "top_logprobs");
  expect_bad(R"({})", true, 400, "messages");
}

TEST(ServerApi, ErrorObjectHasOpenAIShape) {
  ApiError e;
  e.status = 400;
  e.message = "bad";
  e.param = "n";
  const json j = error_json(e);
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  // invalid UTF-8 (a partial token) never throws
  EXPECT_NO_THROW(dump(json{{"text", std::string("\xe2\x82")}}));
}

TEST(ServerEndToEnd, OpenAIClientFaultsAndSignals) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR not set (make test sets it)";
  if (std::system("python3 -c 'import openai' >/dev/null 2>&1") != 0)
    FAIL() << "the Python package `openai` is missing (make deps installs it)";
  const std::string cmd = "python3 " + std::string(AWQ_SOURCE_DIR) + "/tests/server/test_serve.py " +
                          std::string(AWQ_BINARY_DIR) + "/awq " + dir;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
