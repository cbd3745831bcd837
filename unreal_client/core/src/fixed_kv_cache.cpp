#include "npc/fixed_kv_cache.h"

#include <algorithm>
#include <cstring>

namespace npc {

namespace {

enum Kind { kInputIds = 1, kPositionIds, kAttentionMask, kPast, kLogits, kPresent };

// "past_key_values.3.value" -> (3, true); false when the name does not follow the convention.
bool ParseKvName(const std::string& name, const std::string& prefix, int* layer, bool* is_value) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::string rest = name.substr(prefix.size());
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  for (size_t i = 0; i < dot; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return false;
  }
  const std::string which = rest.substr(dot + 1);
  if (which != "key" && which != "value") return false;
  *layer = std::stoi(rest.substr(0, dot));
  *is_value = which == "value";
  return true;
}

bool ShapeMatches(const TensorSpec& spec, const std::vector<uint64_t>& shape) {
  if (spec.shape.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (spec.shape[i] > 0 && static_cast<uint64_t>(spec.shape[i]) != shape[i]) return false;
  }
  return true;
}

std::string ShapeText(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

bool FixedKvCache::Init(const ModelManifest& m, std::string* error) {
  std::string local;
  std::string* err = error ? error : &local;
  if (!m.fixed.present) {
    *err = "manifest has no variants.fixed-capacity (export a 'portable' causal-lm package)";
    return false;
  }
  capacity_ = m.fixed.capacity;
  vocab_ = m.vocab_size;
  num_layers_ = m.num_layers;
  const uint64_t kv_heads = m.num_kv_heads, head_dim = m.head_dim, cap = capacity_;
  const std::vector<uint64_t> kv_shape = {1, kv_heads, cap, head_dim};
  inputs_.clear();
  outputs_.clear();
  for (int half = 0; half < 2; ++half) kv_[half].assign(static_cast<size_t>(num_layers_) * 2, std::vector<uint8_t>());
  bool have_ids = false, have_mask = false, have_logits = false;

  for (const TensorSpec& spec : m.fixed.inputs) {
    Slot slot;
    slot.spec = spec;
    if (spec.name == "input_ids") {
      slot.kind = kInputIds; slot.shape = {1, 1}; ids_dtype_ = spec.dtype; have_ids = true;
    } else if (spec.name == "position_ids") {
      slot.kind = kPositionIds; slot.shape = {1, 1}; pos_dtype_ = spec.dtype;
    } else if (spec.name == "attention_mask") {
      slot.kind = kAttentionMask; slot.shape = {1, cap + 1}; mask_dtype_ = spec.dtype; have_mask = true;
    } else if (ParseKvName(spec.name, "past_key_values.", &slot.layer, &slot.is_value)) {
      if (slot.layer >= static_cast<int>(num_layers_)) {
        *err = "fixed-capacity input " + spec.name + " names a layer >= architecture.num_layers";
        return false;
      }
      slot.kind = kPast; slot.shape = kv_shape;
    } else {
      *err = "fixed-capacity input '" + spec.name + "' is not part of the decoder contract";
      return false;
    }
    if (spec.ElementBytes() == 0) {
      *err = "fixed-capacity input " + spec.name + " has an unsupported dtype '" + spec.dtype + "'";
      return false;
    }
    if (!ShapeMatches(spec, slot.shape)) {
      *err = "fixed-capacity input " + spec.name + " shape does not match " + ShapeText(slot.shape);
      return false;
    }
    inputs_.push_back(slot);
  }
  for (const TensorSpec& spec : m.fixed.outputs) {
    Slot slot;
    slot.spec = spec;
    if (spec.name == "logits") {
      slot.kind = kLogits; slot.shape = {1, 1, vocab_}; have_logits = true;
      if (spec.dtype != "float32") {
        *err = "fixed-capacity output logits must be float32 (got '" + spec.dtype + "')";
        return false;
      }
    } else if (ParseKvName(spec.name, "present.", &slot.layer, &slot.is_value)) {
      if (slot.layer >= static_cast<int>(num_layers_)) {
        *err = "fixed-capacity output " + spec.name + " names a layer >= architecture.num_layers";
        return false;
      }
      slot.kind = kPresent; slot.shape = kv_shape;
    } else {
      *err = "fixed-capacity output '" + spec.name + "' is not part of the decoder contract";
      return false;
    }
    if (spec.ElementBytes() == 0 || !ShapeMatches(spec, slot.shape)) {
      *err = "fixed-capacity output " + spec.name + " must be " + ShapeText(slot.shape) + " with a known dtype";
      return false;
    }
    outputs_.push_back(slot);
  }
  if (!have_ids || !have_mask || !have_logits) {
    *err = "fixed-capacity variant needs inputs input_ids and attention_mask and output logits";
    return false;
  }
  // Allocate: both halves of every KV pair, sized from the past input's dtype.
  for (const Slot& slot : inputs_) {
    const size_t bytes = slot.spec.ElementBytes();
    const size_t volume = 1 * kv_heads * cap * head_dim;
    if (slot.kind == kPast) {
      for (int half = 0; half < 2; ++half) KvBuffer(slot.layer, slot.is_value, half == 1).assign(volume * bytes, 0);
    } else if (slot.kind == kInputIds) {
      input_ids_.assign(bytes, 0);
    } else if (slot.kind == kPositionIds) {
      position_ids_.assign(bytes, 0);
    } else if (slot.kind == kAttentionMask) {
      mask_.assign((cap + 1) * bytes, 0);
    }
  }
  for (const Slot& slot : outputs_) {
    if (slot.kind == kPresent && KvBuffer(slot.layer, slot.is_value, true).empty()) {
      *err = "fixed-capacity output " + slot.spec.name + " has no matching past_key_values input";
      return false;
    }
  }
  logits_.assign(static_cast<size_t>(vocab_) * sizeof(float), 0);
  Reset();
  return true;
}

std::vector<uint8_t>& FixedKvCache::KvBuffer(int layer, bool is_value, bool present) {
  const int half = present ? 1 - flip_ : flip_;
  return kv_[half][static_cast<size_t>(layer) * 2 + (is_value ? 1 : 0)];
}

void FixedKvCache::WriteInt(std::vector<uint8_t>* buf, const std::string& dtype, size_t index, int64_t value) {
  if (dtype == "int32") {
    const int32_t v = static_cast<int32_t>(value);
    std::memcpy(buf->data() + index * sizeof(v), &v, sizeof(v));
  } else {
    std::memcpy(buf->data() + index * sizeof(value), &value, sizeof(value));
  }
}

void FixedKvCache::Reset() {
  position_ = 0;
  flip_ = 0;
  std::fill(mask_.begin(), mask_.end(), 0);
  if (!mask_.empty()) WriteInt(&mask_, mask_dtype_, capacity_, 1);  // the new token always sees itself
}

bool FixedKvCache::PrepareStep(int64_t token_id) {
  if (full()) return false;
  WriteInt(&input_ids_, ids_dtype_, 0, token_id);
  if (!position_ids_.empty()) WriteInt(&position_ids_, pos_dtype_, 0, position_);
  return true;
}

void FixedKvCache::CommitStep() {
  if (full()) return;
  WriteInt(&mask_, mask_dtype_, position_, 1);  // slot `position_` now holds this token
  ++position_;
  flip_ = 1 - flip_;  // present becomes past
}

std::vector<TensorBuffer> FixedKvCache::Inputs() {
  std::vector<TensorBuffer> out;
  for (const Slot& slot : inputs_) {
    TensorBuffer b;
    b.name = slot.spec.name;
    b.shape = slot.shape;
    b.dtype = slot.spec.dtype;
    switch (slot.kind) {
      case kInputIds: b.storage = &input_ids_; break;
      case kPositionIds: b.storage = &position_ids_; break;
      case kAttentionMask: b.storage = &mask_; break;
      default: b.storage = &KvBuffer(slot.layer, slot.is_value, false); break;
    }
    out.push_back(b);
  }
  return out;
}

std::vector<TensorBuffer> FixedKvCache::Outputs() {
  std::vector<TensorBuffer> out;
  for (const Slot& slot : outputs_) {
    TensorBuffer b;
    b.name = slot.spec.name;
    b.shape = slot.shape;
    b.dtype = slot.spec.dtype;
    b.storage = slot.kind == kLogits ? &logits_ : &KvBuffer(slot.layer, slot.is_value, true);
    out.push_back(b);
  }
  return out;
}

const float* FixedKvCache::Logits() const { return reinterpret_cast<const float*>(logits_.data()); }

int64_t FixedKvCache::ArgMax() const {
  const float* logits = Logits();
  int64_t best = 0;
  for (uint32_t i = 1; i < vocab_; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

std::vector<int64_t> FixedKvCache::MaskValues() const {
  std::vector<int64_t> values;
  for (uint32_t i = 0; i <= capacity_ && !mask_.empty(); ++i) {
    if (mask_dtype_ == "int32") {
      int32_t v;
      std::memcpy(&v, mask_.data() + i * sizeof(v), sizeof(v));
      values.push_back(v);
    } else {
      int64_t v;
      std::memcpy(&v, mask_.data() + i * sizeof(v), sizeof(v));
      values.push_back(v);
    }
  }
  return values;
}

}  // namespace npc
