// `awq quantize` stopped and continued (issue 15): a SIGTERM/SIGINT at a random point of a run
// ends it within seconds, leaving no output and no temp dir (only the documented resume state);
// a run SIGKILLed after block k continues with --resume to a checkpoint byte-identical to an
// uninterrupted run's; resuming with a different option or input is refused, naming it.
// These run the real binary (build/awq) in a child process.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/cancel.h"
#include "io/safetensors.h"
#include "quant/quantize.h"
#include "common/tiny_llama_dir.h"

extern char** environ;

using namespace awq;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("awq_resume_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
};

const fs::path kAwq = fs::path(AWQ_BINARY_DIR) / "awq";

// A random Llama with `layers` blocks (GQA 4/2 heads of 32, hidden 128, FFN 384) and the
// tiny_llama3 tokenizer: a few seconds of AWQ with the options below, several blocks to stop in.
fs::path make_model(const fs::path& dir, int layers, unsigned seed = 11) {
  awq::test::TinyLlamaShape s;
  s.hidden = 128;
  s.intermediate = 384;
  s.layers = layers;
  s.head_dim = 32;
  s.seed = seed;
  s.salient_channel = 5;
  s.salient_factor = 20.0f;
  return awq::test::write_tiny_llama_dir(dir, s);
}

fs::path make_calib(const fs::path& p) {
  std::string s;
  std::mt19937 g(3);
  const char* words[] = {"the", "model", "weights", "are", "quantized", "to", "four", "bits",
                         "with", "activation", "aware", "scales", "and", "clipping", "of", "groups"};
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 30; ++j) s += std::string(words[g() % 16]) + (j % 11 == 10 ? ".\n" : " ");
    s += "\n\n";
  }
  std::ofstream(p) << s;
  return p;
}

struct Child {
  pid_t pid = -1;
  fs::path log;
};

// Starts `awq quantize MODEL OUT <common options> extra...`, stdout+stderr to OUT.log.
Child spawn_quantize(const fs::path& model, const fs::path& out, const fs::path& calib,
                     std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {kAwq.string(), "quantize", model.string(), out.string(),
                                   "--calib", calib.string(), "--n-samples", "12", "--seqlen",
                                   "128", "--group-size", "32", "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child c;
  c.log = out.string() + ".log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, c.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  EXPECT_EQ(posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return c;
}

int wait_exit(pid_t pid) {
  int st = 0;
  EXPECT_EQ(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int run_quantize(const fs::path& model, const fs::path& out, const fs::path& calib,
                 std::vector<std::string> extra = {}) {
  return wait_exit(spawn_quantize(model, out, calib, std::move(extra)).pid);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int blocks_done(const fs::path& resume_dir) {
  const std::string s = read_file(resume_dir / "state.json");
  auto j = nlohmann::json::parse(s, nullptr, false);
  return j.is_object() ? j.value("blocks_done", -1) : -1;
}

// Names in dir other than the ones listed (the model, logs, calibration...).
std::vector<std::string> leftovers(const fs::path& dir, const std::string& out_name) {
  std::vector<std::string> r;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == out_name || n.find(".tmp") != std::string::npos || n.find("gguf-src") != std::string::npos)
      r.push_back(n);
  }
  return r;
}

void expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(a)) names.push_back(e.path().filename().string());
  ASSERT_FALSE(names.empty());
  for (auto& e : fs::directory_iterator(b))
    EXPECT_TRUE(fs::exists(a / e.path().filename())) << e.path() << " only in the resumed run";
  for (const auto& n : names) {
    ASSERT_TRUE(fs::exists(b / n)) << n << " missing in " << b;
    EXPECT_TRUE(read_file(a / n) == read_file(b / n)) << n << " differs";
  }
}

bool have_binary() { return fs::exists(kAwq); }

}  // namespace

TEST(QuantizeCancel, SignalAtARandomPointExitsQuicklyAndLeavesNoOutput) {
  if (!have_binary()) GTEST_SKIP() << kAwq << " not built";
  TempDir td;
  const fs::path model = make_model(td.p / "model", 4), calib = make_calib(td.p / "calib.txt");
  // Time one uninterrupted run, then stop runs at random points inside it.
  const auto t0 = Clock::now();
  ASSERT_EQ(run_quantize(model, td.p / "full", calib), 0) << read_file(td.p / "full.log");
  const double full_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::mt19937 g(std::random_device{}());
  for (int trial = 0; trial < 3; ++trial) {
    const int sig = trial % 2 ? SIGINT : SIGTERM;
    const std::string name = "out" + std::to_string(trial);
    const fs::path out = td.p / name;
    const double at = std::uniform_real_distribution<double>(0.02, 0.9)(g) * full_s;
    Child c = spawn_quantize(model, out, calib);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    const auto ts = Clock::now();
    ASSERT_EQ(kill(c.pid, sig), 0);
    const int rc = wait_exit(c.pid);
    const double exit_s = std::chrono::duration<double>(Clock::now() - ts).count();
    std::printf("signal %d at %.2f s of a %.2f s run: exit %d after %.3f s\n", sig, at, full_s,
                rc, exit_s);
    EXPECT_LT(exit_s, 10.0) << "a cancel must not wait for the end of a phase";
    if (rc == 0) {  // the run finished before the signal landed: nothing to check
      fs::remove_all(out);
      continue;
    }
    EXPECT_EQ(rc, 1) << read_file(c.log);
    EXPECT_NE(read_file(c.log).find("interrupted by SIG"), std::string::npos) << read_file(c.log);
    EXPECT_TRUE(leftovers(td.p, name).empty())
        << "left behind: " << leftovers(td.p, name)[0] << "\n" << read_file(c.log);
    // What may remain is the resume state; continuing it gives the uninterrupted checkpoint.
    const fs::path rs = out.string() + ".resume";
    if (fs::exists(rs)) {
      ASSERT_EQ(run_quantize(model, out, calib, {"--resume"}), 0) << read_file(c.log);
      expect_same_checkpoint(td.p / "full", out);
      EXPECT_FALSE(fs::exists(rs)) << "a completed run removes its resume state";
      fs::remove_all(out);
    }
  }
  // --no-resume-state: nothing at all is left behind.
  Child c = spawn_quantize(model, td.p / "nostate", calib, {"--no-resume-state"});
  std::this_thread::sleep_for(std::chrono::duration<double>(0.6 * full_s));
  kill(c.pid, SIGTERM);
  const int rc = wait_exit(c.pid);
  if (rc != 0) {
    for (auto& e : fs::directory_iterator(td.p))
      EXPECT_TRUE(e.path().filename().string().find("nostate.") == std::string::npos ||
                  e.path().filename() == "nostate.log")
          << e.path() << " left behind";
    EXPECT_FALSE(fs::exists(td.p / "nostate"));
  }
}

TEST(QuantizeResume, KilledAfterBlockKResumesToTheSameBytes) {
  if (!have_binary()) GTEST_SKIP() << kAwq << " not built";
  TempDir td;
  const int L = 4;
  const fs::path model = make_model(td.p / "model", L), calib = make_calib(td.p / "calib.txt");
  ASSERT_EQ(run_quantize(model, td.p / "ref", calib), 0) << read_file(td.p / "ref.log");
  const fs::path out = td.p / "out", rs = td.p / "out.resume";
  std::mt19937 g(std::random_device{}());
  const int k = std::uniform_int_distribution<int>(1, L - 2)(g);
  Child c = spawn_quantize(model, out, calib);
  int done = -1;
  while (true) {  // SIGKILL as soon as block k is saved
    done = fs::exists(rs / "state.json") ? blocks_done(rs) : -1;
    if (done >= k) break;
    int st;
    if (waitpid(c.pid, &st, WNOHANG) == c.pid) FAIL() << "finished before block " << k;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(c.pid, SIGKILL);
  wait_exit(c.pid);
  ASSERT_LT(done, L) << "killed too late to test a resume";
  ASSERT_FALSE(fs::exists(out));
  // Refusals: a different option, a different input, no --resume. The state survives them.
  EXPECT_NE(run_quantize(model, out, calib, {"--resume", "--no-zero-point"}), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("--zero-point differs"), std::string::npos)
      << read_file(out.string() + ".log");
  EXPECT_NE(run_quantize(model, out, calib, {"--resume", "--no-clip"}), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("--clip differs"), std::string::npos);
  EXPECT_NE(run_quantize(model, out, calib, {"--resume", "--grid-clip", "sym"}), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("--grid-clip differs"), std::string::npos);
  EXPECT_NE(run_quantize(model, out, calib), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("pass --resume"), std::string::npos);
  {
    const fs::path model2 = make_model(td.p / "model2", L, 12);  // other weights, same shapes
    EXPECT_NE(run_quantize(model2, out, calib, {"--resume"}), 0);
    EXPECT_NE(read_file(out.string() + ".log").find("input differs: model.safetensors"),
              std::string::npos)
        << read_file(out.string() + ".log");
  }
  ASSERT_FALSE(fs::exists(out));
  ASSERT_EQ(blocks_done(rs), done);
  fs::remove(out.string() + ".log");
  ASSERT_EQ(run_quantize(model, out, calib, {"--resume"}), 0) << read_file(out.string() + ".log");
  EXPECT_NE(read_file(out.string() + ".log").find("continuing at block " + std::to_string(done)),
            std::string::npos)
      << read_file(out.string() + ".log");
  expect_same_checkpoint(td.p / "ref", out);
  EXPECT_FALSE(fs::exists(rs));
}

// In-process: a cancel requested from another thread at a random moment ends quantize_model
// with an "interrupted" error and no output or temp dir (also runs under the sanitizers).
TEST(QuantizeCancel, InProcessCancelFromAnotherThread) {
  TempDir td;
  const fs::path model = make_model(td.p / "model", 3), calib = make_calib(td.p / "calib.txt");
  QuantizeOptions o;
  o.search.q.group_size = 32;
  o.calib_path = calib.string();
  o.n_samples = 16;
  o.seqlen = 128;
  o.progress = false;
  o.resume_state = false;
  const auto t0 = Clock::now();
  {
    auto full = quantize_model(model.string(), (td.p / "full").string(), o);
    ASSERT_TRUE(full.ok()) << full.error().message;
  }
  const double full_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::mt19937 g(std::random_device{}());
  const double at = std::uniform_real_distribution<double>(0.05, 0.8)(g) * full_s;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    request_cancel();
  });
  auto r = quantize_model(model.string(), (td.p / "out").string(), o);
  t.join();
  clear_cancel();
  if (r.ok()) GTEST_SKIP() << "finished before the cancel";
  EXPECT_NE(r.error().message.find("interrupted"), std::string::npos) << r.error().message;
  EXPECT_TRUE(leftovers(td.p, "out").empty());
}
