#include "io/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

namespace awq {
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kAlign = 32;

template <class T>
void append_pod(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void append_str(std::string& s, const std::string& v) {
  append_pod<uint64_t>(s, v.size());
  s += v;
}
std::string tagged(GGUFValueType t) {
  std::string s;
  append_pod<uint32_t>(s, (uint32_t)t);
  return s;
}
}  // namespace

Expected<GGUFWriter> GGUFWriter::create(const std::string& out_path, bool overwrite) {
  std::error_code ec;
  if (fs::exists(out_path, ec) && !overwrite)
    return make_error(out_path, ": already exists (pass --overwrite to replace it)");
  if (fs::is_directory(out_path, ec))
    return make_error(out_path, ": is a directory; a GGUF output is a single file");
  const fs::path parent = fs::path(out_path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    return make_error(out_path, ": the parent directory ", parent.string(), " does not exist");
  GGUFWriter w;
  w.out_ = out_path;
  w.overwrite_ = overwrite;
  w.tmp_ = out_path + ".tmp-" + std::to_string(getpid());
  w.data_tmp_ = w.tmp_ + ".data";
  w.data_ = std::fopen(w.data_tmp_.c_str(), "w+b");
  if (!w.data_) return make_error(w.data_tmp_, ": cannot create: ", std::strerror(errno));
  return w;
}

GGUFWriter::GGUFWriter(GGUFWriter&& o) noexcept { *this = std::move(o); }
GGUFWriter& GGUFWriter::operator=(GGUFWriter&& o) noexcept {
  if (this != &o) {
    abort();
    out_ = std::move(o.out_), tmp_ = std::move(o.tmp_), data_tmp_ = std::move(o.data_tmp_);
    overwrite_ = o.overwrite_, done_ = o.done_, data_ = o.data_, data_size_ = o.data_size_;
    kv_ = std::move(o.kv_), infos_ = std::move(o.infos_);
    o.data_ = nullptr;
    o.done_ = true;
  }
  return *this;
}
GGUFWriter::~GGUFWriter() { abort(); }

void GGUFWriter::abort() {
  if (data_) std::fclose(data_), data_ = nullptr;
  if (!done_) {
    if (!data_tmp_.empty()) std::remove(data_tmp_.c_str());
    if (!tmp_.empty()) std::remove(tmp_.c_str());
  }
  done_ = true;
}

void GGUFWriter::put(const std::string& key, std::string bytes) {
  kv_.push_back({key, std::move(bytes)});
}
template <class T>
void GGUFWriter::put_scalar(const std::string& k, GGUFValueType t, T v) {
  std::string s = tagged(t);
  append_pod(s, v);
  put(k, std::move(s));
}
void GGUFWriter::set_u32(const std::string& k, uint32_t v) { put_scalar(k, GGUFValueType::U32, v); }
void GGUFWriter::set_i32(const std::string& k, int32_t v) { put_scalar(k, GGUFValueType::I32, v); }
void GGUFWriter::set_u64(const std::string& k, uint64_t v) { put_scalar(k, GGUFValueType::U64, v); }
void GGUFWriter::set_f32(const std::string& k, float v) { put_scalar(k, GGUFValueType::F32, v); }
void GGUFWriter::set_bool(const std::string& k, bool v) {
  put_scalar<uint8_t>(k, GGUFValueType::BOOL, v ? 1 : 0);
}
void GGUFWriter::set_string(const std::string& k, const std::string& v) {
  std::string s = tagged(GGUFValueType::STRING);
  append_str(s, v);
  put(k, s);
}
void GGUFWriter::set_string_array(const std::string& k, const std::vector<std::string>& v) {
  std::string s = tagged(GGUFValueType::ARRAY);
  append_pod<uint32_t>(s, (uint32_t)GGUFValueType::STRING);
  append_pod<uint64_t>(s, v.size());
  for (const auto& x : v) append_str(s, x);
  put(k, s);
}
template <class T>
void GGUFWriter::put_array(const std::string& k, GGUFValueType elem, const std::vector<T>& v) {
  std::string s = tagged(GGUFValueType::ARRAY);
  append_pod<uint32_t>(s, (uint32_t)elem);
  append_pod<uint64_t>(s, v.size());
  for (const T& x : v) append_pod(s, x);
  put(k, std::move(s));
}
void GGUFWriter::set_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  put_array(k, GGUFValueType::I32, v);
}
void GGUFWriter::set_f32_array(const std::string& k, const std::vector<float>& v) {
  put_array(k, GGUFValueType::F32, v);
}

Status GGUFWriter::add_tensor(const std::string& name, GGMLType type,
                              const std::vector<uint64_t>& ne, const void* data, size_t nbytes) {
  if (done_ || !data_) return make_error(out_, ": writer already finished or aborted");
  uint32_t be = 0, bb = 0;
  if (!ggml_type_layout((uint32_t)type, &be, &bb) || be == 0)
    return make_error(out_, ": tensor \"", name, "\": unknown ggml type ", (uint32_t)type);
  if (ne.empty() || ne.size() > 4)
    return make_error(out_, ": tensor \"", name, "\": ", ne.size(), " dims (1 to 4 allowed)");
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  if (ne[0] % be != 0)
    return make_error(out_, ": tensor \"", name, "\": row length ", ne[0],
                      " is not a multiple of ", ggml_type_name((uint32_t)type), "'s block of ", be);
  if (n / be * bb != nbytes)
    return make_error(out_, ": tensor \"", name, "\": ", nbytes, " bytes given, ",
                      n / be * bb, " expected for ", ggml_type_name((uint32_t)type));
  const uint64_t pad = (kAlign - data_size_ % kAlign) % kAlign;
  static const char zeros[kAlign] = {};
  if ((pad && std::fwrite(zeros, 1, pad, data_) != pad) ||
      (nbytes && std::fwrite(data, 1, nbytes, data_) != nbytes))
    return make_error(data_tmp_, ": write failed: ", std::strerror(errno));
  data_size_ += pad;
  infos_.push_back({name, type, ne, data_size_});
  data_size_ += nbytes;
  return Status::Ok();
}

Status GGUFWriter::finish() {
  if (done_ || !data_) return make_error(out_, ": writer already finished or aborted");
  std::set<std::string> seen;
  for (const auto& kv : kv_)
    if (!seen.insert(kv.key).second) return make_error(out_, ": metadata key ", kv.key, " set twice");
  seen.clear();
  for (const auto& t : infos_)
    if (!seen.insert(t.name).second) return make_error(out_, ": tensor ", t.name, " added twice");
  std::string h;
  h += "GGUF";
  append_pod<uint32_t>(h, 3);
  append_pod<uint64_t>(h, infos_.size());
  append_pod<uint64_t>(h, kv_.size() + 1);
  append_str(h, "general.alignment");
  append_pod<uint32_t>(h, (uint32_t)GGUFValueType::U32);
  append_pod<uint32_t>(h, (uint32_t)kAlign);
  for (const auto& kv : kv_) {
    append_str(h, kv.key);
    h += kv.bytes;
  }
  for (const auto& t : infos_) {
    append_str(h, t.name);
    append_pod<uint32_t>(h, (uint32_t)t.ne.size());
    for (uint64_t d : t.ne) append_pod<uint64_t>(h, d);
    append_pod<uint32_t>(h, (uint32_t)t.type);
    append_pod<uint64_t>(h, t.offset);
  }
  h.append((kAlign - h.size() % kAlign) % kAlign, '\0');

  FILE* f = std::fopen(tmp_.c_str(), "wb");
  if (!f) return make_error(tmp_, ": cannot create: ", std::strerror(errno));
  bool ok = std::fwrite(h.data(), 1, h.size(), f) == h.size();
  ok = ok && std::fflush(data_) == 0 && std::fseek(data_, 0, SEEK_SET) == 0;
  std::vector<char> buf(size_t(8) << 20);
  uint64_t left = data_size_;
  while (ok && left > 0) {
    const size_t n = std::fread(buf.data(), 1, std::min<uint64_t>(buf.size(), left), data_);
    ok = n > 0 && std::fwrite(buf.data(), 1, n, f) == n;
    left -= n;
  }
  ok = ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    abort();
    return make_error(tmp_, ": write failed: ", std::strerror(err));
  }
  std::fclose(data_);
  data_ = nullptr;
  std::remove(data_tmp_.c_str());
  if (std::rename(tmp_.c_str(), out_.c_str()) != 0) {
    const int e = errno;
    abort();
    return make_error(out_, ": cannot rename ", tmp_, " into place: ", std::strerror(e));
  }
  done_ = true;
  return Status::Ok();
}

}  // namespace awq
