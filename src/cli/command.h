// Subcommand registry for the `awq` binary. Each cmd_<name>.cpp registers itself:
//
//   static awq::cli::Register reg("convert", "GGUF -> HF directory", [](CLI::App& sub) {
//     auto opts = std::make_shared<Opts>();
//     sub.add_option("model", opts->model)->required();
//     return [opts]() -> int { ...; return 0; };   // run: the process exit code
//   });
//
// Errors from the library are printed as "error: <message>" and exit code 1 (see fail()).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace awq::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct CommandDef {
  std::string name, help;
  Setup setup;
};

std::vector<CommandDef>& registry();

struct Register {
  Register(std::string name, std::string help, Setup setup) {
    registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

// Print an error to stderr and return the exit code for it.
int fail(const Error& e);
int fail(const std::string& msg);

}  // namespace awq::cli
