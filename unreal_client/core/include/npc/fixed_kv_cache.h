// Host-side state of the fixed-capacity KV decoder (model.fixed.onnx), engine-agnostic.
//
// Graph contract (docs/model-package.md, export/npc_export/runner.py FixedCapacityDecoder), batch 1,
// one new token per run:
//   input_ids [1, 1] int64, position_ids [1, 1] int64 (the slot the new token's K/V is written to),
//   attention_mask [1, capacity + 1]: slots 0..capacity-1 are cache slots (1 = live), the last entry is
//   the new token (always 1); past_key_values.{i}.key|value [1, kv_heads, capacity, head_dim].
//   Outputs: logits [1, 1, vocab] float32; present.{i}.key|value [1, kv_heads, capacity, head_dim].
// All shapes are static, so an engine sets input shapes once (NNE SetInputTensorShapes) and then binds
// the same buffers every step. present is written into the "other" half of a ping-pong pair and the
// pair is swapped after the step: no KV copy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "npc/model_manifest.h"

namespace npc {

struct TensorBuffer {
  std::string name;
  std::vector<uint64_t> shape;  // concrete
  std::string dtype;
  std::vector<uint8_t>* storage = nullptr;  // owned by FixedKvCache
  void* data() const { return storage ? storage->data() : nullptr; }
  uint64_t bytes() const { return storage ? storage->size() : 0; }
};

class FixedKvCache {
 public:
  // Builds the buffers from a manifest with a fixed-capacity variant; false + error naming the
  // manifest field to fix otherwise.
  bool Init(const ModelManifest& manifest, std::string* error);

  uint32_t capacity() const { return capacity_; }
  uint32_t position() const { return position_; }  // tokens already in the cache
  bool full() const { return position_ >= capacity_; }
  uint32_t vocab() const { return vocab_; }

  // Empties the cache (the KV contents need no clearing: the mask hides dead slots).
  void Reset();

  // Writes the inputs of the next step (token at slot position()). False when the cache is full.
  bool PrepareStep(int64_t token_id);
  // After a successful run: marks the slot live, advances the position, swaps past/present.
  void CommitStep();

  // Buffers in the manifest's input / output order (bind these for the run).
  std::vector<TensorBuffer> Inputs();
  std::vector<TensorBuffer> Outputs();

  // The logits of the last step, [vocab] float32.
  const float* Logits() const;
  // Greedy choice over the last logits.
  int64_t ArgMax() const;

  // Live slots of the attention mask (for tests): mask[0..capacity].
  std::vector<int64_t> MaskValues() const;

 private:
  struct Slot {
    TensorSpec spec;
    std::vector<uint64_t> shape;
    int kind = 0;   // see .cpp
    int layer = -1;
    bool is_value = false;
  };
  std::vector<uint8_t>& KvBuffer(int layer, bool is_value, bool present);
  void WriteInt(std::vector<uint8_t>* buf, const std::string& dtype, size_t index, int64_t value);

  uint32_t capacity_ = 0, vocab_ = 0, num_layers_ = 0;
  uint32_t position_ = 0;
  int flip_ = 0;  // which half of each KV pair is "past"
  std::vector<Slot> inputs_, outputs_;
  std::vector<uint8_t> input_ids_, position_ids_, mask_, logits_;
  std::string ids_dtype_ = "int64", pos_dtype_ = "int64", mask_dtype_ = "int64";
  std::vector<std::vector<uint8_t>> kv_[2];  // [half][layer*2 + is_value]
};

}  // namespace npc
