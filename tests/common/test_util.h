// Shared test helpers (header-only, included by the area test binaries): random layers and
// tiny model configurations. Deterministic for a given generator state.
#pragma once
#include <random>

#include "model/config.h"
#include "model/weights.h"

namespace awq::test {

// A linear with N(0, sd) weights (and, if bias, an N(0, sd) bias drawn after the weights).
inline Linear random_linear(int in, int out, std::mt19937& g, float sd, bool bias = false) {
  std::normal_distribution<float> d(0.0f, sd);
  Linear l;
  l.in = in;
  l.out = out;
  l.weight.resize((size_t)in * out);
  for (auto& w : l.weight) w = d(g);
  if (bias) {
    l.bias.resize(out);
    for (auto& b : l.bias) b = d(g);
  }
  return l;
}

// A Llama-architecture config of the given sizes (rms_eps 1e-5, rope_theta 1e4).
inline ModelConfig tiny_llama_config(int hidden, int intermediate, int n_layers, int n_heads,
                                     int n_kv_heads, int head_dim, int vocab) {
  ModelConfig c;
  c.arch = &supported_architectures()[0];
  c.hidden = hidden;
  c.intermediate = intermediate;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = head_dim;
  c.vocab = vocab;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  return c;
}

}  // namespace awq::test
