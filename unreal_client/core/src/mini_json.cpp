#include "npc/mini_json.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace npc {
namespace json {

namespace {
const Value& NullValue() {
  static const Value kNull;
  return kNull;
}
const std::string& EmptyString() {
  static const std::string kEmpty;
  return kEmpty;
}
}  // namespace

int64_t Value::as_int(int64_t fallback) const {
  if (!is_number()) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text_.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return static_cast<int64_t>(v);
  return static_cast<int64_t>(number_);
}

uint64_t Value::as_uint(uint64_t fallback) const {
  if (!is_number() || (!text_.empty() && text_[0] == '-')) return fallback;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text_.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return static_cast<uint64_t>(v);
  return static_cast<uint64_t>(number_);
}

const std::string& Value::as_string() const { return is_string() ? text_ : EmptyString(); }

const std::vector<Value>& Value::items() const {
  static const std::vector<Value> kEmpty;
  return (is_array() && array_) ? *array_ : kEmpty;
}

const std::map<std::string, Value>& Value::members() const {
  static const std::map<std::string, Value> kEmpty;
  return (is_object() && object_) ? *object_ : kEmpty;
}

const Value& Value::operator[](const std::string& key) const {
  if (!is_object() || !object_) return NullValue();
  auto it = object_->find(key);
  return it == object_->end() ? NullValue() : it->second;
}

const Value& Value::operator[](size_t index) const {
  if (!is_array() || !array_ || index >= array_->size()) return NullValue();
  return (*array_)[index];
}

bool Value::has(const std::string& key) const { return is_object() && object_ && object_->count(key) > 0; }

size_t Value::size() const {
  if (is_array() && array_) return array_->size();
  if (is_object() && object_) return object_->size();
  return 0;
}

Value Value::MakeBool(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}
Value Value::MakeNumber(double d, std::string text) {
  Value v;
  v.type_ = Type::kNumber;
  v.number_ = d;
  v.text_ = std::move(text);
  return v;
}
Value Value::MakeString(std::string s) {
  Value v;
  v.type_ = Type::kString;
  v.text_ = std::move(s);
  return v;
}
Value Value::MakeArray(std::vector<Value> items) {
  Value v;
  v.type_ = Type::kArray;
  v.array_ = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}
Value Value::MakeObject(std::map<std::string, Value> members) {
  Value v;
  v.type_ = Type::kObject;
  v.object_ = std::make_shared<std::map<std::string, Value>>(std::move(members));
  return v;
}

namespace {

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  bool Run(Value* out, std::string* error) {
    SkipSpace();
    if (!ParseValue(out, 0)) return Fail(error);
    SkipSpace();
    if (pos_ != s_.size()) {
      what_ = "unexpected text after the JSON value";
      return Fail(error);
    }
    return true;
  }

 private:
  static constexpr int kMaxDepth = 256;

  bool Fail(std::string* error) const {
    if (error) {
      size_t line = 1, col = 1;
      for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
        if (s_[i] == '\n') { ++line; col = 1; } else { ++col; }
      }
      std::ostringstream msg;
      msg << "line " << line << " col " << col << ": " << what_;
      *error = msg.str();
    }
    return false;
  }

  bool Error(const char* what) {
    what_ = what;
    return false;
  }

  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool Literal(const char* word) {
    size_t i = 0;
    for (; word[i]; ++i) {
      if (pos_ + i >= s_.size() || s_[pos_ + i] != word[i]) return false;
    }
    pos_ += i;
    return true;
  }

  bool ParseValue(Value* out, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    if (pos_ >= s_.size()) return Error("unexpected end of input");
    const char c = s_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      std::string str;
      if (!ParseString(&str)) return false;
      *out = Value::MakeString(std::move(str));
      return true;
    }
    if (Literal("true")) { *out = Value::MakeBool(true); return true; }
    if (Literal("false")) { *out = Value::MakeBool(false); return true; }
    if (Literal("null")) { *out = Value(); return true; }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Error("expected a JSON value");
  }

  bool ParseNumber(Value* out) {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&]() {
      const size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > d;
    };
    if (!digits()) return Error("malformed number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Error("malformed number: digits expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("malformed number: digits expected in the exponent");
    }
    std::string text = s_.substr(start, pos_ - start);
    *out = Value::MakeNumber(std::strtod(text.c_str(), nullptr), text);
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else return Error("bad hex digit in \\u escape");
    }
    *out = v;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // surrogate pair
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') return Error("lone high surrogate");
            pos_ += 2;
            uint32_t lo = 0;
            if (!Hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return Error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("lone low surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default: return Error("unknown escape");
      }
    }
  }

  bool ParseArray(Value* out, int depth) {
    ++pos_;
    std::vector<Value> items;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = Value::MakeArray(std::move(items));
      return true;
    }
    while (true) {
      SkipSpace();
      Value item;
      if (!ParseValue(&item, depth + 1)) return false;
      items.push_back(std::move(item));
      SkipSpace();
      if (pos_ >= s_.size()) return Error("unterminated array");
      if (s_[pos_] == ',') { ++pos_; continue; }
      if (s_[pos_] == ']') { ++pos_; break; }
      return Error("expected ',' or ']' in array");
    }
    *out = Value::MakeArray(std::move(items));
    return true;
  }

  bool ParseObject(Value* out, int depth) {
    ++pos_;
    std::map<std::string, Value> members;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      *out = Value::MakeObject(std::move(members));
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string key in object");
      std::string key;
      if (!ParseString(&key)) return false;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':' after object key");
      ++pos_;
      SkipSpace();
      Value member;
      if (!ParseValue(&member, depth + 1)) return false;
      members[key] = std::move(member);
      SkipSpace();
      if (pos_ >= s_.size()) return Error("unterminated object");
      if (s_[pos_] == ',') { ++pos_; continue; }
      if (s_[pos_] == '}') { ++pos_; break; }
      return Error("expected ',' or '}' in object");
    }
    *out = Value::MakeObject(std::move(members));
    return true;
  }

  const std::string& s_;
  size_t pos_ = 0;
  const char* what_ = "";
};

}  // namespace

bool Parse(const std::string& text, Value* out, std::string* error) {
  Parser parser(text);
  return parser.Run(out, error);
}

bool ParseFile(const std::string& path, Value* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "cannot open " + path;
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string local_error;
  if (!Parse(buf.str(), out, &local_error)) {
    if (error) *error = path + ": " + local_error;
    return false;
  }
  return true;
}

}  // namespace json
}  // namespace npc
