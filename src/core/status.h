// Error handling for everything that touches user input: functions return
// Expected<T> (a value or an Error naming the file/field, expected vs actual).
// Asserts are for programmer bugs only.
#pragma once
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace awq {

struct Error {
  std::string message;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
  Expected(Error e) : v_(std::move(e)) {}      // NOLINT(implicit)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Status: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : err_(std::move(e.message)), failed_(true) {}  // NOLINT(implicit)
  static Status Ok() { return Status(); }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  Error error() const { return Error{err_}; }
  const std::string& message() const { return err_; }

 private:
  std::string err_;
  bool failed_ = false;
};

inline std::string to_str(const std::string& s) { return s; }
inline std::string to_str(const char* s) { return s; }
inline std::string to_str(std::string_view s) { return std::string(s); }
template <class T>
std::string to_str(T v) requires std::is_arithmetic_v<T> { return std::to_string(v); }

// make_error("file ", path, ": expected ", n, " got ", m)
template <class... Args>
Error make_error(Args&&... parts) {
  std::string s;
  (s.append(to_str(std::forward<Args>(parts))), ...);
  return Error{std::move(s)};
}


}  // namespace awq

// Propagate an error from an Expected/Status expression.
#define AWQ_TRY(expr)                                      \
  do {                                                     \
    auto&& awq_try_r_ = (expr);                            \
    if (!awq_try_r_.ok()) return awq_try_r_.error();       \
  } while (0)

#define AWQ_CONCAT_INNER(a, b) a##b
#define AWQ_CONCAT(a, b) AWQ_CONCAT_INNER(a, b)
// AWQ_ASSIGN(auto x, expr): x = value of expr, or return its error.
#define AWQ_ASSIGN(decl, expr) AWQ_ASSIGN_IMPL(AWQ_CONCAT(awq_tmp_, __LINE__), decl, expr)
#define AWQ_ASSIGN_IMPL(tmp, decl, expr)        \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return tmp.error();            \
  decl = std::move(tmp).value()
