// Byte-level BPE tokenizer reading a Hugging Face tokenizer.json (the format of the model packages):
// GPT-2 style ByteLevel pre-tokenizer (no prefix space) + BPE merges + ByteLevel decoder, added/special
// tokens matched literally. Engine-agnostic; used by the local brain to turn player text into ids and ids
// back into text, and checked against clients_test/vectors/tokenizer_vectors.json.
//
// The GPT-2 split regex needs Unicode letter/number classes; they are approximated by tables covering
// Latin (incl. Latin-1 / Extended), Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, kana, CJK and
// Hangul, which is exact for the shared vectors and for typical game dialogue.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace npc {

class BpeTokenizer {
 public:
  // Parses tokenizer.json text; false + error naming what is unsupported or missing.
  bool LoadFromJson(const std::string& json_text, std::string* error);
  bool LoadFromFile(const std::string& path, std::string* error);

  // Text -> ids (no BOS/EOS added; like `encode(text, add_special_tokens=False)`).
  std::vector<int64_t> Encode(const std::string& text) const;
  // Ids -> UTF-8 text; unknown ids are skipped. Bytes that do not form valid UTF-8 become U+FFFD.
  std::string Decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const;

  size_t vocab_size() const { return id_to_token_.size(); }
  int64_t TokenId(const std::string& token) const;  // -1 when absent

 private:
  struct Added {
    std::string content;
    int64_t id;
    bool special;
  };
  void EncodeOrdinary(const std::string& text, std::vector<int64_t>* out) const;
  void EncodeWord(const std::string& word_bytes, std::vector<int64_t>* out) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::map<int64_t, std::string> id_to_token_;
  std::map<std::pair<std::string, std::string>, int> merge_rank_;
  std::vector<Added> added_;
  std::map<int64_t, size_t> added_by_id_;
  bool ignore_merges_ = false;
  std::string byte_to_unicode_[256];                 // byte -> UTF-8 of its stand-in character
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte_;  // stand-in code point -> byte
};

}  // namespace npc
