#include "model/weights.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/half.h"
#include "io/compressed_tensors.h"
#include "kernels/w4.h"

namespace awq {

Linear& BlockWeights::linear(const std::string& n) {
  return const_cast<Linear&>(static_cast<const BlockWeights*>(this)->linear(n));
}
const Linear& BlockWeights::linear(const std::string& n) const {
  if (n == "q_proj") return q;
  if (n == "k_proj") return k;
  if (n == "v_proj") return v;
  if (n == "o_proj") return o;
  if (n == "gate_proj") return gate;
  if (n == "up_proj") return up;
  return down;
}

std::vector<float>& BlockWeights::norm(NormSlot s) {
  return const_cast<std::vector<float>&>(static_cast<const BlockWeights*>(this)->norm(s));
}
const std::vector<float>& BlockWeights::norm(NormSlot s) const {
  switch (s) {
    case NormSlot::Attn: return attn_norm;
    case NormSlot::PostAttn: return post_attn_norm;
    case NormSlot::Mlp: return mlp_norm;
    case NormSlot::PostMlp: return post_mlp_norm;
    case NormSlot::Q: return q_norm;
    default: return k_norm;
  }
}

int norm_width(const ModelConfig& cfg, NormSlot s) {
  return s == NormSlot::Q || s == NormSlot::K ? cfg.head_dim : cfg.hidden;
}

std::vector<float> stored_norm(const ModelConfig& cfg, const std::vector<float>& held) {
  std::vector<float> w = held;
  if (cfg.arch && cfg.arch->norm == NormKind::RmsPlusOne)
    for (auto& x : w) x -= 1.0f;
  return w;
}

namespace {

// A norm weight as the forward uses it (1 + w for Gemma), from the file's w.
Expected<std::vector<float>> load_norm(const SafeTensors& st, const ModelConfig& cfg,
                                       const std::string& name, int width) {
  AWQ_ASSIGN(std::vector<float> w, st.to_f32(name, {width}));
  if (cfg.arch->norm == NormKind::RmsPlusOne)
    for (auto& x : w) x += 1.0f;
  return w;
}

bool module_not_converted(const ModelConfig& cfg, const std::string& prefix) {
  for (const auto& m : cfg.quant.modules_to_not_convert)
    if (!m.empty() && prefix.find(m) != std::string::npos) return true;
  return false;
}

// Read an AutoAWQ GEMM linear (qweight [K, N/8] int32, qzeros [K/G, N/8] int32, scales [K/G, N] fp16).
Status load_awq_linear(const SafeTensors& st, const ModelConfig& cfg, const std::string& prefix,
                       Linear& l, const LoadOptions& opt) {
  const int K = l.in, N = l.out;
  const int G = cfg.quant.group_size <= 0 ? K : cfg.quant.group_size;
  if (cfg.quant.bits != 4)
    return make_error(prefix, ": AWQ GEMM checkpoints with bits=", cfg.quant.bits,
                      " are not supported (supported: 4)");
  if (N % 8 != 0 || K % G != 0)
    return make_error(prefix, ": shape [", N, ", ", K, "] does not fit group size ", G,
                      " (need out % 8 == 0 and in % group_size == 0)");
  auto check = [&](const std::string& name, DType dt,
                   std::vector<int64_t> shape) -> Expected<const TensorView*> {
    const TensorView* t = st.find(name);
    if (!t) return make_error("missing tensor ", name);
    if (t->dtype != dt)
      return make_error(name, ": expected dtype ", dtype_name(dt), ", got ", dtype_name(t->dtype));
    if (t->shape != shape) {
      std::string a, e;
      for (auto d : t->shape) a += std::to_string(d) + ",";
      for (auto d : shape) e += std::to_string(d) + ",";
      return make_error(name, ": expected shape [", e, "] got [", a, "]");
    }
    return t;
  };
  AWQ_ASSIGN(const TensorView* qw, check(prefix + ".qweight", DType::I32, {K, N / 8}));
  AWQ_ASSIGN(const TensorView* qz, check(prefix + ".qzeros", DType::I32, {K / G, N / 8}));
  AWQ_ASSIGN(const TensorView* sc, check(prefix + ".scales", DType::F16, {K / G, N}));
  std::vector<int32_t> qwv((size_t)K * (N / 8)), qzv((size_t)(K / G) * (N / 8));
  std::vector<uint16_t> scv((size_t)(K / G) * N);
  std::memcpy(qwv.data(), qw->data, qw->nbytes);
  std::memcpy(qzv.data(), qz->data, qz->nbytes);
  std::memcpy(scv.data(), sc->data, sc->nbytes);
  for (const TensorView* t : {qw, qz, sc}) release_mapped_range(t->data, t->nbytes);  // copied
  auto w4 = w4_from_awq(qwv.data(), qzv.data(), scv.data(), K, N, G);
  if (!w4) return make_error(prefix, ": ", w4.error().message);
  l.w4 = std::make_shared<W4Matrix>(std::move(*w4));
  if (!opt.keep_w4) {
    l.weight.resize((size_t)N * K);
    w4_dequantize(*l.w4, l.weight.data());
    l.w4.reset();
  }
  return Status::Ok();
}

// Read a compressed-tensors pack-quantized linear: W4 kernels for 4-bit fp16-exact scales with
// keep_w4, else the exact fp32 weights (q - z) * s.
Status load_ct_linear(const SafeTensors& st, const ModelConfig& cfg, const std::string& prefix,
                      Linear& l, const LoadOptions& opt) {
  CtWeightScheme s;
  s.num_bits = cfg.quant.bits;
  s.group_size = cfg.quant.group_size;
  s.symmetric = !cfg.quant.zero_point;
  AWQ_ASSIGN(CtLinearCodes c, load_ct_linear(st, prefix, s, l.out, l.in));
  if (opt.keep_w4 && c.bits == 4 && c.scales_fp16_exact && l.out % 8 == 0) {
    auto w4 = w4_from_codes(c.q.data(), c.z.data(), c.scales.data(), l.in, l.out, c.group_size);
    if (!w4) return make_error(prefix, ": ", w4.error().message);
    l.w4 = std::make_shared<W4Matrix>(std::move(*w4));
    return Status::Ok();
  }
  const int K = l.in, G = c.group_size, ng = K / G;
  l.weight.resize((size_t)l.out * K);
  for (int n = 0; n < l.out; ++n)
    for (int k = 0; k < K; ++k) {
      const size_t g = (size_t)n * ng + k / G;
      l.weight[(size_t)n * K + k] = float(int(c.q[(size_t)n * K + k]) - int(c.z[g])) * c.scales[g];
    }
  return Status::Ok();
}

Status load_linear(const SafeTensors& st, const ModelConfig& cfg, const std::string& prefix,
                   int in, int out, bool has_bias, Linear& l, const LoadOptions& opt) {
  l.in = in;
  l.out = out;
  if (cfg.quant.present && cfg.quant.method == QuantizationInfo::Method::CompressedTensors &&
      st.find(prefix + ".weight_packed")) {  // modules in "ignore" keep a dense .weight
    AWQ_TRY(load_ct_linear(st, cfg, prefix, l, opt));
  } else if (cfg.quant.present && !module_not_converted(cfg, prefix) &&
             st.find(prefix + ".qweight")) {
    AWQ_TRY(load_awq_linear(st, cfg, prefix, l, opt));
  } else {
    AWQ_ASSIGN(l.weight, st.to_f32(prefix + ".weight", {out, in}));
  }
  if (has_bias || st.find(prefix + ".bias")) {
    AWQ_ASSIGN(l.bias, st.to_f32(prefix + ".bias", {out}));
  }
  return Status::Ok();
}

}  // namespace

LinearShape linear_shape(const ModelConfig& cfg, const std::string& n) {
  const int H = cfg.hidden, qd = cfg.n_heads * cfg.head_dim, kvd = cfg.n_kv_heads * cfg.head_dim;
  if (n == "q_proj") return {H, qd};
  if (n == "k_proj" || n == "v_proj") return {H, kvd};
  if (n == "o_proj") return {qd, H};
  if (n == "gate_proj" || n == "up_proj") return {H, cfg.intermediate};
  return {cfg.intermediate, H};  // down_proj
}

namespace {

// Rows [r0, r1) of a linear (fp32 rows, bias, or the W4 tiles of 8 rows when only w4 is held).
Expected<Linear> slice_rows(const Linear& f, int r0, int r1, const std::string& prefix) {
  Linear l;
  l.in = f.in;
  l.out = r1 - r0;
  if (!f.bias.empty()) l.bias.assign(f.bias.begin() + r0, f.bias.begin() + r1);
  if (!f.weight.empty()) {
    l.weight.assign(f.weight.begin() + (size_t)r0 * f.in, f.weight.begin() + (size_t)r1 * f.in);
    return l;
  }
  if (!f.w4) return make_error(prefix, ": nothing loaded");
  constexpr int R = W4Matrix::kTileRows;
  if (r0 % R != 0 || r1 % R != 0)
    return make_error(prefix, ": cannot split the 4-bit rows at ", r0, "..", r1,
                      " (parts of a fused module must be multiples of ", R, " rows)");
  auto w = std::make_shared<W4Matrix>();
  w->K = f.w4->K;
  w->N = l.out;
  w->group_size = f.w4->group_size;
  w->n_groups = f.w4->n_groups;
  w->group_len = f.w4->group_len;
  const size_t ts = f.w4->tile_stride();
  w->data.assign(f.w4->data.begin() + (size_t)(r0 / R) * ts,
                 f.w4->data.begin() + (size_t)(r1 / R) * ts);
  l.w4 = std::move(w);
  return l;
}

}  // namespace

Expected<BlockWeights> load_block(const SafeTensors& st, const ModelConfig& cfg, int layer,
                                  const LoadOptions& opt) {
  BlockWeights b;
  b.layer = layer;
  const Architecture& a = *cfg.arch;
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  for (const NormName& n : a.block_norms) {
    AWQ_ASSIGN(b.norm(n.slot), load_norm(st, cfg, p + n.hf, norm_width(cfg, n.slot)));
  }
  for (const LinearName& ln : a.linears) {
    if (a.fused_of(ln.name)) continue;
    const LinearShape s = linear_shape(cfg, ln.name);
    const bool qkv = ln.name == "q_proj" || ln.name == "k_proj" || ln.name == "v_proj";
    AWQ_TRY(load_linear(st, cfg, p + ln.hf, s.in, s.out, qkv && a.qkv_bias, b.linear(ln.name), opt));
  }
  if (a.moe) {  // router (fp32 in memory, as the checkpoint stores it or dequantized) and experts
    const int H = cfg.hidden, I = cfg.moe_intermediate, E = cfg.n_experts;
    AWQ_TRY(load_linear(st, cfg, a.router_prefix(layer), H, E, false, b.router, LoadOptions{}));
    b.experts.resize(E);
    for (int e = 0; e < E; ++e) {
      ExpertWeights& x = b.experts[e];
      AWQ_TRY(load_linear(st, cfg, a.expert_prefix(layer, e, "gate_proj"), H, I, false, x.gate, opt));
      AWQ_TRY(load_linear(st, cfg, a.expert_prefix(layer, e, "up_proj"), H, I, false, x.up, opt));
      AWQ_TRY(load_linear(st, cfg, a.expert_prefix(layer, e, "down_proj"), I, H, false, x.down, opt));
    }
    if (a.has_shared_expert()) {
      const int S = cfg.shared_intermediate;
      ExpertWeights& x = b.shared;
      AWQ_TRY(load_linear(st, cfg, a.shared_prefix(layer, "gate_proj"), H, S, false, x.gate, opt));
      AWQ_TRY(load_linear(st, cfg, a.shared_prefix(layer, "up_proj"), H, S, false, x.up, opt));
      AWQ_TRY(load_linear(st, cfg, a.shared_prefix(layer, "down_proj"), S, H, false, x.down, opt));
      AWQ_TRY(load_linear(st, cfg, a.shared_gate_prefix(layer), H, 1, false, b.shared_gate,
                          LoadOptions{}));
    }
  }
  for (const FusedLinear& fl : a.fused) {  // one module in the file, split into its parts
    int out = 0, in = -1;
    bool bias = false;
    for (const auto& part : fl.parts) {
      const LinearShape s = linear_shape(cfg, part);
      if (in >= 0 && s.in != in)
        return make_error(p + fl.hf, ": parts of a fused module must share their input size");
      in = s.in;
      out += s.out;
      bias |= a.qkv_bias && (part == "q_proj" || part == "k_proj" || part == "v_proj");
    }
    Linear f;
    AWQ_TRY(load_linear(st, cfg, p + fl.hf, in, out, bias, f, opt));
    int r0 = 0;
    for (const auto& part : fl.parts) {
      const int r1 = r0 + linear_shape(cfg, part).out;
      AWQ_ASSIGN(b.linear(part), slice_rows(f, r0, r1, p + fl.hf));
      r0 = r1;
    }
  }
  return b;
}

Status load_globals(const SafeTensors& st, Model& m) {
  const ModelConfig& c = m.cfg;
  AWQ_ASSIGN(m.embed, st.to_f32("model.embed_tokens.weight", {c.vocab, c.hidden}));
  AWQ_ASSIGN(m.final_norm, load_norm(st, c, "model.norm.weight", c.hidden));
  if (!c.tie_embeddings || st.find("lm_head.weight")) {
    if (!st.find("lm_head.weight") && !c.tie_embeddings)
      return make_error("missing tensor lm_head.weight (config says tie_word_embeddings=false)");
    AWQ_ASSIGN(m.lm_head, st.to_f32("lm_head.weight", {c.vocab, c.hidden}));
  }
  return Status::Ok();
}

Expected<Model> load_model(const std::string& dir, const LoadOptions& opt) {
  Model m;
  AWQ_ASSIGN(m.cfg, load_model_config(dir));
  AWQ_ASSIGN(SafeTensors st, SafeTensors::open(dir));
  AWQ_TRY(load_globals(st, m));
  if (opt.keep_w4) {
    const std::string head = m.lm_head.empty() ? "model.embed_tokens.weight" : "lm_head.weight";
    const TensorView* tv = st.find(head);
    const size_t n = (size_t)m.cfg.vocab * m.cfg.hidden;
    const bool file_f16 = tv && tv->dtype == DType::F16 && tv->nbytes == n * sizeof(uint16_t);
    const LmHeadFormat fmt =
        opt.lm_head == LmHeadFormat::Default ? lm_head_format_from_env() : opt.lm_head;
    if (fmt == LmHeadFormat::Q8) {
      // From the file's fp16 bits when it has them (the same values as m.lm_head_weight()).
      auto q8 = file_f16 ? q8_from_f16(reinterpret_cast<const uint16_t*>(tv->data), m.cfg.vocab,
                                       m.cfg.hidden)
                         : q8_from_f32(m.lm_head_weight(), m.cfg.vocab, m.cfg.hidden);
      if (!q8) return make_error(dir, ": ", head, ": ", q8.error().message);
      m.lm_head_q8 = std::move(*q8);
    } else if (file_f16) {
      m.lm_head_f16.resize(n);  // the file's bits (load_globals checked the shape)
      std::memcpy(m.lm_head_f16.data(), tv->data, tv->nbytes);
    }
    if (tv) release_mapped_range(tv->data, tv->nbytes);  // copied or converted
  }
  m.blocks.reserve(m.cfg.n_layers);
  for (int i = 0; i < m.cfg.n_layers; ++i) {
    auto b = load_block(st, m.cfg, i, opt);
    if (!b) return make_error(dir, ": layer ", i, ": ", b.error().message);
    m.blocks.push_back(std::move(*b));
  }
  return m;
}

LmHeadFormat resolve_lm_head_format(const char* requested, std::string* warning) {
  constexpr LmHeadFormat kDefault = LmHeadFormat::Q8;
  if (!requested || !*requested) return kDefault;
  std::string v(requested);
  for (char& ch : v) ch = (char)std::tolower((unsigned char)ch);
  if (v == "f16") return LmHeadFormat::F16;
  if (v == "q8") return LmHeadFormat::Q8;
  if (warning)
    *warning = "AWQ_LM_HEAD=" + std::string(requested) + " is not one of f16|q8; using " +
               lm_head_format_name(kDefault);
  return kDefault;
}

LmHeadFormat lm_head_format_from_env() {
  static const LmHeadFormat fmt = [] {
    std::string warning;
    const LmHeadFormat f = resolve_lm_head_format(std::getenv("AWQ_LM_HEAD"), &warning);
    if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    return f;
  }();
  return fmt;
}

const char* lm_head_format_name(LmHeadFormat f) {
  switch (f) {
    case LmHeadFormat::F16: return "f16";
    case LmHeadFormat::Q8: return "q8";
    default: return "default";
  }
}

}  // namespace awq
