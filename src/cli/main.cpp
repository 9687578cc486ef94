// `awq`: one binary, subcommands registered by the cmd_*.cpp files beside this one.
#include <algorithm>
#include <cstdio>

#include "cli/command.h"
#include "core/threads.h"

namespace awq::cli {
std::vector<CommandDef>& registry() {
  static std::vector<CommandDef> r;
  return r;
}
int fail(const Error& e) { return fail(e.message); }
int fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}
}  // namespace awq::cli

int main(int argc, char** argv) {
  awq::apply_default_omp_wait_policy(argv);  // may re-execute the program once
  using namespace awq::cli;
  CLI::App app{"awq-cpp: AWQ quantization and W4 inference"};
  app.require_subcommand(1);
  auto& cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, Runner>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners)
    if (sub->parsed()) {
      try {
        return run();
      } catch (const std::exception& e) {
        return fail(std::string("internal error: ") + e.what());
      }
    }
  return 1;
}
