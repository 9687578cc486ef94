// TextStream (UTF-8 holding, stop strings) and generation_config.json defaults.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "runtime/generate.h"

using namespace awq;

TEST(TextStream, HoldsBackIncompleteUtf8) {
  TextStream s;
  // "é" = C3 A9, "世" = E4 B8 96, "🌍" = F0 9F 8C 8D split across tokens
  EXPECT_EQ(s.push("a\xC3"), "a");
  EXPECT_EQ(s.push("\xA9 \xE4\xB8"), "\xC3\xA9 ");
  EXPECT_EQ(s.push("\x96\xF0\x9F"), "\xE4\xB8\x96");
  EXPECT_EQ(s.push("\x8C"), "");
  EXPECT_EQ(s.push("\x8D!"), "\xF0\x9F\x8C\x8D!");
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.text(), "a\xC3\xA9 \xE4\xB8\x96\xF0\x9F\x8C\x8D!");
  TextStream t;
  EXPECT_EQ(t.push("x\xE4"), "x");
  EXPECT_EQ(t.flush(), "\xE4");  // truncated sequence at the end is released as is
}

TEST(TextStream, StopStringsAcrossTokens) {
  TextStream s({"</end>", "STOP"});
  EXPECT_EQ(s.push("hello </"), "hello ");  // "</" may start "</end>"
  EXPECT_EQ(s.push("e"), "");
  EXPECT_EQ(s.push("x"), "</ex");          // not a stop string after all
  EXPECT_EQ(s.push(" ST"), " ");
  EXPECT_EQ(s.push("OP tail"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.text(), "hello </ex ");
  TextStream u({"ab"});
  EXPECT_EQ(u.push("xxaby"), "xx");
  EXPECT_TRUE(u.stopped());
}

TEST(GenerationDefaults, ReadsConfigOrFallsBackToGreedy) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("awq_gen_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto p = load_generation_defaults(dir.string());  // no file
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->temperature, 0.0f);
  std::ofstream(dir / "generation_config.json")
      << R"({"do_sample": true, "temperature": 0.6, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.1})";
  p = load_generation_defaults(dir.string());
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FLOAT_EQ(p->temperature, 0.6f);
  EXPECT_EQ(p->top_k, 20);
  EXPECT_FLOAT_EQ(p->top_p, 0.95f);
  EXPECT_FLOAT_EQ(p->repetition_penalty, 1.1f);
  std::ofstream(dir / "generation_config.json") << R"({"bos_token_id": 1, "eos_token_id": 2})";
  p = load_generation_defaults(dir.string());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->temperature, 0.0f);
  std::ofstream(dir / "generation_config.json") << R"({"temperature": "hot"})";
  p = load_generation_defaults(dir.string());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("temperature"), std::string::npos);
  std::ofstream(dir / "generation_config.json") << "{not json";
  EXPECT_FALSE(load_generation_defaults(dir.string()).ok());
  fs::remove_all(dir);
}
