// SafeTensors reader and writer. See safetensors.h and docs/FORMAT.md for what is validated.
#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/half.h"

namespace awq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;  // 100 MB, as the reference reader

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::I8: return "I8";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::U8: case DType::I8: return 1;
  }
  return 0;
}

Expected<DType> parse_dtype(std::string_view s) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::I8})
    if (s == dtype_name(t)) return t;
  return make_error("unknown dtype \"", s, "\" (expected one of F32, F16, BF16, I32, I64, U8, I8)");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

Expected<std::vector<TensorView>> parse_safetensors(const uint8_t* data, size_t size,
                                                    const std::string& file,
                                                    std::map<std::string, std::string>* metadata) {
  if (size < 8)
    return make_error(file, ": file is ", size, " bytes, shorter than the 8-byte header length");
  const uint64_t n = read_u64_le(data);
  if (n > kMaxHeaderBytes)
    return make_error(file, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
                      " bytes (corrupt or not a safetensors file)");
  if (n > size - 8)
    return make_error(file, ": header length ", n, " runs past the end of the file (file has ",
                      size - 8, " bytes after the length field)");
  const char* hbeg = reinterpret_cast<const char*>(data + 8);
  const uint8_t* data_sec = data + 8 + n;
  const uint64_t data_size = size - 8 - n;

  // Track duplicate top-level keys (nlohmann silently keeps the last one).
  std::string dup_key;
  std::set<std::string> seen_keys;
  json::parser_callback_t track = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth == 1 && ev == json::parse_event_t::key && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen_keys.insert(k).second && dup_key.empty()) dup_key = k;
    }
    return true;
  };
  json h = json::parse(hbeg, hbeg + n, track, /*allow_exceptions=*/false);
  if (h.is_discarded()) return make_error(file, ": header is not well-formed JSON");
  if (!h.is_object())
    return make_error(file, ": header must be a JSON object, got ", h.type_name());
  if (!dup_key.empty()) return make_error(file, ": header has duplicate key \"", dup_key, "\"");

  std::vector<TensorView> out;
  out.reserve(h.size());
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object())
        return make_error(file, ": __metadata__ must be an object of strings, got ", e.type_name());
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string())
          return make_error(file, ": __metadata__[\"", m.key(), "\"] must be a string, got ",
                            m.value().type_name());
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = file + ": tensor \"" + name + "\"";
    if (!e.is_object())
      return make_error(where, ": entry must be an object, got ", e.type_name());
    auto dt = e.find("dtype");
    auto sh = e.find("shape");
    auto off = e.find("data_offsets");
    if (dt == e.end() || !dt->is_string())
      return make_error(where, ": missing or non-string \"dtype\"");
    if (sh == e.end() || !sh->is_array())
      return make_error(where, ": missing or non-array \"shape\"");
    if (off == e.end() || !off->is_array() || off->size() != 2)
      return make_error(where, ": \"data_offsets\" must be an array of 2 integers");
    auto dtype = parse_dtype(dt->get_ref<const std::string&>());
    if (!dtype.ok()) return make_error(where, ": ", dtype.error().message);
    TensorView v;
    v.name = name;
    v.dtype = *dtype;
    v.file = file;
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned())
        return make_error(where, ": shape ", sh->dump(), " must hold non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(INT64_MAX) || mul_overflows(numel, dim, &numel) ||
          numel > uint64_t(INT64_MAX))
        return make_error(where, ": shape ", sh->dump(), " has an element count that overflows");
      v.shape.push_back(int64_t(dim));
    }
    for (const json& o : *off)
      if (!o.is_number_unsigned())
        return make_error(where, ": data_offsets ", off->dump(), " must be non-negative integers");
    const uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en)
      return make_error(where, ": data_offsets [", b, ", ", en, "] has begin > end");
    if (en > data_size)
      return make_error(where, ": data_offsets [", b, ", ", en,
                        "] out of range: the data section has ", data_size, " bytes");
    uint64_t want = 0;
    if (mul_overflows(numel, dtype_size(v.dtype), &want))
      return make_error(where, ": shape ", sh->dump(), " byte size overflows");
    if (want != en - b)
      return make_error(where, ": byte span mismatch: shape ", shape_str(v.shape), " x ",
                        dtype_name(v.dtype), " needs ", want, " bytes, data_offsets span ",
                        en - b);
    v.data = data_sec + b;
    v.nbytes = size_t(en - b);
    out.push_back(std::move(v));
  }
  // Sorted by offset, spans must not overlap.
  std::vector<const TensorView*> by_off;
  for (const auto& v : out) by_off.push_back(&v);
  std::sort(by_off.begin(), by_off.end(), [](const TensorView* a, const TensorView* b) {
    return a->data != b->data ? a->data < b->data : a->nbytes < b->nbytes;
  });
  for (size_t i = 1; i < by_off.size(); ++i) {
    const TensorView* p = by_off[i - 1];
    const TensorView* c = by_off[i];
    if (c->data < p->data + p->nbytes)
      return make_error(file, ": tensors \"", p->name, "\" [", p->data - data_sec, ", ",
                        p->data - data_sec + p->nbytes, ") and \"", c->name, "\" [",
                        c->data - data_sec, ", ", c->data - data_sec + c->nbytes,
                        ") have overlapping data_offsets");
  }
  return out;
}

static Status add_file(const std::string& path, std::vector<std::shared_ptr<MappedFile>>& files,
                       std::map<std::string, TensorView>& tensors,
                       std::map<std::string, std::string>& metadata,
                       std::vector<std::string>* names_in_file) {
  AWQ_ASSIGN(MappedFile m, MappedFile::open(path));
  auto mf = std::make_shared<MappedFile>(std::move(m));
  AWQ_ASSIGN(auto views, parse_safetensors(mf->data(), mf->size(), path, &metadata));
  for (auto& v : views) {
    if (names_in_file) names_in_file->push_back(v.name);
    auto [it, inserted] = tensors.emplace(v.name, v);
    if (!inserted)
      return make_error(path, ": tensor \"", v.name, "\" is also in ", it->second.file);
  }
  files.push_back(std::move(mf));
  return Status::Ok();
}

Expected<SafeTensors> SafeTensors::open(const std::string& path) {
  SafeTensors st;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    const fs::path single = dir / "model.safetensors";
    if (fs::exists(index, ec)) {
      const std::string ip = index.string();
      AWQ_ASSIGN(std::string text, read_text_file(ip));
      json j = json::parse(text, nullptr, false);
      if (j.is_discarded()) return make_error(ip, ": not well-formed JSON");
      if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        return make_error(ip, ": missing object \"weight_map\"");
      std::map<std::string, std::vector<std::string>> by_shard;  // shard -> tensor names
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string())
          return make_error(ip, ": weight_map[\"", it.key(), "\"] must be a file name string");
        const std::string shard = it.value().get<std::string>();
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." ||
            shard == "..")
          return make_error(ip, ": weight_map[\"", it.key(), "\"] = \"", shard,
                            "\" is not a plain file name in the model directory");
        by_shard[shard].push_back(it.key());
      }
      for (const auto& [shard, names] : by_shard) {
        const fs::path sp = dir / shard;
        if (!fs::is_regular_file(sp, ec))
          return make_error(ip, ": shard \"", shard, "\" (referenced by tensor \"", names[0],
                            "\") does not exist in ", path);
        AWQ_TRY(add_file(sp.string(), st.files_, st.tensors_, st.metadata_, nullptr));
        for (const auto& n : names) {
          auto t = st.tensors_.find(n);
          if (t == st.tensors_.end() || t->second.file != sp.string())
            return make_error(ip, ": weight_map says tensor \"", n, "\" is in \"", shard,
                              "\" but that shard does not hold it");
        }
      }
    } else if (fs::exists(single, ec)) {
      AWQ_TRY(add_file(single.string(), st.files_, st.tensors_, st.metadata_, nullptr));
    } else {
      return make_error(path, ": directory has neither model.safetensors nor "
                              "model.safetensors.index.json");
    }
  } else {
    AWQ_TRY(add_file(path, st.files_, st.tensors_, st.metadata_, nullptr));
  }
  for (const auto& [n, v] : st.tensors_) st.names_.push_back(n);
  return st;
}

const TensorView* SafeTensors::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Expected<std::vector<float>> SafeTensors::to_f32(const std::string& name) const {
  const TensorView* v = find(name);
  if (!v) return make_error("tensor \"", name, "\" not found");
  const size_t n = size_t(v->numel());
  std::vector<float> out(n);
  switch (v->dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), v->data, n * 4);
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, v->data + 2 * i, 2);
        out[i] = v->dtype == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    default:
      return make_error(v->file, ": tensor \"", name, "\" has dtype ", dtype_name(v->dtype),
                        ", expected a float dtype (F32, F16 or BF16)");
  }
  // The fp32 copy is what the caller keeps: drop the mapped source pages so that loading a
  // model holds one copy of each tensor, not the copy plus the file (issue 15).
  release_mapped_range(v->data, v->nbytes);
  return out;
}

Expected<std::vector<float>> SafeTensors::to_f32(const std::string& name,
                                                 const std::vector<int64_t>& expected_shape) const {
  const TensorView* v = find(name);
  if (!v) return make_error("tensor \"", name, "\" not found");
  if (v->shape != expected_shape)
    return make_error(v->file, ": tensor \"", name, "\" has shape ", shape_str(v->shape),
                      ", expected ", shape_str(expected_shape));
  return to_f32(name);
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

namespace {
// pwrite(2) all of `n` bytes at `off` (retrying short writes and EINTR); false sets errno.
bool pwrite_fully(int fd, const void* data, size_t n, uint64_t off) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, std::min(n, size_t(1) << 30), off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    n -= size_t(w);
    off += uint64_t(w);
  }
  return true;
}

std::atomic<unsigned> g_writer_id{0};
constexpr size_t kCopyChunk = size_t(4) << 20;  // data file -> shard copy buffer
}  // namespace

SafeTensorsWriter::SafeTensorsWriter(std::string out_dir, size_t max_shard_bytes)
    : out_dir_(std::move(out_dir)),
      max_shard_bytes_(max_shard_bytes ? max_shard_bytes : 1),
      id_(g_writer_id++) {}

SafeTensorsWriter::~SafeTensorsWriter() {
  close_data_file();
  if (!finished_)
    for (const auto& t : temp_shards_) std::remove(t.c_str());
}

std::string SafeTensorsWriter::temp_name(const char* kind) const {
  return (fs::path(out_dir_) / (".shard-" + std::to_string(temp_shards_.size()) + "." + kind +
                                ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(id_)))
      .string();
}

void SafeTensorsWriter::close_data_file() {
  if (data_fd_ >= 0) ::close(data_fd_);
  data_fd_ = -1;
  if (!data_tmp_.empty()) std::remove(data_tmp_.c_str());
  data_tmp_.clear();
  data_bytes_ = 0;
}

Status SafeTensorsWriter::open_data_file() {
  const std::string path = temp_name("data");
  data_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (data_fd_ < 0) return make_error(path, ": cannot create: ", std::strerror(errno));
  data_tmp_ = path;
  data_bytes_ = 0;
  return Status::Ok();
}

Status SafeTensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                              const void* data, size_t nbytes) {
  if (finished_) return make_error(out_dir_, ": add(\"", name, "\") after finish()");
  if (name.empty() || name == "__metadata__")
    return make_error(out_dir_, ": invalid tensor name \"", name, "\"");
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || mul_overflows(numel, uint64_t(d), &numel))
      return make_error(out_dir_, ": tensor \"", name, "\" has invalid shape ", shape_str(shape));
  uint64_t want = 0;
  if (mul_overflows(numel, dtype_size(dtype), &want) || want != nbytes)
    return make_error(out_dir_, ": tensor \"", name, "\": shape ", shape_str(shape), " x ",
                      dtype_name(dtype), " needs ", want, " bytes, got ", nbytes);
  if (names_.count(name)) return make_error(out_dir_, ": duplicate tensor \"", name, "\"");
  if (data_fd_ < 0) AWQ_TRY(open_data_file());
  // At data_bytes_, not the file position: a failed write leaves nothing behind that counts.
  if (nbytes && !pwrite_fully(data_fd_, data, nbytes, data_bytes_))
    return make_error(data_tmp_, ": write of tensor \"", name, "\" (", nbytes,
                      " bytes) failed: ", std::strerror(errno));
  names_.insert(name);
  entries_.push_back({name, dtype, std::move(shape), data_bytes_, data_bytes_ + nbytes});
  data_bytes_ += nbytes;
  total_bytes_ += nbytes;
  if (data_bytes_ >= max_shard_bytes_) AWQ_TRY(flush_shard());
  return Status::Ok();
}

Status SafeTensorsWriter::add_f32(const std::string& name, DType target, std::vector<int64_t> shape,
                                  const float* data) {
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || mul_overflows(numel, uint64_t(d), &numel))
      return make_error(out_dir_, ": tensor \"", name, "\" has invalid shape ", shape_str(shape));
  switch (target) {
    case DType::F32:
      return add(name, target, std::move(shape), data, numel * 4);
    case DType::F16:
    case DType::BF16: {
      std::vector<uint16_t> h(numel);
      for (uint64_t i = 0; i < numel; ++i)
        h[i] = target == DType::F16 ? f32_to_fp16(data[i]) : f32_to_bf16(data[i]);
      return add(name, target, std::move(shape), h.data(), numel * 2);
    }
    default:
      return make_error(out_dir_, ": add_f32(\"", name, "\"): target dtype ", dtype_name(target),
                        " is not F32, F16 or BF16");
  }
}

// Completes the open shard: a temp shard file = u64 header length + JSON header + the data
// file's bytes (copied in chunks, never read whole), fsynced; then the data file is removed.
Status SafeTensorsWriter::flush_shard() {
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  std::vector<std::string> names;
  for (const auto& e : entries_) {
    h[e.name] = {{"dtype", dtype_name(e.dtype)},
                 {"shape", e.shape},
                 {"data_offsets", {e.begin, e.end}}};
    names.push_back(e.name);
  }
  std::string text = h.dump();
  while (text.size() % 8) text.push_back(' ');  // align the data section to 8 bytes
  std::string header;
  put_u64_le(header, text.size());
  header += text;

  const std::string tmp = temp_name("safetensors");
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return make_error(tmp, ": cannot create: ", std::strerror(errno));
  auto fail = [&](const std::string& what) {
    const int e = errno;
    ::close(out);
    std::remove(tmp.c_str());
    return make_error(tmp, ": ", what, ": ", std::strerror(e));
  };
  if (!pwrite_fully(out, header.data(), header.size(), 0)) return fail("write failed");
  if (data_bytes_ > 0) {
    std::vector<uint8_t> buf(size_t(std::min<uint64_t>(kCopyChunk, data_bytes_)));
    for (uint64_t off = 0; off < data_bytes_;) {
      const size_t want = size_t(std::min<uint64_t>(buf.size(), data_bytes_ - off));
      const ssize_t r = ::pread(data_fd_, buf.data(), want, off_t(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (r == 0) errno = EIO;  // the data file is shorter than what was written to it
        return fail("copy from " + data_tmp_ + " failed");
      }
      if (!pwrite_fully(out, buf.data(), size_t(r), header.size() + off))
        return fail("write failed");
      off += uint64_t(r);
    }
  }
  if (::fsync(out) != 0) return fail("fsync failed");
  if (::close(out) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error(tmp, ": close failed: ", std::strerror(e));
  }
  temp_shards_.push_back(tmp);
  shard_tensor_names_.push_back(std::move(names));
  entries_.clear();
  close_data_file();
  return Status::Ok();
}

Status SafeTensorsWriter::finish() {
  if (finished_) return Status::Ok();
  if (!entries_.empty() || temp_shards_.empty()) AWQ_TRY(flush_shard());
  const size_t n = temp_shards_.size();
  std::vector<std::string> finals;
  for (size_t i = 0; i < n; ++i) {
    char buf[64];
    if (n == 1)
      std::snprintf(buf, sizeof buf, "model.safetensors");
    else
      std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    finals.push_back(buf);
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string dst = (fs::path(out_dir_) / finals[i]).string();
    if (std::rename(temp_shards_[i].c_str(), dst.c_str()) != 0)
      return make_error(dst, ": rename failed: ", std::strerror(errno));
  }
  if (n > 1) {
    nlohmann::ordered_json idx;
    idx["metadata"] = {{"total_size", total_bytes_}};
    nlohmann::ordered_json wm = nlohmann::ordered_json::object();
    std::vector<std::pair<std::string, std::string>> entries;
    for (size_t i = 0; i < n; ++i)
      for (const auto& name : shard_tensor_names_[i]) entries.emplace_back(name, finals[i]);
    std::sort(entries.begin(), entries.end());
    for (auto& [k, v] : entries) wm[k] = v;
    idx["weight_map"] = wm;
    AWQ_TRY(write_file_atomic((fs::path(out_dir_) / "model.safetensors.index.json").string(),
                              idx.dump(2) + "\n"));
  }
  temp_shards_.clear();
  finished_ = true;
  return Status::Ok();
}

}  // namespace awq
