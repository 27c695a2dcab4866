#include "edgecv/json.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "edgecv/error.h"

namespace edgecv::json {

namespace {
const char* TypeName(Value::Type t) {
  switch (t) {
    case Value::Type::kNull:
      return "null";
    case Value::Type::kBool:
      return "boolean";
    case Value::Type::kNumber:
      return "number";
    case Value::Type::kString:
      return "string";
    case Value::Type::kArray:
      return "array";
    case Value::Type::kObject:
      return "object";
  }
  return "?";
}

[[noreturn]] void WrongType(Value::Type want, Value::Type got) {
  ThrowInvalidArtifact(std::string("JSON: expected ") + TypeName(want) + ", found " +
                       TypeName(got));
}
}  // namespace

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Value ParseDocument() {
    Value v = ParseValue(0);
    SkipSpace();
    if (pos_ != s_.size()) Fail("trailing characters after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;  // manifests are shallow; refuse pathological nesting

  [[noreturn]] void Fail(const std::string& what) const {
    ThrowInvalidArtifact("JSON parse error at byte " + std::to_string(pos_) + ": " + what);
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void Expect(char c) {
    if (!Consume(c)) Fail(std::string("expected '") + c + "'");
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Value ParseValue(int depth) {
    if (depth > kMaxDepth) Fail("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) Fail("unexpected end of input");
    Value v;
    char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      v.type_ = Value::Type::kObject;
      if (Consume('}')) return v;
      do {
        SkipSpace();
        std::string key = ParseString();
        Expect(':');
        v.object_[key] = ParseValue(depth + 1);
      } while (Consume(','));
      Expect('}');
    } else if (c == '[') {
      ++pos_;
      v.type_ = Value::Type::kArray;
      if (Consume(']')) return v;
      do {
        v.array_.push_back(ParseValue(depth + 1));
      } while (Consume(','));
      Expect(']');
    } else if (c == '"') {
      v.type_ = Value::Type::kString;
      v.string_ = ParseString();
    } else if (Literal("true")) {
      v.type_ = Value::Type::kBool;
      v.bool_ = true;
    } else if (Literal("false")) {
      v.type_ = Value::Type::kBool;
    } else if (Literal("null")) {
    } else {
      v.type_ = Value::Type::kNumber;
      v.number_ = ParseNumber();
    }
    return v;
  }

  double ParseNumber() {
    size_t start = pos_;
    if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) ++pos_;
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
            s_[pos_] == 'e' || s_[pos_] == 'E' || s_[pos_] == '-' || s_[pos_] == '+'))
      ++pos_;
    std::string token(s_.substr(start, pos_ - start));
    char* end = nullptr;
    double d = std::strtod(token.c_str(), &end);
    if (token.empty() || end != token.c_str() + token.size() || !std::isfinite(d))
      Fail("invalid number '" + token + "'");
    return d;
  }

  void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t ParseHex4() {
    if (pos_ + 4 > s_.size()) Fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9')
        cp |= h - '0';
      else if (h >= 'a' && h <= 'f')
        cp |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        cp |= h - 'A' + 10;
      else
        Fail("invalid \\u escape");
    }
    return cp;
  }

  std::string ParseString() {
    if (pos_ >= s_.size() || s_[pos_] != '"') Fail("expected a string");
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) Fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) Fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = ParseHex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // surrogate pair
            if (!Literal("\\u")) Fail("unpaired surrogate");
            uint32_t lo = ParseHex4();
            if (lo < 0xDC00 || lo >= 0xE000) Fail("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          Fail(std::string("invalid escape \\") + e);
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

Value Value::Parse(std::string_view text) { return Parser(text).ParseDocument(); }

bool Value::AsBool() const {
  if (type_ != Type::kBool) WrongType(Type::kBool, type_);
  return bool_;
}
double Value::AsNumber() const {
  if (type_ != Type::kNumber) WrongType(Type::kNumber, type_);
  return number_;
}
int64_t Value::AsInt() const {
  double d = AsNumber();
  if (d != std::floor(d) || std::fabs(d) > 9.0e15)
    ThrowInvalidArtifact("JSON: expected an integer, found " + std::to_string(d));
  return static_cast<int64_t>(d);
}
const std::string& Value::AsString() const {
  if (type_ != Type::kString) WrongType(Type::kString, type_);
  return string_;
}
const std::vector<Value>& Value::AsArray() const {
  if (type_ != Type::kArray) WrongType(Type::kArray, type_);
  return array_;
}
const std::map<std::string, Value>& Value::AsObject() const {
  if (type_ != Type::kObject) WrongType(Type::kObject, type_);
  return object_;
}
const Value* Value::Find(const std::string& key) const {
  const auto& obj = AsObject();
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &it->second;
}
const Value& Value::At(const std::string& key) const {
  const Value* v = Find(key);
  if (v == nullptr) ThrowInvalidArtifact("JSON: missing key '" + key + "'");
  return *v;
}

std::vector<int64_t> AsShape(const Value& v) {
  std::vector<int64_t> shape;
  for (const Value& d : v.AsArray()) {
    int64_t n = d.AsInt();
    if (n < 0) ThrowInvalidArtifact("JSON: negative dimension in shape");
    shape.push_back(n);
  }
  return shape;
}

std::vector<float> AsFloats(const Value& v) {
  std::vector<float> out;
  for (const Value& d : v.AsArray()) out.push_back(static_cast<float>(d.AsNumber()));
  return out;
}

}  // namespace edgecv::json
