#include "quant/awq_checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/mmap_file.h"
#include "io/compressed_tensors.h"
#include "quant/awq_pack.h"

namespace awq {

namespace fs = std::filesystem;

namespace {

// Files copied verbatim from the source model directory when present.
constexpr const char* kCopiedFiles[] = {
    "tokenizer.json",     "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "tokenizer.model",   "vocab.json",
    "merges.txt",         "vocab.txt",             "added_tokens.json",
    "chat_template.jinja", "chat_template.json",
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

fs::path normalized_dir(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();  // "out/" -> "out"
  return p;
}

// A regular expression matching any module name that contains `sub` (compressed-tensors
// "re:" ignore entries are matched with Python's re.match against the module name).
std::string contains_regex(const std::string& sub) {
  std::string r = "re:.*";
  for (char c : sub) {
    if (std::strchr("\\^$.|?*+()[]{}", c)) r += '\\';
    r += c;
  }
  return r + ".*";
}

}  // namespace

Expected<CheckpointFormat> parse_checkpoint_format(const std::string& name) {
  if (name == "autoawq") return CheckpointFormat::AutoAwq;
  if (name == "compressed-tensors") return CheckpointFormat::CompressedTensors;
  if (name == "gguf") return CheckpointFormat::Gguf;
  return make_error("checkpoint format \"", name,
                    "\" is not supported (supported: autoawq, compressed-tensors, gguf)");
}

const char* checkpoint_format_name(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::AutoAwq: return "autoawq";
    case CheckpointFormat::CompressedTensors: return "compressed-tensors";
    default: return "gguf";
  }
}

Expected<AwqCheckpointWriter> AwqCheckpointWriter::create(const std::string& out_dir,
                                                          const QuantConfig& cfg, bool overwrite,
                                                          size_t max_shard_bytes,
                                                          CheckpointFormat format) {
  if (out_dir.empty()) return make_error("checkpoint writer: empty output directory name");
  if (format == CheckpointFormat::Gguf)
    return make_error("checkpoint writer: GGUF files are written by GgufModelWriter");
  if (cfg.w_bit < 2 || cfg.w_bit > 8 || cfg.group_size == 0 || cfg.group_size < -1)
    return make_error("checkpoint writer: invalid quantization config (w_bit ", cfg.w_bit,
                      ", group_size ", cfg.group_size, ")");
  const fs::path out = normalized_dir(out_dir);
  fs::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    return make_error("checkpoint writer: parent directory '", parent.string(),
                      "' of the output '", out.string(), "' does not exist (create it first)");
  if (::access(parent.c_str(), W_OK) != 0)
    return make_error("checkpoint writer: parent directory '", parent.string(),
                      "' is not writable: ", std::strerror(errno));
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (!overwrite)
      return make_error("checkpoint writer: output '", out.string(),
                        "' already exists (pass --overwrite to replace it, or choose another path)");
    if (!fs::is_directory(out, ec))
      return make_error("checkpoint writer: output '", out.string(),
                        "' exists and is not a directory; refusing to replace it");
  }
  const std::string tmp = out.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);  // a stale one from a previous run with the same pid
  if (ec) return make_error("checkpoint writer: cannot remove stale '", tmp, "': ", ec.message());
  if (!fs::create_directory(tmp, ec) || ec)
    return make_error("checkpoint writer: cannot create '", tmp, "': ",
                      ec ? ec.message() : std::string("already exists"));
  AwqCheckpointWriter w;
  w.out_dir_ = out.string();
  w.tmp_dir_ = tmp;
  w.cfg_ = cfg;
  w.format_ = format;
  w.overwrite_ = overwrite;
  w.st_ = std::make_unique<SafeTensorsWriter>(tmp, max_shard_bytes);
  return w;
}

AwqCheckpointWriter::AwqCheckpointWriter(AwqCheckpointWriter&& o) noexcept
    : out_dir_(std::move(o.out_dir_)),
      tmp_dir_(std::move(o.tmp_dir_)),
      cfg_(o.cfg_),
      format_(o.format_),
      overwrite_(o.overwrite_),
      done_(o.done_),
      st_(std::move(o.st_)) {
  o.done_ = true;  // the moved-from writer owns nothing
}

AwqCheckpointWriter& AwqCheckpointWriter::operator=(AwqCheckpointWriter&& o) noexcept {
  if (this != &o) {
    abort();
    out_dir_ = std::move(o.out_dir_);
    tmp_dir_ = std::move(o.tmp_dir_);
    cfg_ = o.cfg_;
    format_ = o.format_;
    overwrite_ = o.overwrite_;
    done_ = o.done_;
    st_ = std::move(o.st_);
    o.done_ = true;
  }
  return *this;
}

AwqCheckpointWriter::~AwqCheckpointWriter() { abort(); }

void AwqCheckpointWriter::abort() {
  if (done_) return;
  done_ = true;
  st_.reset();  // removes its temp data file and temp shards
  std::error_code ec;
  if (!tmp_dir_.empty()) fs::remove_all(tmp_dir_, ec);
}

Status AwqCheckpointWriter::add_quantized(const std::string& prefix, const QuantizedLinear& ql,
                                          const float* bias) {
  if (done_ || !st_) return make_error("checkpoint writer: add after finish/abort (", prefix, ")");
  if (ql.w_bit != cfg_.w_bit || ql.zero_point != cfg_.zero_point ||
      ql.group_size != effective_group(cfg_, ql.K))
    return make_error(prefix, ": layer quantized with w_bit ", ql.w_bit, ", group ",
                      ql.group_size, ", zero_point ", int(ql.zero_point),
                      " but the checkpoint is w_bit ", cfg_.w_bit, ", group_size ",
                      cfg_.group_size, ", zero_point ", int(cfg_.zero_point));
  const int64_t N = ql.N, K = ql.K;
  if (format_ == CheckpointFormat::CompressedTensors) {
    // Our codes are compressed-tensors' unsigned codes (signed value + 2^(b-1)); our zero
    // points likewise (io/compressed_tensors.h).
    const int b = ql.w_bit;
    const int64_t ng = ql.n_groups();
    if (ql.q.size() != size_t(N * K) || ql.scales.size() != size_t(N * ng) ||
        ql.zeros.size() != size_t(N * ng))
      return make_error(prefix, ": quantized linear has inconsistent code/scale/zero sizes");
    const auto packed = ct_pack_rows(ql.q.data(), N, K, b);
    AWQ_TRY(st_->add(prefix + ".weight_packed", DType::I32, {N, ct_packed_words(K, b)},
                     packed.data(), packed.size() * sizeof(int32_t)));
    AWQ_TRY(st_->add(prefix + ".weight_scale", DType::F16, {N, ng}, ql.scales.data(),
                     ql.scales.size() * sizeof(uint16_t)));
    if (ql.zero_point) {
      const auto zp = ct_pack_cols(ql.zeros.data(), N, ng, b);
      AWQ_TRY(st_->add(prefix + ".weight_zero_point", DType::I32, {ct_packed_words(N, b), ng},
                       zp.data(), zp.size() * sizeof(int32_t)));
    }
    const int64_t shape[2] = {N, K};
    AWQ_TRY(st_->add(prefix + ".weight_shape", DType::I64, {2}, shape, sizeof(shape)));
  } else if (awq_gemm_supported(cfg_)) {
    auto packed = pack_awq_gemm(ql);
    if (!packed) return make_error(prefix, ": ", packed.error().message);
    const AwqGemmTensors& t = *packed;
    const int64_t ng = K / t.group_size;
    AWQ_TRY(st_->add(prefix + ".qweight", DType::I32, {K, N / 8}, t.qweight.data(),
                     t.qweight.size() * sizeof(int32_t)));
    AWQ_TRY(st_->add(prefix + ".qzeros", DType::I32, {ng, N / 8}, t.qzeros.data(),
                     t.qzeros.size() * sizeof(int32_t)));
    AWQ_TRY(st_->add(prefix + ".scales", DType::F16, {ng, N}, t.scales.data(),
                     t.scales.size() * sizeof(uint16_t)));
  } else {
    std::vector<float> w(size_t(N) * K);
    dequantize_linear(ql, w.data());
    AWQ_TRY(st_->add_f32(prefix + ".weight", DType::F16, {N, K}, w.data()));
  }
  if (bias) AWQ_TRY(st_->add_f32(prefix + ".bias", DType::F16, {N}, bias));
  return Status::Ok();
}

Status AwqCheckpointWriter::add_fp16(const std::string& name, const std::vector<int64_t>& shape,
                                     const float* data) {
  if (done_ || !st_) return make_error("checkpoint writer: add after finish/abort (", name, ")");
  return st_->add_f32(name, DType::F16, shape, data);
}

Expected<std::string> awq_checkpoint_config_json(const std::string& src_config_json_text,
                                                 const QuantConfig& cfg,
                                                 const std::vector<std::string>& modules_to_not_convert,
                                                 CheckpointFormat format) {
  using json = nlohmann::ordered_json;
  json j = json::parse(src_config_json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return make_error("config.json of the source model is not a JSON object");
  json skip = modules_to_not_convert.empty() ? json(nullptr) : json(modules_to_not_convert);
  if (format == CheckpointFormat::CompressedTensors) {
    j.erase("awq_cpp_fake_quantization");
    CtWeightScheme s;
    s.num_bits = cfg.w_bit;
    s.group_size = cfg.group_size > 0 ? cfg.group_size : -1;
    s.symmetric = !cfg.zero_point;
    std::vector<std::string> ignore = {"lm_head"};
    for (const auto& m : modules_to_not_convert)
      if (!m.empty()) ignore.push_back(contains_regex(m));
    j["quantization_config"] = ct_quantization_config(s, ignore);
  } else if (awq_gemm_supported(cfg)) {
    j.erase("awq_cpp_fake_quantization");
    json q = json::object();
    q["quant_method"] = "awq";
    q["bits"] = cfg.w_bit;
    q["group_size"] = cfg.group_size;
    q["zero_point"] = cfg.zero_point;
    q["version"] = "gemm";
    q["modules_to_not_convert"] = skip;
    j["quantization_config"] = q;
  } else {
    j.erase("quantization_config");  // the weights are plain fp16: no loader must see AWQ
    json q = json::object();
    q["bits"] = cfg.w_bit;
    q["group_size"] = cfg.group_size;
    q["zero_point"] = cfg.zero_point;
    q["modules_to_not_convert"] = skip;
    q["note"] =
        "fp16 weights on the quantization grid (fake-quantized by awq-cpp); the AutoAWQ GEMM "
        "format holds only 4-bit zero-point weights";
    j["awq_cpp_fake_quantization"] = q;
  }
  j["torch_dtype"] = "float16";
  if (j.contains("dtype")) j["dtype"] = "float16";  // newer Transformers spell it "dtype"
  return j.dump(2) + "\n";
}

Status AwqCheckpointWriter::finish(const std::string& src_model_dir,
                                   const std::string& src_config_json_text,
                                   const std::vector<std::string>& modules_to_not_convert) {
  if (done_ || !st_) return make_error("checkpoint writer: finish after finish/abort");
  // Any error below leaves the temp dir for the destructor/abort() to remove; OUT_DIR untouched.
  AWQ_ASSIGN(std::string config,
             awq_checkpoint_config_json(src_config_json_text, cfg_, modules_to_not_convert, format_));
  AWQ_TRY(st_->finish());
  st_.reset();
  std::error_code ec;
  if (!src_model_dir.empty()) {
    for (const char* f : kCopiedFiles) {
      const fs::path src = fs::path(src_model_dir) / f;
      if (!fs::is_regular_file(src, ec)) continue;
      fs::copy_file(src, fs::path(tmp_dir_) / f, fs::copy_options::overwrite_existing, ec);
      if (ec)
        return make_error("checkpoint writer: cannot copy '", src.string(), "': ", ec.message());
    }
  }
  AWQ_TRY(write_file_atomic((fs::path(tmp_dir_) / "config.json").string(), config));

  // Publish: one rename. With overwrite, the old directory is moved aside first and removed
  // only after the new one is in place (restored if the rename fails).
  const fs::path out(out_dir_);
  fs::path old;
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (!overwrite_)
      return make_error("checkpoint writer: '", out_dir_,
                        "' appeared while quantizing; not replacing it (output left in '",
                        tmp_dir_, "' until exit)");
    old = out_dir_ + ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(out, old, ec);
    if (ec) return make_error("checkpoint writer: cannot move old '", out_dir_, "' aside: ",
                              ec.message());
  }
  fs::rename(tmp_dir_, out, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, out, ec2);
    return make_error("checkpoint writer: cannot rename '", tmp_dir_, "' to '", out_dir_, "': ",
                      ec.message());
  }
  done_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::Ok();
}

namespace {

Expected<const TensorView*> find_tensor(const SafeTensors& st, const std::string& name, DType dt) {
  const TensorView* t = st.find(name);
  if (!t)
    return make_error("AWQ checkpoint: tensor '", name,
                      "' is missing (expected an AutoAWQ GEMM layer: .qweight, .qzeros, .scales)");
  if (t->dtype != dt)
    return make_error("AWQ checkpoint ", t->file, ": tensor '", name, "' has dtype ",
                      dtype_name(t->dtype), ", expected ", dtype_name(dt));
  if (t->shape.size() != 2)
    return make_error("AWQ checkpoint ", t->file, ": tensor '", name, "' has shape ",
                      shape_str(t->shape), ", expected 2 dimensions");
  if (t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > (1 << 28) || t->shape[1] > (1 << 28))
    return make_error("AWQ checkpoint ", t->file, ": tensor '", name, "' has invalid shape ",
                      shape_str(t->shape));
  if (t->nbytes != size_t(t->shape[0]) * size_t(t->shape[1]) * dtype_size(dt))
    return make_error("AWQ checkpoint ", t->file, ": tensor '", name, "' holds ", t->nbytes,
                      " bytes, shape ", shape_str(t->shape), " needs ",
                      size_t(t->shape[0]) * size_t(t->shape[1]) * dtype_size(dt));
  return t;
}

template <class T>
std::vector<T> copy_out(const TensorView* t) {  // data in the file may be unaligned
  std::vector<T> v(t->nbytes / sizeof(T));
  if (t->nbytes) std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

}  // namespace

Expected<QuantizedLinear> load_awq_linear(const SafeTensors& st, const std::string& prefix,
                                          int group_size) {
  AWQ_ASSIGN(const TensorView* qw, find_tensor(st, prefix + ".qweight", DType::I32));
  AWQ_ASSIGN(const TensorView* qz, find_tensor(st, prefix + ".qzeros", DType::I32));
  AWQ_ASSIGN(const TensorView* sc, find_tensor(st, prefix + ".scales", DType::F16));
  const int64_t K = qw->shape[0], N = qw->shape[1] * 8;
  if (sc->shape[1] != N)
    return make_error("AWQ checkpoint ", sc->file, ": '", prefix, ".scales' has shape ",
                      shape_str(sc->shape), " but .qweight ", shape_str(qw->shape),
                      " means N = ", N, " outputs: expected [K/G, ", N, "]");
  const int64_t n_groups_file = sc->shape[0];
  int64_t G = group_size;
  if (group_size == 0) {
    if (K % n_groups_file != 0)
      return make_error("AWQ checkpoint ", sc->file, ": '", prefix, ".scales' has ",
                        n_groups_file, " groups, which does not divide K = ", K);
    G = K / n_groups_file;
  } else if (group_size == -1) {
    G = K;
  } else if (group_size < 0) {
    return make_error("load_awq_linear: invalid group_size ", group_size);
  }
  if (K % G != 0)
    return make_error("AWQ checkpoint ", qw->file, ": '", prefix, ".qweight' has K = ", K,
                      " inputs, not a multiple of group_size ", G);
  const int64_t ng = K / G;
  if (n_groups_file != ng)
    return make_error("AWQ checkpoint ", sc->file, ": '", prefix, ".scales' has shape ",
                      shape_str(sc->shape), ", expected [", ng, ", ", N, "] (K = ", K,
                      ", group_size ", G, "); is quantization_config.group_size right?");
  if (qz->shape[0] != ng || qz->shape[1] != N / 8)
    return make_error("AWQ checkpoint ", qz->file, ": '", prefix, ".qzeros' has shape ",
                      shape_str(qz->shape), ", expected [", ng, ", ", N / 8, "]");
  const auto qweight = copy_out<int32_t>(qw);
  const auto qzeros = copy_out<int32_t>(qz);
  const auto scales = copy_out<uint16_t>(sc);
  auto ql = unpack_awq_gemm(qweight.data(), qzeros.data(), scales.data(), int(K), int(N), int(G));
  if (!ql) return make_error(prefix, ": ", ql.error().message);
  return ql;
}

}  // namespace awq
