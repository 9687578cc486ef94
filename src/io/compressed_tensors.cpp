#include "io/compressed_tensors.h"

#include <cmath>
#include <cstring>

#include "core/half.h"

namespace awq {

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

int64_t ct_packed_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

namespace {

// Line of n values -> bit stream: value i at bits [i*b, i*b + b).
template <class Get>
void pack_line(int64_t n, int bits, Get get, int32_t* out) {
  const int64_t nw = ct_packed_words(n, bits);
  for (int64_t w = 0; w < nw; ++w) out[w] = 0;
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t v = get(i) & mask;
    const int64_t bit = i * bits, w = bit / 32;
    const int off = int(bit % 32);
    const uint64_t shifted = v << off;  // may straddle into word w + 1
    reinterpret_cast<uint32_t*>(out)[w] |= uint32_t(shifted);
    if (off + bits > 32) reinterpret_cast<uint32_t*>(out)[w + 1] |= uint32_t(shifted >> 32);
  }
}

template <class Put>
void unpack_line(const int32_t* in, int64_t n, int bits, Put put) {
  const uint32_t mask = (1u << bits) - 1;
  const uint32_t* u = reinterpret_cast<const uint32_t*>(in);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t bit = i * bits, w = bit / 32;
    const int off = int(bit % 32);
    uint64_t v = u[w] >> off;
    if (off + bits > 32) v |= uint64_t(u[w + 1]) << (32 - off);
    put(i, uint8_t(v & mask));
  }
}

}  // namespace

std::vector<int32_t> ct_pack_rows(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  const int64_t nw = ct_packed_words(cols, bits);
  std::vector<int32_t> out(size_t(rows * nw));
  for (int64_t r = 0; r < rows; ++r)
    pack_line(cols, bits, [&](int64_t i) { return codes[r * cols + i]; }, out.data() + r * nw);
  return out;
}

std::vector<uint8_t> ct_unpack_rows(const int32_t* words, int64_t rows, int64_t cols, int bits) {
  const int64_t nw = ct_packed_words(cols, bits);
  std::vector<uint8_t> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    unpack_line(words + r * nw, cols, bits, [&](int64_t i, uint8_t v) { out[r * cols + i] = v; });
  return out;
}

std::vector<int32_t> ct_pack_cols(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  const int64_t nw = ct_packed_words(rows, bits);
  std::vector<int32_t> out(size_t(nw * cols));
  std::vector<int32_t> line(static_cast<size_t>(nw));
  for (int64_t c = 0; c < cols; ++c) {
    pack_line(rows, bits, [&](int64_t i) { return codes[i * cols + c]; }, line.data());
    for (int64_t w = 0; w < nw; ++w) out[w * cols + c] = line[w];
  }
  return out;
}

std::vector<uint8_t> ct_unpack_cols(const int32_t* words, int64_t rows, int64_t cols, int bits) {
  const int64_t nw = ct_packed_words(rows, bits);
  std::vector<uint8_t> out(size_t(rows * cols));
  std::vector<int32_t> line(static_cast<size_t>(nw));
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t w = 0; w < nw; ++w) line[w] = words[w * cols + c];
    unpack_line(line.data(), rows, bits, [&](int64_t i, uint8_t v) { out[i * cols + c] = v; });
  }
  return out;
}

ojson ct_quantization_config(const CtWeightScheme& s, const std::vector<std::string>& ignore) {
  ojson w = ojson::object();
  w["num_bits"] = s.num_bits;
  w["type"] = "int";
  w["symmetric"] = s.symmetric;
  if (s.group_size > 0) {
    w["group_size"] = s.group_size;
    w["strategy"] = "group";
  } else {
    w["group_size"] = nullptr;
    w["strategy"] = "channel";
  }
  w["block_structure"] = nullptr;
  w["dynamic"] = false;
  w["actorder"] = nullptr;
  w["observer"] = "minmax";
  w["observer_kwargs"] = ojson::object();
  ojson g = ojson::object();
  g["targets"] = ojson::array({"Linear"});
  g["weights"] = w;
  g["input_activations"] = nullptr;
  g["output_activations"] = nullptr;
  g["format"] = "pack-quantized";
  ojson q = ojson::object();
  q["quant_method"] = "compressed-tensors";
  q["format"] = "pack-quantized";
  q["quantization_status"] = "compressed";
  q["config_groups"] = ojson::object({{"group_0", g}});
  q["ignore"] = ignore;
  q["kv_cache_scheme"] = nullptr;
  q["global_compression_ratio"] = nullptr;
  q["sparsity_config"] = ojson::object();
  q["transform_config"] = ojson::object();
  return q;
}

namespace {

bool empty_or_null(const json& j) { return j.is_null() || (j.is_object() && j.empty()); }

std::string field(const std::string& path) { return "quantization_config." + path; }

}  // namespace

Expected<CtWeightScheme> parse_ct_quantization_config(const json& q, const std::string& src) {
  auto refuse = [&](const std::string& path, const std::string& what) {
    return make_error(src, ": ", field(path), " ", what,
                      " (awq-cpp reads compressed-tensors pack-quantized integer weight-only "
                      "checkpoints: one config group, group or channel strategy, 2..8 bits)");
  };
  auto str = [](const json& j, const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string fmt = str(q, "format");
  if (fmt != "pack-quantized")
    return refuse("format", "is \"" + fmt + "\"; supported: \"pack-quantized\"");
  if (q.contains("quantization_status") && str(q, "quantization_status") != "compressed")
    return refuse("quantization_status",
                  "is \"" + str(q, "quantization_status") + "\"; supported: \"compressed\"");
  for (const char* k : {"sparsity_config", "transform_config", "kv_cache_scheme",
                        "moe_sparsity_config"})
    if (q.contains(k) && !empty_or_null(q[k]))
      return refuse(k, "is set (" + q[k].dump().substr(0, 80) + "); not supported");
  auto groups = q.find("config_groups");
  if (groups == q.end() || !groups->is_object() || groups->empty())
    return refuse("config_groups", "is missing or empty");
  if (groups->size() != 1)
    return refuse("config_groups", "has " + std::to_string(groups->size()) +
                                       " groups (mixed precision); supported: one");
  const std::string gname = groups->begin().key();
  const json& g = groups->begin().value();
  const std::string gp = "config_groups." + gname;
  if (!g.is_object()) return refuse(gp, "is not an object (a preset name list is not supported)");
  if (auto t = g.find("targets");
      t == g.end() || !t->is_array() || t->size() != 1 || !(*t)[0].is_string() ||
      (*t)[0].get<std::string>() != "Linear")
    return refuse(gp + ".targets", "is " + (t == g.end() ? std::string("missing") : t->dump()) +
                                       "; supported: [\"Linear\"]");
  for (const char* k : {"input_activations", "output_activations"})
    if (g.contains(k) && !g[k].is_null())
      return refuse(gp + "." + k, "is set: activation quantization is not supported");
  if (g.contains("format") && !g["format"].is_null() && str(g, "format") != "pack-quantized")
    return refuse(gp + ".format", "is \"" + str(g, "format") + "\"; supported: \"pack-quantized\"");
  auto wi = g.find("weights");
  if (wi == g.end() || !wi->is_object()) return refuse(gp + ".weights", "is missing");
  const json& w = *wi;
  const std::string wp = gp + ".weights.";
  CtWeightScheme s;
  const std::string type = w.contains("type") ? str(w, "type") : "int";
  if (type != "int") return refuse(wp + "type", "is \"" + type + "\"; supported: \"int\"");
  if (!w.contains("num_bits") || !w["num_bits"].is_number_integer() ||
      w["num_bits"].get<int64_t>() < 2 || w["num_bits"].get<int64_t>() > 8)
    return refuse(wp + "num_bits", "is " + (w.contains("num_bits") ? w["num_bits"].dump()
                                                                    : std::string("missing")) +
                                       "; supported: 2..8");
  s.num_bits = int(w["num_bits"].get<int64_t>());
  if (w.contains("symmetric") && !w["symmetric"].is_boolean())
    return refuse(wp + "symmetric", "is not a boolean");
  s.symmetric = w.value("symmetric", true);
  if (w.contains("dynamic") && !(w["dynamic"].is_boolean() && !w["dynamic"].get<bool>()))
    return refuse(wp + "dynamic", "is " + w["dynamic"].dump() + "; supported: false");
  if (w.contains("block_structure") && !w["block_structure"].is_null())
    return refuse(wp + "block_structure", "is set; not supported");
  if (w.contains("actorder") && !w["actorder"].is_null()) {
    const std::string a = str(w, "actorder");
    if (a != "weight" && a != "static")  // weight order at quantization time; storage unchanged
      return refuse(wp + "actorder", "is " + w["actorder"].dump() +
                                         "; supported: null, \"weight\" (no g_idx)");
  }
  const json gs = w.contains("group_size") ? w["group_size"] : json(nullptr);
  if (!gs.is_null() && !gs.is_number_integer())
    return refuse(wp + "group_size", "is not an integer");
  std::string strategy = str(w, "strategy");
  if (strategy.empty())  // compressed_tensors infers it from group_size
    strategy = gs.is_null() ? "tensor" : gs.get<int64_t>() == -1 ? "channel" : "group";
  if (strategy == "group") {
    if (gs.is_null() || gs.get<int64_t>() <= 0 || gs.get<int64_t>() > (1 << 20))
      return refuse(wp + "group_size", "is " + gs.dump() + "; strategy \"group\" needs > 0");
    s.group_size = int(gs.get<int64_t>());
  } else if (strategy == "channel") {
    s.group_size = -1;
  } else {
    return refuse(wp + "strategy", "is \"" + strategy + "\"; supported: \"group\", \"channel\"");
  }
  return s;
}

namespace {

std::string shape_str(const std::vector<int64_t>& v) {
  std::string r = "[";
  for (size_t i = 0; i < v.size(); ++i) r += (i ? ", " : "") + std::to_string(v[i]);
  return r + "]";
}

Expected<const TensorView*> ct_tensor(const SafeTensors& st, const std::string& name,
                                      std::initializer_list<DType> dtypes,
                                      const std::vector<int64_t>& shape) {
  const TensorView* t = st.find(name);
  if (!t)
    return make_error("compressed-tensors checkpoint: tensor '", name,
                      "' is missing (pack-quantized layers need .weight_packed, .weight_scale, "
                      ".weight_shape and, asymmetric, .weight_zero_point)");
  bool ok = false;
  std::string names;
  for (DType d : dtypes) {
    ok = ok || t->dtype == d;
    names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
  }
  if (!ok)
    return make_error("compressed-tensors checkpoint ", t->file, ": tensor '", name,
                      "' has dtype ", dtype_name(t->dtype), ", expected ", names);
  if (t->shape != shape)
    return make_error("compressed-tensors checkpoint ", t->file, ": tensor '", name,
                      "' has shape ", shape_str(t->shape), ", expected ", shape_str(shape));
  return t;
}

template <class T>
std::vector<T> copy_out(const TensorView* t) {  // file data may be unaligned
  std::vector<T> v(t->nbytes / sizeof(T));
  if (t->nbytes) std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

}  // namespace

Expected<CtLinearCodes> load_ct_linear(const SafeTensors& st, const std::string& prefix,
                                       const CtWeightScheme& s, int N, int K) {
  const int b = s.num_bits;
  const int G = s.group_size > 0 ? s.group_size : K;
  if (K % G != 0)
    return make_error(prefix, ": K = ", K, " inputs is not a multiple of group_size ", G);
  if (st.find(prefix + ".weight_g_idx"))
    return make_error(prefix, ".weight_g_idx: activation-order group indices are not supported");
  const int ng = K / G;
  AWQ_ASSIGN(const TensorView* shp, ct_tensor(st, prefix + ".weight_shape",
                                               {DType::I64, DType::I32}, {2}));
  int64_t dims[2];
  if (shp->dtype == DType::I64) {
    std::memcpy(dims, shp->data, sizeof(dims));
  } else {
    int32_t d32[2];
    std::memcpy(d32, shp->data, sizeof(d32));
    dims[0] = d32[0];
    dims[1] = d32[1];
  }
  if (dims[0] != N || dims[1] != K)
    return make_error("compressed-tensors checkpoint ", shp->file, ": '", prefix,
                      ".weight_shape' is [", dims[0], ", ", dims[1], "], expected [", N, ", ", K,
                      "] (config.json)");
  AWQ_ASSIGN(const TensorView* pk, ct_tensor(st, prefix + ".weight_packed", {DType::I32},
                                              {N, ct_packed_words(K, b)}));
  AWQ_ASSIGN(const TensorView* sc, ct_tensor(st, prefix + ".weight_scale",
                                              {DType::F16, DType::BF16, DType::F32}, {N, ng}));
  CtLinearCodes c;
  c.N = N;
  c.K = K;
  c.group_size = G;
  c.bits = b;
  const auto words = copy_out<int32_t>(pk);
  c.q = ct_unpack_rows(words.data(), N, K, b);
  if (!s.symmetric) {
    AWQ_ASSIGN(const TensorView* zt, ct_tensor(st, prefix + ".weight_zero_point", {DType::I32},
                                                {ct_packed_words(N, b), ng}));
    const auto zw = copy_out<int32_t>(zt);
    c.z = ct_unpack_cols(zw.data(), N, ng, b);
  } else {
    if (st.find(prefix + ".weight_zero_point"))
      return make_error(prefix, ".weight_zero_point is present but the config is symmetric");
    c.z.assign(size_t(N) * ng, uint8_t(1u << (b - 1)));
  }
  c.scales.resize(size_t(N) * ng);
  if (sc->dtype == DType::F32) {
    std::memcpy(c.scales.data(), sc->data, sc->nbytes);
  } else {
    const auto h = copy_out<uint16_t>(sc);
    for (size_t i = 0; i < h.size(); ++i)
      c.scales[i] = sc->dtype == DType::F16 ? fp16_to_f32(h[i]) : bf16_to_f32(h[i]);
  }
  for (size_t i = 0; i < c.scales.size(); ++i) {
    if (!std::isfinite(c.scales[i]))
      return make_error("compressed-tensors checkpoint ", sc->file, ": '", prefix,
                        ".weight_scale'[", i / ng, "][", i % ng, "] is not finite");
    if (sc->dtype != DType::F16 && round_fp16(c.scales[i]) != c.scales[i])
      c.scales_fp16_exact = false;
  }
  return c;
}

}  // namespace awq
