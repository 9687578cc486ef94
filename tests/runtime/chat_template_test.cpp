// Chat templates: every case of tests/fixtures/runtime/chat_templates.json (rendered by Python
// jinja2 the way transformers does, scripts/gen_chat_template_fixtures.py) must be reproduced
// byte for byte; unsupported syntax must fail with an error naming the construct.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "runtime/chat_template.h"

using namespace awq;

namespace {
nlohmann::json load_fixture() {
  std::ifstream f(std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/runtime/chat_templates.json");
  EXPECT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::string parse_error(const std::string& src) {
  auto t = ChatTemplate::parse(src);
  return t.ok() ? "" : t.error().message;
}

std::string render_error(const std::string& src, const nlohmann::json& ctx = nlohmann::json::object()) {
  auto t = ChatTemplate::parse(src);
  if (!t.ok()) return "parse: " + t.error().message;
  auto r = t->render(ctx);
  return r.ok() ? "" : r.error().message;
}
}  // namespace

TEST(ChatTemplate, ReproducesJinja2Fixtures) {
  const auto doc = load_fixture();
  const auto& templates = doc.at("templates");
  int n = 0, n_err = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string name = c.at("template"), conv = c.at("conversation");
    SCOPED_TRACE(name + " / " + conv + " / add_generation_prompt=" +
                 (c["context"]["add_generation_prompt"].get<bool>() ? "true" : "false"));
    auto t = ChatTemplate::parse(templates.at(name).get<std::string>());
    ASSERT_TRUE(t.ok()) << t.error().message;
    auto r = t->render(c.at("context"));
    if (c.contains("error")) {
      ASSERT_FALSE(r.ok()) << "expected an error, rendered: " << *r;
      EXPECT_NE(r.error().message.find(c["error"].get<std::string>()), std::string::npos)
          << r.error().message;
      ++n_err;
    } else {
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(*r, c.at("expected").get<std::string>());
    }
    ++n;
  }
  EXPECT_GE(n, 70);
  EXPECT_GE(n_err, 4);  // Mistral/Llama-2 reject non-alternating roles via raise_exception
}

TEST(ChatTemplate, ApplyBuildsTheUsualContext) {
  auto t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content'] }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}");
  ASSERT_TRUE(t.ok());
  auto r = t->apply({{"system", "S"}, {"user", "U"}}, true, "<s>", "</s>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "<s><system>S<user>U<assistant></s>");
}

TEST(ChatTemplate, UnsupportedSyntaxNamesTheConstruct) {
  EXPECT_NE(parse_error("{% macro f() %}x{% endmacro %}").find("unsupported statement '{% macro %}'"),
            std::string::npos) << parse_error("{% macro f() %}x{% endmacro %}");
  EXPECT_NE(parse_error("{% for m in messages %}{% break %}{% endfor %}").find("'{% break %}'"),
            std::string::npos);
  EXPECT_NE(parse_error("{% set ns.x = 1 %}").find("namespace"), std::string::npos);
  EXPECT_NE(parse_error("{% set x %}a{% endset %}").find("endset"), std::string::npos);
  EXPECT_NE(parse_error("{{ 'abc' ").find("unclosed '{{'"), std::string::npos);
  EXPECT_NE(parse_error("{% if true %}x").find("missing '{% endif %}'"), std::string::npos);
  EXPECT_NE(parse_error("{% endfor %}").find("unexpected '{% endfor %}'"), std::string::npos);
  EXPECT_NE(parse_error("{{ 'abc }}").find("unclosed '{{'"), std::string::npos);
  EXPECT_NE(parse_error("{{ a $ b }}").find("unexpected character '$'"), std::string::npos);
  EXPECT_NE(render_error("{{ messages | tojson }}").find("unsupported filter 'tojson'"),
            std::string::npos);
  EXPECT_NE(render_error("{{ x is divisibleby(3) }}").find("unsupported test 'is divisibleby'"),
            std::string::npos);
  EXPECT_NE(render_error("{{ strftime_now('%Y') }}").find("unsupported function 'strftime_now()'"),
            std::string::npos);
  EXPECT_NE(render_error("{{ raise_exception('custom failure') }}").find("custom failure"),
            std::string::npos);
  EXPECT_NE(render_error("{{ nothing['role'] }}").find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a' + 1 }}").find("unsupported operand types for '+'"), std::string::npos);
  EXPECT_NE(render_error("{{ 1 // 0 }}").find("division by zero"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::parse("{{ 1 }}")->render(nlohmann::json::array()).ok());
}

TEST(ChatTemplate, WhitespaceControlAndScoping) {
  // trim_blocks + lstrip_blocks as transformers sets them; '-' strips all whitespace.
  auto t = ChatTemplate::parse("a\n  {% if true %}\n  b\n  {% endif %}\nc {{- ' d ' -}} e");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->render(nlohmann::json::object()), "a\n  b\nc d e");
  // set inside a for loop does not leak out of it (Jinja scoping); set inside if does.
  auto s = ChatTemplate::parse(
      "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"
      "{% if true %}{% set x = 5 %}{% endif %}{{ x }}");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s->render(nlohmann::json::object()), "2315");
}
