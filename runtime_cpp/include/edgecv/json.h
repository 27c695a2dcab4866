// A small JSON reader for manifests: parse once, then typed accessors that
// throw edgecv::Error naming the missing or mistyped key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgecv::json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;
  static Value Parse(std::string_view text);  // throws Error(kInvalidArtifact)

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }

  bool AsBool() const;
  double AsNumber() const;
  int64_t AsInt() const;
  const std::string& AsString() const;
  const std::vector<Value>& AsArray() const;
  const std::map<std::string, Value>& AsObject() const;

  // Member access on objects; At() throws naming the key, Find() returns nullptr.
  const Value& At(const std::string& key) const;
  const Value* Find(const std::string& key) const;

 private:
  friend class Parser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<Value> array_;
  std::map<std::string, Value> object_;
};

std::vector<int64_t> AsShape(const Value& v);
std::vector<float> AsFloats(const Value& v);

}  // namespace edgecv::json
