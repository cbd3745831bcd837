#include "npc/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "npc/mini_json.h"

namespace npc {

namespace {

enum class CharClass { kLetter, kNumber, kSpace, kOther };

struct Range {
  uint32_t lo, hi;
};

bool InRanges(uint32_t cp, const Range* ranges, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (cp >= ranges[i].lo && cp <= ranges[i].hi) return true;
  }
  return false;
}

// Approximation of \p{L} (see the header).
const Range kLetters[] = {
    {'A', 'Z'}, {'a', 'z'}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6},
    {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D},
    {0x386, 0x386}, {0x388, 0x3FF}, {0x400, 0x481}, {0x48A, 0x52F}, {0x531, 0x556}, {0x561, 0x587},
    {0x5D0, 0x5EA}, {0x620, 0x64A}, {0x671, 0x6D3}, {0x904, 0x939}, {0x1E00, 0x1FBC}, {0x3041, 0x3096},
    {0x30A1, 0x30FA}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
    {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}};
// Approximation of \p{N}.
const Range kNumbers[] = {{'0', '9'}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669},
                          {0x6F0, 0x6F9}, {0x966, 0x96F}, {0x2070, 0x2079}, {0x2080, 0x2089},
                          {0x2150, 0x2189}, {0x2460, 0x249B}, {0xFF10, 0xFF19}};
// \s (Unicode White_Space).
const Range kSpaces[] = {{0x09, 0x0D}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
                         {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};

CharClass Classify(uint32_t cp) {
  if (InRanges(cp, kSpaces, sizeof(kSpaces) / sizeof(kSpaces[0]))) return CharClass::kSpace;
  if (InRanges(cp, kLetters, sizeof(kLetters) / sizeof(kLetters[0]))) return CharClass::kLetter;
  if (InRanges(cp, kNumbers, sizeof(kNumbers) / sizeof(kNumbers[0]))) return CharClass::kNumber;
  return CharClass::kOther;
}

// One decoded code point with its byte span in the source.
struct CodePoint {
  uint32_t cp;
  size_t begin, end;
};

std::vector<CodePoint> DecodeUtf8(const std::string& s) {
  std::vector<CodePoint> out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + len > s.size()) len = 1;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back({cp, i, i + len});
    i += len;
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
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

// GPT-2 split: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::vector<std::string> PreTokenize(const std::string& text) {
  const std::vector<CodePoint> cps = DecodeUtf8(text);
  std::vector<CharClass> cls;
  cls.reserve(cps.size());
  for (const CodePoint& c : cps) cls.push_back(Classify(c.cp));
  std::vector<std::string> pieces;
  const size_t n = cps.size();
  size_t i = 0;
  auto emit = [&](size_t a, size_t b) { pieces.push_back(text.substr(cps[a].begin, cps[b - 1].end - cps[a].begin)); };
  while (i < n) {
    // Contractions.
    if (cps[i].cp == '\'' && i + 1 < n) {
      const uint32_t a = cps[i + 1].cp;
      const uint32_t b = i + 2 < n ? cps[i + 2].cp : 0;
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    // ` ?` + a run of one class (letters, numbers, or other non-space).
    const size_t j = (cps[i].cp == ' ' && i + 1 < n && cls[i + 1] != CharClass::kSpace) ? i + 1 : i;
    if (cls[j] != CharClass::kSpace) {
      const CharClass run = cls[j];
      size_t k = j;
      while (k < n && cls[k] == run) ++k;
      emit(i, k);
      i = k;
      continue;
    }
    // Whitespace: \s+(?!\S) leaves the last space before a non-space for the next piece; else \s+.
    size_t k = i;
    while (k < n && cls[k] == CharClass::kSpace) ++k;
    if (k < n && k - i >= 2) k -= 1;
    emit(i, k);
    i = k;
  }
  return pieces;
}

}  // namespace

bool BpeTokenizer::LoadFromJson(const std::string& json_text, std::string* error) {
  std::string local;
  std::string* err = error ? error : &local;
  json::Value root;
  if (!json::Parse(json_text, &root, err)) return false;
  const json::Value& model = root["model"];
  if (model["type"].as_string() != "BPE") {
    *err = "tokenizer.json: model.type must be BPE (got '" + model["type"].as_string() + "')";
    return false;
  }
  if (root["pre_tokenizer"]["type"].as_string() != "ByteLevel" || root["pre_tokenizer"]["add_prefix_space"].as_bool()) {
    *err = "tokenizer.json: only a ByteLevel pre_tokenizer without add_prefix_space is supported";
    return false;
  }
  if (!root["normalizer"].is_null()) {
    *err = "tokenizer.json: normalizers are not supported (normalizer must be null)";
    return false;
  }
  vocab_.clear();
  id_to_token_.clear();
  for (const auto& kv : model["vocab"].members()) {
    vocab_[kv.first] = kv.second.as_int();
    id_to_token_[kv.second.as_int()] = kv.first;
  }
  merge_rank_.clear();
  int rank = 0;
  for (const json::Value& m : model["merges"].items()) {
    std::string a, b;
    if (m.is_array()) {
      a = m[0].as_string();
      b = m[1].as_string();
    } else {
      const std::string& s = m.as_string();
      const size_t space = s.find(' ');
      if (space == std::string::npos) continue;
      a = s.substr(0, space);
      b = s.substr(space + 1);
    }
    merge_rank_.emplace(std::make_pair(a, b), rank++);
  }
  ignore_merges_ = model["ignore_merges"].as_bool();
  added_.clear();
  added_by_id_.clear();
  for (const json::Value& a : root["added_tokens"].items()) {
    Added added{a["content"].as_string(), a["id"].as_int(), a["special"].as_bool()};
    if (added.content.empty()) continue;
    added_by_id_[added.id] = added_.size();
    added_.push_back(added);
    id_to_token_.emplace(added.id, added.content);
  }
  // GPT-2 bytes_to_unicode: printable bytes stand for themselves, the others for 256, 257, ...
  unicode_to_byte_.clear();
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    byte_to_unicode_[b].clear();
    AppendUtf8(cp, &byte_to_unicode_[b]);
    unicode_to_byte_[cp] = static_cast<uint8_t>(b);
  }
  if (vocab_.empty()) {
    *err = "tokenizer.json: model.vocab is empty";
    return false;
  }
  return true;
}

bool BpeTokenizer::LoadFromFile(const std::string& path, std::string* error) {
  std::string text;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
      if (error) *error = "cannot open " + path;
      return false;
    }
    char buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, got);
    std::fclose(f);
  }
  if (!LoadFromJson(text, error)) {
    if (error) *error = path + ": " + *error;
    return false;
  }
  return true;
}

int64_t BpeTokenizer::TokenId(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it != vocab_.end()) return it->second;
  for (const Added& a : added_) {
    if (a.content == token) return a.id;
  }
  return -1;
}

void BpeTokenizer::EncodeWord(const std::string& word_bytes, std::vector<int64_t>* out) const {
  std::vector<std::string> symbols;
  std::string whole;
  for (unsigned char c : word_bytes) {
    symbols.push_back(byte_to_unicode_[c]);
    whole += byte_to_unicode_[c];
  }
  if (ignore_merges_) {
    auto it = vocab_.find(whole);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  // Repeatedly merge the adjacent pair with the lowest rank.
  while (symbols.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(std::make_pair(symbols[i], symbols[i + 1]));
      if (it != merge_rank_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    const std::string a = symbols[best], b = symbols[best + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
        merged.push_back(a + b);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols.swap(merged);
  }
  for (const std::string& s : symbols) {
    auto it = vocab_.find(s);
    if (it != vocab_.end()) out->push_back(it->second);  // no unk token in byte-level BPE: every byte is in vocab
  }
}

void BpeTokenizer::EncodeOrdinary(const std::string& text, std::vector<int64_t>* out) const {
  for (const std::string& piece : PreTokenize(text)) EncodeWord(piece, out);
}

std::vector<int64_t> BpeTokenizer::Encode(const std::string& text) const {
  std::vector<int64_t> ids;
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    // Longest added token starting here (matched on the raw text).
    const Added* match = nullptr;
    for (const Added& a : added_) {
      if (text.compare(pos, a.content.size(), a.content) == 0 && (!match || a.content.size() > match->content.size())) {
        match = &a;
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    EncodeOrdinary(text.substr(start, pos - start), &ids);
    ids.push_back(match->id);
    pos += match->content.size();
    start = pos;
  }
  EncodeOrdinary(text.substr(start), &ids);
  return ids;
}

std::string BpeTokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) {
      const Added& a = added_[added->second];
      if (!(skip_special_tokens && a.special)) bytes += a.content;
      continue;
    }
    auto it = id_to_token_.find(id);
    if (it == id_to_token_.end()) continue;
    for (const CodePoint& c : DecodeUtf8(it->second)) {
      auto b = unicode_to_byte_.find(c.cp);
      if (b != unicode_to_byte_.end()) {
        bytes.push_back(static_cast<char>(b->second));
      } else {
        AppendUtf8(c.cp, &bytes);
      }
    }
  }
  // Invalid UTF-8 (a character split across tokens at the end) becomes U+FFFD, as in `tokenizers`.
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) & 0xC0) == 0x80;
    if (ok) {
      out.append(bytes, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += 1;
    }
  }
  return out;
}

}  // namespace npc
