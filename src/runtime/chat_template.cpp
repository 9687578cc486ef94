#include "runtime/chat_template.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

namespace awq {
namespace chat_detail {

// ---------------------------------------------------------------------------------------------
// Values
struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, as Python dicts

struct Value {
  enum class T { Undefined, None, Bool, Int, Float, Str, List, Dict } t = T::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;

  static Value none() { Value v; v.t = T::None; return v; }
  static Value boolean(bool x) { Value v; v.t = T::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.t = T::Int; v.i = x; return v; }
  static Value real(double x) { Value v; v.t = T::Float; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.t = T::Str; v.s = std::move(x); return v; }
  static Value make_list(List l = {}) { Value v; v.t = T::List; v.list = std::make_shared<List>(std::move(l)); return v; }
  static Value make_dict(Dict d = {}) { Value v; v.t = T::Dict; v.dict = std::make_shared<Dict>(std::move(d)); return v; }
  bool is_num() const { return t == T::Int || t == T::Float || t == T::Bool; }
  double num() const { return t == T::Float ? f : t == T::Bool ? (double)b : (double)i; }
  const Value* get(const std::string& k) const {
    for (auto& [key, v] : *dict)
      if (key == k) return &v;
    return nullptr;
  }
};

struct RenderError {
  std::string msg;
};
[[noreturn]] void fail(std::string msg) { throw RenderError{std::move(msg)}; }

const char* type_name(const Value& v) {
  switch (v.t) {
    case Value::T::Undefined: return "undefined";
    case Value::T::None: return "none";
    case Value::T::Bool: return "bool";
    case Value::T::Int: return "int";
    case Value::T::Float: return "float";
    case Value::T::Str: return "string";
    case Value::T::List: return "list";
    case Value::T::Dict: return "dict";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.t) {
    case Value::T::Undefined:
    case Value::T::None: return false;
    case Value::T::Bool: return v.b;
    case Value::T::Int: return v.i != 0;
    case Value::T::Float: return v.f != 0;
    case Value::T::Str: return !v.s.empty();
    case Value::T::List: return !v.list->empty();
    case Value::T::Dict: return !v.dict->empty();
  }
  return false;
}

std::string repr(const Value& v);
std::string float_str(double f) {
  if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 1e16) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", f);
    return buf;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", f);
  // shortest round-trip like Python repr
  for (int p = 1; p <= 17; ++p) {
    char b2[64];
    std::snprintf(b2, sizeof b2, "%.*g", p, f);
    if (std::strtod(b2, nullptr) == f) return b2;
  }
  return buf;
}
std::string to_string(const Value& v) {  // str(v) as Jinja prints it
  switch (v.t) {
    case Value::T::Undefined: return "";
    case Value::T::None: return "None";
    case Value::T::Bool: return v.b ? "True" : "False";
    case Value::T::Int: return std::to_string(v.i);
    case Value::T::Float: return float_str(v.f);
    case Value::T::Str: return v.s;
    default: return repr(v);
  }
}
std::string repr(const Value& v) {
  if (v.t == Value::T::Str) {
    std::string q = v.s.find('\'') != std::string::npos && v.s.find('"') == std::string::npos ? "\"" : "'";
    std::string out = q;
    for (char c : v.s) {
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (std::string(1, c) == q) out += "\\" + q;
      else out += c;
    }
    return out + q;
  }
  if (v.t == Value::T::List) {
    std::string out = "[";
    for (size_t i = 0; i < v.list->size(); ++i) out += (i ? ", " : "") + repr((*v.list)[i]);
    return out + "]";
  }
  if (v.t == Value::T::Dict) {
    std::string out = "{";
    bool first = true;
    for (auto& [k, x] : *v.dict) {
      out += (first ? "" : ", ") + repr(Value::str(k)) + ": " + repr(x);
      first = false;
    }
    return out + "}";
  }
  return to_string(v);
}

bool equal(const Value& a, const Value& b) {
  if (a.is_num() && b.is_num()) return a.num() == b.num();
  if (a.t != b.t) return false;
  switch (a.t) {
    case Value::T::Undefined:
    case Value::T::None: return true;
    case Value::T::Str: return a.s == b.s;
    case Value::T::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i)
        if (!equal((*a.list)[i], (*b.list)[i])) return false;
      return true;
    case Value::T::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (auto& [k, x] : *a.dict) {
        const Value* y = b.get(k);
        if (!y || !equal(x, *y)) return false;
      }
      return true;
    default: return false;
  }
}

Value from_json(const nlohmann::json& j) {
  if (j.is_null()) return Value::none();
  if (j.is_boolean()) return Value::boolean(j.get<bool>());
  if (j.is_number_integer()) return Value::integer(j.get<int64_t>());
  if (j.is_number()) return Value::real(j.get<double>());
  if (j.is_string()) return Value::str(j.get<std::string>());
  if (j.is_array()) {
    List l;
    for (auto& e : j) l.push_back(from_json(e));
    return Value::make_list(std::move(l));
  }
  Dict d;
  for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), from_json(it.value()));
  return Value::make_dict(std::move(d));
}

// ---------------------------------------------------------------------------------------------
// Expression tokens and AST
struct Tok {
  enum K { Name, Int, Float, Str, Op, End } k = End;
  std::string s;  // name / op / decoded string
  int64_t i = 0;
  double f = 0;
  size_t off = 0;  // byte offset in the template
};

struct Expr;
using ExprP = std::shared_ptr<Expr>;
struct Expr {
  enum K { Lit, Name, Attr, Index, Slice, Call, Filter, Test, Not, Neg, Bin, Cond, ListLit, DictLit } k;
  explicit Expr(K kind) : k(kind) {}
  Value lit;
  std::string name;        // Name, Attr, Filter, Test, Bin op
  ExprP a, b, c;           // operands
  std::vector<ExprP> args; // Call/Filter/Test args, ListLit items, DictLit k0 v0 k1 v1 ...
  std::vector<std::pair<std::string, ExprP>> kwargs;
  bool negated = false;    // Test
  size_t off = 0;
};

struct Node;
using Body = std::vector<Node>;
struct Node {
  enum K { Text, Output, For, If, Set } k;
  explicit Node(K kind, std::string t = {}) : k(kind), text(std::move(t)) {}
  std::string text;                     // Text
  ExprP expr;                           // Output, For iterable, Set value
  std::vector<std::string> targets;     // For loop vars, Set target
  std::vector<std::pair<ExprP, Body>> branches;  // If: (cond or null for else, body)
  Body body, else_body;                 // For
};

struct Program {
  Body body;
};

std::string at(size_t off) { return " (at byte " + std::to_string(off) + ")"; }

// Decode a Python-style string literal body (unicode-escape semantics).
void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) out += (char)cp;
  else if (cp < 0x800) { out += (char)(0xC0 | (cp >> 6)); out += (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { out += (char)(0xE0 | (cp >> 12)); out += (char)(0x80 | ((cp >> 6) & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
  else { out += (char)(0xF0 | (cp >> 18)); out += (char)(0x80 | ((cp >> 12) & 0x3F)); out += (char)(0x80 | ((cp >> 6) & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
}

std::vector<Tok> lex_expr(std::string_view src, size_t base) {
  std::vector<Tok> out;
  size_t p = 0;
  while (p < src.size()) {
    const char c = src[p];
    if (std::isspace((unsigned char)c)) { ++p; continue; }
    Tok t;
    t.off = base + p;
    if (std::isalpha((unsigned char)c) || c == '_') {
      size_t q = p;
      while (q < src.size() && (std::isalnum((unsigned char)src[q]) || src[q] == '_')) ++q;
      t.k = Tok::Name;
      t.s = std::string(src.substr(p, q - p));
      p = q;
    } else if (std::isdigit((unsigned char)c)) {
      size_t q = p;
      while (q < src.size() && (std::isdigit((unsigned char)src[q]) || src[q] == '_')) ++q;
      bool is_float = q + 1 < src.size() && src[q] == '.' && std::isdigit((unsigned char)src[q + 1]);
      if (is_float) {
        ++q;
        while (q < src.size() && std::isdigit((unsigned char)src[q])) ++q;
      }
      std::string num;
      for (size_t i = p; i < q; ++i) if (src[i] != '_') num += src[i];
      if (is_float) { t.k = Tok::Float; t.f = std::strtod(num.c_str(), nullptr); }
      else { t.k = Tok::Int; t.i = std::strtoll(num.c_str(), nullptr, 10); }
      p = q;
    } else if (c == '\'' || c == '"') {
      size_t q = p + 1;
      std::string s;
      while (q < src.size() && src[q] != c) {
        if (src[q] == '\\' && q + 1 < src.size()) {
          const char e = src[q + 1];
          q += 2;
          auto hex = [&](int n) {
            if (q + n > src.size()) fail("truncated \\x/\\u escape in string literal" + at(base + q));
            uint32_t v = 0;
            for (int i = 0; i < n; ++i) {
              const char h = src[q + i];
              if (!std::isxdigit((unsigned char)h)) fail("bad hex digit in string escape" + at(base + q));
              v = v * 16 + (uint32_t)(std::isdigit((unsigned char)h) ? h - '0' : (std::tolower(h) - 'a' + 10));
            }
            q += n;
            return v;
          };
          switch (e) {
            case 'n': s += '\n'; break;
            case 't': s += '\t'; break;
            case 'r': s += '\r'; break;
            case '0': s += '\0'; break;
            case 'a': s += '\a'; break;
            case 'b': s += '\b'; break;
            case 'f': s += '\f'; break;
            case 'v': s += '\v'; break;
            case '\\': s += '\\'; break;
            case '\'': s += '\''; break;
            case '"': s += '"'; break;
            case '\n': break;  // line continuation
            case 'x': append_utf8(s, hex(2)); break;
            case 'u': append_utf8(s, hex(4)); break;
            case 'U': append_utf8(s, hex(8)); break;
            default: s += '\\'; s += e; break;  // Python keeps unknown escapes
          }
        } else {
          s += src[q++];
        }
      }
      if (q >= src.size()) fail("unterminated string literal" + at(t.off));
      t.k = Tok::Str;
      t.s = std::move(s);
      p = q + 1;
    } else {
      static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                  "|", ".", "[", "]", "(", ")", ",", ":", "=", "<", ">", "{", "}"};
      bool found = false;
      for (const char* op : ops) {
        const size_t n = std::strlen(op);
        if (src.substr(p, n) == op) {
          t.k = Tok::Op;
          t.s = op;
          p += n;
          found = true;
          break;
        }
      }
      if (!found) fail(std::string("unexpected character '") + c + "' in expression" + at(t.off));
    }
    out.push_back(std::move(t));
  }
  Tok end;
  end.off = base + src.size();
  out.push_back(end);
  return out;
}

class ExprParser {
 public:
  explicit ExprParser(std::vector<Tok> toks) : t_(std::move(toks)) {}
  const Tok& peek(int k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool is_op(const char* s, int k = 0) const { return peek(k).k == Tok::Op && peek(k).s == s; }
  bool is_name(const char* s, int k = 0) const { return peek(k).k == Tok::Name && peek(k).s == s; }
  bool at_end() const { return peek().k == Tok::End; }
  Tok next() { return t_[std::min(p_++, t_.size() - 1)]; }
  void expect_op(const char* s) {
    if (!is_op(s)) fail(std::string("expected '") + s + "', got " + describe(peek()) + at(peek().off));
    ++p_;
  }
  std::string expect_name() {
    if (peek().k != Tok::Name) fail("expected a name, got " + describe(peek()) + at(peek().off));
    return next().s;
  }
  static std::string describe(const Tok& t) {
    switch (t.k) {
      case Tok::End: return "end of tag";
      case Tok::Str: return "string literal";
      case Tok::Int:
      case Tok::Float: return "number";
      default: return "'" + t.s + "'";
    }
  }

  ExprP parse() {  // conditional expression
    ExprP e = parse_or();
    if (is_name("if")) {
      const size_t off = next().off;
      auto c = std::make_shared<Expr>(Expr::Cond);
      c->off = off;
      c->b = e;
      c->a = parse_or();
      if (is_name("else")) {
        next();
        c->c = parse();
      }
      return c;
    }
    return e;
  }

 private:
  ExprP bin(const std::string& op, ExprP l, ExprP r, size_t off) {
    auto e = std::make_shared<Expr>(Expr::Bin);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    e->off = off;
    return e;
  }
  ExprP parse_or() {
    ExprP l = parse_and();
    while (is_name("or")) { const size_t o = next().off; l = bin("or", l, parse_and(), o); }
    return l;
  }
  ExprP parse_and() {
    ExprP l = parse_not();
    while (is_name("and")) { const size_t o = next().off; l = bin("and", l, parse_not(), o); }
    return l;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      const size_t o = next().off;
      auto e = std::make_shared<Expr>(Expr::Not);
      e->a = parse_not();
      e->off = o;
      return e;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    ExprP l = parse_math1();
    ExprP result;
    for (;;) {
      std::string op;
      const size_t o = peek().off;
      if (peek().k == Tok::Op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" ||
                                  peek().s == "<=" || peek().s == ">" || peek().s == ">=")) {
        op = next().s;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      ExprP r = parse_math1();
      ExprP cmp = bin(op, l, r, o);
      result = result ? bin("and", result, cmp, o) : cmp;  // a < b < c == (a < b) and (b < c)
      l = r;
    }
    return result ? result : l;
  }
  ExprP parse_math1() {
    ExprP l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Tok op = next();
      l = bin(op.s, l, parse_concat(), op.off);
    }
    return l;
  }
  ExprP parse_concat() {
    ExprP l = parse_math2();
    while (is_op("~")) { const size_t o = next().off; l = bin("~", l, parse_math2(), o); }
    return l;
  }
  ExprP parse_math2() {
    ExprP l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Tok op = next();
      l = bin(op.s, l, parse_pow(), op.off);
    }
    return l;
  }
  ExprP parse_pow() {
    ExprP l = parse_unary(true);
    while (is_op("**")) { const size_t o = next().off; l = bin("**", l, parse_unary(true), o); }
    return l;
  }
  ExprP parse_unary(bool with_filter) {
    ExprP node;
    if (is_op("-") || is_op("+")) {
      const Tok op = next();
      node = std::make_shared<Expr>(Expr::Neg);
      node->a = parse_unary(false);
      node->off = op.off;
      if (op.s == "+") node = node->a;  // unary plus: identity on numbers
    } else {
      node = parse_primary();
    }
    node = parse_postfix(node);
    if (with_filter) node = parse_filters(node);
    return node;
  }
  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().k == Tok::Name && is_op("=", 1)) {
        std::string k = next().s;
        next();
        e.kwargs.emplace_back(std::move(k), parse());
      } else {
        e.args.push_back(parse());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }
  ExprP parse_primary() {
    const Tok t = next();
    auto e = std::make_shared<Expr>(Expr::Lit);
    e->off = t.off;
    switch (t.k) {
      case Tok::Int: e->lit = Value::integer(t.i); return e;
      case Tok::Float: e->lit = Value::real(t.f); return e;
      case Tok::Str: {
        std::string s = t.s;
        while (peek().k == Tok::Str) s += next().s;  // adjacent literals concatenate
        e->lit = Value::str(std::move(s));
        return e;
      }
      case Tok::Name:
        if (t.s == "true" || t.s == "True") { e->lit = Value::boolean(true); return e; }
        if (t.s == "false" || t.s == "False") { e->lit = Value::boolean(false); return e; }
        if (t.s == "none" || t.s == "None") { e->lit = Value::none(); return e; }
        e->k = Expr::Name;
        e->name = t.s;
        return e;
      case Tok::Op:
        if (t.s == "(") {
          ExprP inner = parse();
          if (is_op(",")) fail("tuple literals are not supported" + at(peek().off));
          expect_op(")");
          return inner;
        }
        if (t.s == "[") {
          e->k = Expr::ListLit;
          while (!is_op("]")) {
            e->args.push_back(parse());
            if (!is_op(",")) break;
            next();
          }
          expect_op("]");
          return e;
        }
        if (t.s == "{") {
          e->k = Expr::DictLit;
          while (!is_op("}")) {
            e->args.push_back(parse());
            expect_op(":");
            e->args.push_back(parse());
            if (!is_op(",")) break;
            next();
          }
          expect_op("}");
          return e;
        }
        break;
      default: break;
    }
    fail("unexpected " + describe(t) + " in expression" + at(t.off));
  }
  ExprP parse_postfix(ExprP node) {
    for (;;) {
      if (is_op(".")) {
        const size_t o = next().off;
        auto e = std::make_shared<Expr>(Expr::Attr);
        e->a = node;
        e->off = o;
        if (peek().k == Tok::Int) e->name = std::to_string(next().i);
        else e->name = expect_name();
        node = e;
      } else if (is_op("[")) {
        const size_t o = next().off;
        auto e = std::make_shared<Expr>(Expr::Index);
        e->a = node;
        e->off = o;
        if (!is_op(":")) e->b = parse();
        if (is_op(":")) {
          next();
          e->k = Expr::Slice;
          if (!is_op("]") && !is_op(":")) e->c = parse();
          if (is_op(":")) fail("slice steps are not supported" + at(peek().off));
        }
        expect_op("]");
        node = e;
      } else if (is_op("(")) {
        auto e = std::make_shared<Expr>(Expr::Call);
        e->a = node;
        e->off = peek().off;
        parse_call_args(*e);
        node = e;
      } else {
        return node;
      }
    }
  }
  ExprP parse_filters(ExprP node) {
    for (;;) {
      if (is_op("|")) {
        const size_t o = next().off;
        auto e = std::make_shared<Expr>(Expr::Filter);
        e->off = o;
        e->a = node;
        e->name = expect_name();
        if (is_op("(")) parse_call_args(*e);
        node = e;
      } else if (is_name("is")) {
        const size_t o = next().off;
        auto e = std::make_shared<Expr>(Expr::Test);
        e->off = o;
        e->a = node;
        if (is_name("not")) {
          next();
          e->negated = true;
        }
        e->name = expect_name();
        if (is_op("(")) parse_call_args(*e);
        node = e;
      } else if (is_op("(")) {
        auto e = std::make_shared<Expr>(Expr::Call);
        e->a = node;
        e->off = peek().off;
        parse_call_args(*e);
        node = e;
      } else {
        return node;
      }
    }
  }
  std::vector<Tok> t_;
  size_t p_ = 0;
};

ExprP parse_full_expr(std::string_view src, size_t base) {
  ExprParser p(lex_expr(src, base));
  ExprP e = p.parse();
  if (!p.at_end()) fail("unexpected " + ExprParser::describe(p.peek()) + " after expression" + at(p.peek().off));
  return e;
}

// ---------------------------------------------------------------------------------------------
// Template scanning: text and tags, with whitespace control (trim_blocks, lstrip_blocks, '-').
struct Seg {
  enum K { Text, Expr, Stmt, Comment } k;
  Seg(K kind, std::string src, size_t at) : k(kind), s(std::move(src)), off(at) {}
  std::string s;  // text, or the tag's inner source
  size_t off = 0;
  bool strip_before = false, strip_after = false;
};

std::vector<Seg> scan(std::string_view src) {
  std::vector<Seg> segs;
  size_t p = 0;
  while (p < src.size()) {
    size_t q = p;
    size_t open = std::string_view::npos;
    while (q + 1 < src.size()) {
      if (src[q] == '{' && (src[q + 1] == '{' || src[q + 1] == '%' || src[q + 1] == '#')) {
        open = q;
        break;
      }
      ++q;
    }
    if (open == std::string_view::npos) {
      segs.push_back({Seg::Text, std::string(src.substr(p)), p});
      break;
    }
    if (open > p) segs.push_back({Seg::Text, std::string(src.substr(p, open - p)), p});
    const char kind = src[open + 1];
    Seg tag(kind == '{' ? Seg::Expr : kind == '%' ? Seg::Stmt : Seg::Comment, "", open);
    size_t i = open + 2;
    if (i < src.size() && (src[i] == '-' || src[i] == '+')) {
      tag.strip_before = src[i] == '-';
      ++i;
    }
    const char close = kind == '{' ? '}' : kind == '%' ? '%' : '#';
    size_t end = std::string_view::npos;
    char quote = 0;
    for (size_t j = i; j + 1 < src.size(); ++j) {
      const char c = src[j];
      if (kind != '#') {
        if (quote) {
          if (c == '\\') { ++j; continue; }
          if (c == quote) quote = 0;
          continue;
        }
        if (c == '\'' || c == '"') { quote = c; continue; }
      }
      if (c == close && src[j + 1] == '}') { end = j; break; }
    }
    if (end == std::string_view::npos)
      fail(std::string("unclosed ") + (kind == '{' ? "'{{'" : kind == '%' ? "'{%'" : "'{#'") + at(open));
    size_t inner_end = end;
    if (inner_end > i && src[inner_end - 1] == '-' && kind != '#') {
      tag.strip_after = true;
      --inner_end;
    } else if (kind == '#' && inner_end > i && src[inner_end - 1] == '-') {
      tag.strip_after = true;
      --inner_end;
    }
    tag.s = std::string(src.substr(i, inner_end - i));
    tag.off = i;
    segs.push_back(std::move(tag));
    p = end + 2;
  }
  // Whitespace control.
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  // lstrip_blocks looks at the source text (before trim_blocks removed a leading newline).
  std::vector<char> line_start(segs.size(), 0);  // text ends with [ \t]* after a newline / at start
  for (size_t n = 0; n < segs.size(); ++n) {
    if (segs[n].k != Seg::Text) continue;
    const std::string& t = segs[n].s;
    size_t k = t.size();
    while (k > 0 && (t[k - 1] == ' ' || t[k - 1] == '\t')) --k;
    line_start[n] = k == 0 ? n == 0 : t[k - 1] == '\n';
  }
  for (size_t n = 0; n < segs.size(); ++n) {
    Seg& s = segs[n];
    if (s.k == Seg::Text) continue;
    const bool block = s.k != Seg::Expr;
    if (n > 0 && segs[n - 1].k == Seg::Text) {
      std::string& prev = segs[n - 1].s;
      if (s.strip_before) {
        while (!prev.empty() && is_ws(prev.back())) prev.pop_back();
      } else if (block) {  // lstrip_blocks: drop spaces/tabs between line start and the tag
        if (line_start[n - 1])
          while (!prev.empty() && (prev.back() == ' ' || prev.back() == '\t')) prev.pop_back();
      }
    }
    if (n + 1 < segs.size() && segs[n + 1].k == Seg::Text) {
      std::string& next = segs[n + 1].s;
      if (s.strip_after) {
        size_t k = 0;
        while (k < next.size() && is_ws(next[k])) ++k;
        next.erase(0, k);
      } else if (block) {  // trim_blocks: drop one newline after the tag
        if (next.rfind("\r\n", 0) == 0) next.erase(0, 2);
        else if (!next.empty() && next[0] == '\n') next.erase(0, 1);
      }
    }
  }
  return segs;
}

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Seg> segs) : segs_(std::move(segs)) {}
  Body parse_all() {
    std::string stop;
    Body b = parse_body({}, &stop);
    return b;
  }

 private:
  static std::string first_word(const std::string& s, size_t* rest) {
    size_t i = 0;
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
    size_t j = i;
    while (j < s.size() && (std::isalnum((unsigned char)s[j]) || s[j] == '_')) ++j;
    *rest = j;
    return s.substr(i, j - i);
  }
  // Parse until one of `stops` (returned in *stop with its segment index in stop_seg_).
  Body parse_body(const std::vector<std::string>& stops, std::string* stop) {
    Body body;
    while (p_ < segs_.size()) {
      const Seg& s = segs_[p_];
      if (s.k == Seg::Text) {
        if (!s.s.empty()) body.push_back(Node(Node::Text, s.s));
        ++p_;
        continue;
      }
      if (s.k == Seg::Comment) { ++p_; continue; }
      if (s.k == Seg::Expr) {
        Node n{Node::Output};
        n.expr = parse_full_expr(s.s, s.off);
        body.push_back(std::move(n));
        ++p_;
        continue;
      }
      size_t rest = 0;
      const std::string kw = first_word(s.s, &rest);
      const std::string_view tail = std::string_view(s.s).substr(rest);
      const size_t tail_off = s.off + rest;
      if (std::find(stops.begin(), stops.end(), kw) != stops.end()) {
        *stop = kw;
        stop_seg_ = p_;
        ++p_;
        return body;
      }
      ++p_;
      if (kw == "if") {
        body.push_back(parse_if(tail, tail_off));
      } else if (kw == "for") {
        body.push_back(parse_for(tail, tail_off, s.off));
      } else if (kw == "set") {
        body.push_back(parse_set(tail, tail_off));
      } else if (kw == "endif" || kw == "endfor" || kw == "elif" || kw == "else") {
        fail("unexpected '{% " + kw + " %}'" + at(s.off));
      } else {
        fail("unsupported statement '{% " + (kw.empty() ? s.s : kw) + " %}'" + at(s.off) +
             "; supported: for, if/elif/else, set");
      }
    }
    if (!stops.empty()) fail("missing '{% " + stops.back() + " %}' for the tag opened" + at(open_off_));
    return body;
  }
  Node parse_if(std::string_view cond, size_t off) {
    Node n{Node::If};
    ExprP c = parse_full_expr(cond, off);
    const size_t saved_open = open_off_;
    open_off_ = off;
    for (;;) {
      std::string stop;
      Body b = parse_body({"elif", "else", "endif"}, &stop);
      n.branches.emplace_back(c, std::move(b));
      const Seg& s = segs_[stop_seg_];
      size_t rest = 0;
      first_word(s.s, &rest);
      if (stop == "elif") {
        c = parse_full_expr(std::string_view(s.s).substr(rest), s.off + rest);
      } else if (stop == "else") {
        Body eb = parse_body({"endif"}, &stop);
        n.branches.emplace_back(nullptr, std::move(eb));
        break;
      } else {
        break;
      }
    }
    open_off_ = saved_open;
    return n;
  }
  Node parse_for(std::string_view src, size_t off, size_t tag_off) {
    Node n{Node::For};
    ExprParser p(lex_expr(src, off));
    n.targets.push_back(p.expect_name());
    while (p.is_op(",")) {
      p.next();
      n.targets.push_back(p.expect_name());
    }
    if (!p.is_name("in")) fail("expected 'in' in for loop" + at(p.peek().off));
    p.next();
    n.expr = p.parse();
    if (!p.at_end()) {
      if (p.is_name("recursive") || p.is_name("if"))
        fail("unsupported for-loop clause '" + p.peek().s + "'" + at(p.peek().off));
      fail("unexpected " + ExprParser::describe(p.peek()) + " in for loop" + at(p.peek().off));
    }
    const size_t saved_open = open_off_;
    open_off_ = tag_off;
    std::string stop;
    n.body = parse_body({"else", "endfor"}, &stop);
    if (stop == "else") n.else_body = parse_body({"endfor"}, &stop);
    open_off_ = saved_open;
    return n;
  }
  Node parse_set(std::string_view src, size_t off) {
    Node n{Node::Set};
    ExprParser p(lex_expr(src, off));
    n.targets.push_back(p.expect_name());
    if (p.is_op(".")) fail("'set' on an attribute (namespace) is not supported" + at(p.peek().off));
    if (p.is_op(",")) fail("'set' with several targets is not supported" + at(p.peek().off));
    if (!p.is_op("=")) fail("block '{% set %}...{% endset %}' is not supported" + at(off));
    p.next();
    n.expr = p.parse();
    if (!p.at_end()) fail("unexpected " + ExprParser::describe(p.peek()) + " in set" + at(p.peek().off));
    return n;
  }

  std::vector<Seg> segs_;
  size_t p_ = 0, stop_seg_ = 0, open_off_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Evaluation
class Renderer {
 public:
  explicit Renderer(Value ctx) { frames_.push_back(std::move(ctx)); }
  void run(const Body& body) {
    for (const Node& n : body) exec(n);
  }
  std::string out;

 private:
  std::vector<Value> frames_;  // each a Dict; innermost last

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
      if (const Value* v = it->get(name)) return *v;
    return Value{};
  }
  void assign(const std::string& name, Value v) {
    Dict& d = *frames_.back().dict;
    for (auto& [k, x] : d)
      if (k == name) { x = std::move(v); return; }
    d.emplace_back(name, std::move(v));
  }

  void exec(const Node& n) {
    switch (n.k) {
      case Node::Text: out += n.text; break;
      case Node::Output: out += to_string(eval(*n.expr)); break;
      case Node::Set: assign(n.targets[0], eval(*n.expr)); break;
      case Node::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || truthy(eval(*cond))) {
            run(body);
            break;
          }
        break;
      case Node::For: {
        Value seq = eval(*n.expr);
        List items;
        if (seq.t == Value::T::List) items = *seq.list;
        else if (seq.t == Value::T::Dict) for (auto& [k, v] : *seq.dict) items.push_back(Value::str(k));
        else if (seq.t == Value::T::Str) for (char c : seq.s) items.push_back(Value::str(std::string(1, c)));
        else if (seq.t == Value::T::Undefined || seq.t == Value::T::None) {
          if (seq.t == Value::T::None) fail("cannot iterate over none" + at(n.expr->off));
        } else fail(std::string("cannot iterate over a ") + type_name(seq) + at(n.expr->off));
        if (items.empty()) {
          run(n.else_body);
          break;
        }
        const int64_t len = (int64_t)items.size();
        for (int64_t i = 0; i < len; ++i) {
          Dict loop = {{"index", Value::integer(i + 1)},     {"index0", Value::integer(i)},
                       {"revindex", Value::integer(len - i)}, {"revindex0", Value::integer(len - i - 1)},
                       {"first", Value::boolean(i == 0)},     {"last", Value::boolean(i == len - 1)},
                       {"length", Value::integer(len)}};
          Dict frame = {{"loop", Value::make_dict(std::move(loop))}};
          if (n.targets.size() == 1) {
            frame.emplace_back(n.targets[0], items[i]);
          } else {
            const Value& it = items[i];
            if (it.t != Value::T::List || it.list->size() != n.targets.size())
              fail("cannot unpack a " + std::string(type_name(it)) + " into " +
                   std::to_string(n.targets.size()) + " loop variables" + at(n.expr->off));
            for (size_t t = 0; t < n.targets.size(); ++t) frame.emplace_back(n.targets[t], (*it.list)[t]);
          }
          frames_.push_back(Value::make_dict(std::move(frame)));
          run(n.body);
          frames_.pop_back();
        }
        break;
      }
    }
  }

  static int64_t as_int(const Value& v, const char* what, size_t off) {
    if (v.t == Value::T::Int) return v.i;
    if (v.t == Value::T::Bool) return v.b;
    fail(std::string(what) + " must be an integer, got " + type_name(v) + at(off));
  }

  Value index(const Value& obj, const Value& key, size_t off, const std::string& what) {
    if (obj.t == Value::T::Undefined) fail("'" + what + "' is undefined" + at(off));
    if (obj.t == Value::T::Dict) {
      if (key.t != Value::T::Str) return Value{};
      const Value* v = obj.get(key.s);
      return v ? *v : Value{};
    }
    if (obj.t == Value::T::List || obj.t == Value::T::Str) {
      if (key.t != Value::T::Int) return Value{};
      const int64_t n = obj.t == Value::T::List ? (int64_t)obj.list->size() : (int64_t)obj.s.size();
      int64_t i = key.i < 0 ? key.i + n : key.i;
      if (i < 0 || i >= n) return Value{};
      return obj.t == Value::T::List ? (*obj.list)[i] : Value::str(std::string(1, obj.s[i]));
    }
    if (obj.t == Value::T::None) fail("cannot subscript none" + at(off));
    return Value{};
  }

  std::string describe(const Expr& e) {
    if (e.k == Expr::Name) return e.name;
    if (e.k == Expr::Attr) return describe(*e.a) + "." + e.name;
    if (e.k == Expr::Index) return describe(*e.a) + "[...]";
    return "expression";
  }

  Value eval(const Expr& e) {
    switch (e.k) {
      case Expr::Lit: return e.lit;
      case Expr::Name: return lookup(e.name);
      case Expr::Attr: return index(eval(*e.a), Value::str(e.name), e.off, describe(*e.a));
      case Expr::Index: return index(eval(*e.a), eval(*e.b), e.off, describe(*e.a));
      case Expr::Slice: {
        Value obj = eval(*e.a);
        if (obj.t != Value::T::List && obj.t != Value::T::Str)
          fail(std::string("cannot slice a ") + type_name(obj) + at(e.off));
        const int64_t n = obj.t == Value::T::List ? (int64_t)obj.list->size() : (int64_t)obj.s.size();
        auto clampi = [&](const ExprP& x, int64_t dflt) {
          if (!x) return dflt;
          Value v = eval(*x);
          if (v.t == Value::T::None) return dflt;
          int64_t i = as_int(v, "slice index", e.off);
          if (i < 0) i += n;
          return std::clamp<int64_t>(i, 0, n);
        };
        const int64_t a = clampi(e.b, 0), b = std::max(a, clampi(e.c, n));
        if (obj.t == Value::T::Str) return Value::str(obj.s.substr(a, b - a));
        return Value::make_list(List(obj.list->begin() + a, obj.list->begin() + b));
      }
      case Expr::ListLit: {
        List l;
        for (auto& x : e.args) l.push_back(eval(*x));
        return Value::make_list(std::move(l));
      }
      case Expr::DictLit: {
        Value d = Value::make_dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (k.t != Value::T::Str) fail("dict keys must be strings" + at(e.args[i]->off));
          d.dict->emplace_back(k.s, eval(*e.args[i + 1]));
        }
        return d;
      }
      case Expr::Not: return Value::boolean(!truthy(eval(*e.a)));
      case Expr::Neg: {
        Value v = eval(*e.a);
        if (v.t == Value::T::Int || v.t == Value::T::Bool) return Value::integer(-v.num());
        if (v.t == Value::T::Float) return Value::real(-v.f);
        fail(std::string("unary '-' on a ") + type_name(v) + at(e.off));
      }
      case Expr::Cond:
        if (truthy(eval(*e.a))) return eval(*e.b);
        return e.c ? eval(*e.c) : Value{};
      case Expr::Bin: return binary(e);
      case Expr::Filter: return filter(e);
      case Expr::Test: return test(e);
      case Expr::Call: return call(e);
    }
    return Value{};
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.a);
      return truthy(l) ? eval(*e.b) : l;
    }
    if (op == "or") {
      Value l = eval(*e.a);
      return truthy(l) ? l : eval(*e.b);
    }
    Value l = eval(*e.a), r = eval(*e.b);
    if (op == "~") return Value::str(to_string(l) + to_string(r));
    if (op == "==") return Value::boolean(equal(l, r));
    if (op == "!=") return Value::boolean(!equal(l, r));
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.t == Value::T::Str) {
        if (l.t != Value::T::Str) fail("'in <string>' needs a string on the left, got " + std::string(type_name(l)) + at(e.off));
        found = r.s.find(l.s) != std::string::npos;
      } else if (r.t == Value::T::List) {
        for (auto& x : *r.list) found = found || equal(l, x);
      } else if (r.t == Value::T::Dict) {
        found = l.t == Value::T::Str && r.get(l.s) != nullptr;
      } else {
        fail(std::string("'in' on a ") + type_name(r) + at(e.off));
      }
      return Value::boolean(op == "in" ? found : !found);
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int c;
      if (l.is_num() && r.is_num()) c = l.num() < r.num() ? -1 : l.num() > r.num() ? 1 : 0;
      else if (l.t == Value::T::Str && r.t == Value::T::Str) c = l.s.compare(r.s);
      else fail("cannot compare " + std::string(type_name(l)) + " and " + type_name(r) + " with '" + op + "'" + at(e.off));
      const bool res = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
      return Value::boolean(res);
    }
    if (op == "+" && l.t == Value::T::Str && r.t == Value::T::Str) return Value::str(l.s + r.s);
    if (op == "+" && l.t == Value::T::List && r.t == Value::T::List) {
      List x = *l.list;
      x.insert(x.end(), r.list->begin(), r.list->end());
      return Value::make_list(std::move(x));
    }
    if (!l.is_num() || !r.is_num())
      fail("unsupported operand types for '" + op + "': " + type_name(l) + " and " + type_name(r) + at(e.off));
    const bool ints = l.t != Value::T::Float && r.t != Value::T::Float;
    if (op == "/") {
      if (r.num() == 0) fail("division by zero" + at(e.off));
      return Value::real(l.num() / r.num());
    }
    if (ints) {
      const int64_t a = (int64_t)l.num(), b = (int64_t)r.num();
      if (op == "+") return Value::integer(a + b);
      if (op == "-") return Value::integer(a - b);
      if (op == "*") return Value::integer(a * b);
      if (op == "**") return Value::integer((int64_t)std::pow((double)a, (double)b));
      if (b == 0) fail("division by zero" + at(e.off));
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) { q -= 1; m += b; }  // Python floor semantics
      return Value::integer(op == "//" ? q : m);
    }
    const double a = l.num(), b = r.num();
    if (op == "+") return Value::real(a + b);
    if (op == "-") return Value::real(a - b);
    if (op == "*") return Value::real(a * b);
    if (op == "**") return Value::real(std::pow(a, b));
    if (b == 0) fail("division by zero" + at(e.off));
    const double q = std::floor(a / b);
    return Value::real(op == "//" ? q : a - q * b);
  }

  static std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
    size_t a = 0, b = s.size();
    auto in = [&](char c) { return chars.empty() ? std::isspace((unsigned char)c) != 0 : chars.find(c) != std::string::npos; };
    if (left) while (a < b && in(s[a])) ++a;
    if (right) while (b > a && in(s[b - 1])) --b;
    return s.substr(a, b - a);
  }
  static std::string upper(std::string s) { for (auto& c : s) c = (char)std::toupper((unsigned char)c); return s; }
  static std::string lower(std::string s) { for (auto& c : s) c = (char)std::tolower((unsigned char)c); return s; }

  Value filter(const Expr& e) {
    Value v = eval(*e.a);
    std::vector<Value> args;
    for (auto& a : e.args) args.push_back(eval(*a));
    const std::string& f = e.name;
    auto need_str = [&]() -> const std::string& {
      if (v.t != Value::T::Str) fail("filter '" + f + "' expects a string, got " + type_name(v) + at(e.off));
      return v.s;
    };
    if (f == "trim") return Value::str(strip(need_str(), args.empty() ? "" : to_string(args[0]), true, true));
    if (f == "upper") return Value::str(upper(to_string(v)));
    if (f == "lower") return Value::str(lower(to_string(v)));
    if (f == "capitalize") {
      std::string s = lower(to_string(v));
      if (!s.empty()) s[0] = (char)std::toupper((unsigned char)s[0]);
      return Value::str(s);
    }
    if (f == "string") return Value::str(to_string(v));
    if (f == "length" || f == "count") {
      if (v.t == Value::T::Str) return Value::integer((int64_t)v.s.size());
      if (v.t == Value::T::List) return Value::integer((int64_t)v.list->size());
      if (v.t == Value::T::Dict) return Value::integer((int64_t)v.dict->size());
      if (v.t == Value::T::Undefined) return Value::integer(0);
      fail("filter 'length' on a " + std::string(type_name(v)) + at(e.off));
    }
    if (f == "first" || f == "last") {
      if (v.t == Value::T::List) {
        if (v.list->empty()) return Value{};
        return f == "first" ? v.list->front() : v.list->back();
      }
      if (v.t == Value::T::Str) {
        if (v.s.empty()) return Value{};
        return Value::str(std::string(1, f == "first" ? v.s.front() : v.s.back()));
      }
      fail("filter '" + f + "' on a " + std::string(type_name(v)) + at(e.off));
    }
    if (f == "default" || f == "d") {
      const bool boolean = args.size() > 1 && truthy(args[1]);
      if (v.t == Value::T::Undefined || (boolean && !truthy(v))) return args.empty() ? Value::str("") : args[0];
      return v;
    }
    if (f == "join") {
      if (v.t != Value::T::List) fail("filter 'join' on a " + std::string(type_name(v)) + at(e.off));
      const std::string sep = args.empty() ? "" : to_string(args[0]);
      std::string s;
      for (size_t i = 0; i < v.list->size(); ++i) s += (i ? sep : "") + to_string((*v.list)[i]);
      return Value::str(s);
    }
    if (f == "int") {
      if (v.is_num()) return Value::integer((int64_t)v.num());
      if (v.t == Value::T::Str) return Value::integer(std::strtoll(v.s.c_str(), nullptr, 10));
      return Value::integer(0);
    }
    fail("unsupported filter '" + f + "'" + at(e.off));
  }

  Value test(const Expr& e) {
    const std::string& t = e.name;
    bool r;
    if (t == "defined" || t == "undefined") {
      const bool def = eval(*e.a).t != Value::T::Undefined;
      r = t == "defined" ? def : !def;
    } else {
      Value v = eval(*e.a);
      if (t == "none") r = v.t == Value::T::None;
      else if (t == "string") r = v.t == Value::T::Str;
      else if (t == "number") r = v.t == Value::T::Int || v.t == Value::T::Float;
      else if (t == "integer") r = v.t == Value::T::Int;
      else if (t == "mapping") r = v.t == Value::T::Dict;
      else if (t == "sequence" || t == "iterable") r = v.t == Value::T::List || v.t == Value::T::Str || v.t == Value::T::Dict;
      else if (t == "boolean") r = v.t == Value::T::Bool;
      else if (t == "true") r = v.t == Value::T::Bool && v.b;
      else if (t == "false") r = v.t == Value::T::Bool && !v.b;
      else if (t == "even" || t == "odd") {
        const int64_t i = as_int(v, "'even'/'odd' operand", e.off);
        r = (i % 2 == 0) == (t == "even");
      } else fail("unsupported test 'is " + t + "'" + at(e.off));
    }
    return Value::boolean(e.negated ? !r : r);
  }

  Value call(const Expr& e) {
    std::vector<Value> args;
    for (auto& a : e.args) args.push_back(eval(*a));
    if (e.a->k == Expr::Name) {
      const std::string& fn = e.a->name;
      if (fn == "raise_exception") fail(args.empty() ? std::string("raise_exception()") : to_string(args[0]));
      if (fn == "range") {
        if (args.empty() || args.size() > 2) fail("range() takes 1 or 2 arguments" + at(e.off));
        const int64_t a = args.size() == 2 ? as_int(args[0], "range start", e.off) : 0;
        const int64_t b = as_int(args.back(), "range stop", e.off);
        if (b - a > 1000000) fail("range() too large" + at(e.off));
        List l;
        for (int64_t i = a; i < b; ++i) l.push_back(Value::integer(i));
        return Value::make_list(std::move(l));
      }
      fail("unsupported function '" + fn + "()'" + at(e.off));
    }
    if (e.a->k == Expr::Attr) {
      Value obj = eval(*e.a->a);
      const std::string& m = e.a->name;
      if (obj.t == Value::T::Str) {
        const std::string arg0 = args.empty() ? "" : to_string(args[0]);
        if (m == "strip") return Value::str(strip(obj.s, arg0, true, true));
        if (m == "lstrip") return Value::str(strip(obj.s, arg0, true, false));
        if (m == "rstrip") return Value::str(strip(obj.s, arg0, false, true));
        if (m == "upper") return Value::str(upper(obj.s));
        if (m == "lower") return Value::str(lower(obj.s));
        if (m == "startswith") return Value::boolean(obj.s.rfind(arg0, 0) == 0);
        if (m == "endswith")
          return Value::boolean(obj.s.size() >= arg0.size() && obj.s.compare(obj.s.size() - arg0.size(), arg0.size(), arg0) == 0);
        if (m == "split") {
          List l;
          if (args.empty()) {
            size_t i = 0;
            while (i < obj.s.size()) {
              while (i < obj.s.size() && std::isspace((unsigned char)obj.s[i])) ++i;
              size_t j = i;
              while (j < obj.s.size() && !std::isspace((unsigned char)obj.s[j])) ++j;
              if (j > i) l.push_back(Value::str(obj.s.substr(i, j - i)));
              i = j;
            }
          } else {
            if (arg0.empty()) fail("split(): empty separator" + at(e.off));
            size_t i = 0;
            for (;;) {
              const size_t j = obj.s.find(arg0, i);
              l.push_back(Value::str(obj.s.substr(i, j == std::string::npos ? std::string::npos : j - i)));
              if (j == std::string::npos) break;
              i = j + arg0.size();
            }
          }
          return Value::make_list(std::move(l));
        }
      }
      if (obj.t == Value::T::Dict) {
        if (m == "items" || m == "keys" || m == "values") {
          List l;
          for (auto& [k, v] : *obj.dict) {
            if (m == "items") l.push_back(Value::make_list({Value::str(k), v}));
            else l.push_back(m == "keys" ? Value::str(k) : v);
          }
          return Value::make_list(std::move(l));
        }
        if (m == "get") {
          if (args.empty()) fail("get() needs a key" + at(e.off));
          const Value* v = args[0].t == Value::T::Str ? obj.get(args[0].s) : nullptr;
          return v ? *v : (args.size() > 1 ? args[1] : Value::none());
        }
      }
      if (obj.t == Value::T::Undefined) fail("'" + describe(*e.a->a) + "' is undefined" + at(e.off));
      fail("unsupported method '" + m + "()' on a " + type_name(obj) + at(e.off));
    }
    fail("unsupported call" + at(e.off));
  }
};

}  // namespace chat_detail

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  using namespace chat_detail;
  try {
    auto prog = std::make_shared<Program>();
    TemplateParser p(scan(source));
    prog->body = p.parse_all();
    ChatTemplate t;
    t.prog_ = std::move(prog);
    return t;
  } catch (const RenderError& e) {
    return make_error("chat template: ", e.msg);
  }
}

Expected<std::string> ChatTemplate::render(const nlohmann::json& context) const {
  using namespace chat_detail;
  if (!prog_) return make_error("chat template: not parsed");
  if (!context.is_object()) return make_error("chat template: context must be a JSON object");
  try {
    Renderer r(from_json(context));
    r.run(prog_->body);
    return std::move(r.out);
  } catch (const RenderError& e) {
    return make_error("chat template: ", e.msg);
  }
}

Expected<std::string> ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token) const {
  nlohmann::json msgs = nlohmann::json::array();
  for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  return render({{"messages", msgs},
                 {"add_generation_prompt", add_generation_prompt},
                 {"bos_token", bos_token},
                 {"eos_token", eos_token}});
}

}  // namespace awq
