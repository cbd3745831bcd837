// A small JSON reader (RFC 8259, UTF-8) for manifest.json and the shared test vectors: no
// dependencies, engine-agnostic. Numbers are doubles (plus the exact text for 64-bit integers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace npc {
namespace json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool(bool fallback = false) const { return is_bool() ? bool_ : fallback; }
  double as_double(double fallback = 0.0) const { return is_number() ? number_ : fallback; }
  int64_t as_int(int64_t fallback = 0) const;
  uint64_t as_uint(uint64_t fallback = 0) const;
  const std::string& as_string() const;  // "" unless a string
  const std::vector<Value>& items() const;  // empty unless an array
  const std::map<std::string, Value>& members() const;  // empty unless an object

  // Object member or a null value; chains safely: v["a"]["b"].
  const Value& operator[](const std::string& key) const;
  // Array element or a null value.
  const Value& operator[](size_t index) const;
  bool has(const std::string& key) const;
  size_t size() const;

  static Value MakeNull() { return Value(); }
  static Value MakeBool(bool b);
  static Value MakeNumber(double d, std::string text);
  static Value MakeString(std::string s);
  static Value MakeArray(std::vector<Value> items);
  static Value MakeObject(std::map<std::string, Value> members);

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string text_;  // string value, or the number's literal text
  std::shared_ptr<std::vector<Value>> array_;
  std::shared_ptr<std::map<std::string, Value>> object_;
};

// Parses `text`; on failure returns false and sets `error` ("line L col C: what").
bool Parse(const std::string& text, Value* out, std::string* error);
// Reads and parses a file.
bool ParseFile(const std::string& path, Value* out, std::string* error);

}  // namespace json
}  // namespace npc
