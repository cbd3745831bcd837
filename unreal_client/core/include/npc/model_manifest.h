// Reads the parts of a model package's manifest.json (docs/model-package.md, format_version 1) that an
// on-device decoder needs: architecture numbers, special tokens and the fixed-capacity KV variant
// (`variants["fixed-capacity"]`: model.fixed.onnx with static shapes, for Unreal NNE).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "npc/mini_json.h"

namespace npc {

struct TensorSpec {
  std::string name;
  std::string dtype;           // "float32", "float16", "int64", "int32"
  std::vector<int64_t> shape;  // -1 for a symbolic dimension
  size_t ElementBytes() const;  // 0 for an unknown dtype
  bool IsStatic() const;
  uint64_t Volume() const;  // product of dims (symbolic dims count as 1)
};

struct FixedVariant {
  bool present = false;
  std::string file;       // "model.fixed.onnx"
  uint32_t capacity = 0;  // KV slots
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct ModelManifest {
  int format_version = 0;
  std::string kind;  // "causal-lm" | "policy"
  std::string name;
  std::string target;     // "ort" | "portable"
  std::string precision;  // "fp32" | "fp16" | "int8" | "int4"
  std::string family;
  uint32_t num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, hidden_size = 0;
  uint32_t vocab_size = 0, context_length = 0;
  std::string kv_layout;             // kv_cache.layout of model.onnx
  std::string kv_dtype = "float32";  // kv_cache.dtype
  int64_t bos = -1, pad = -1;
  std::vector<int64_t> eos;
  FixedVariant fixed;
};

// Parses manifest JSON text. On failure returns false and names the field to fix in `error`.
bool ParseManifest(const json::Value& root, ModelManifest* out, std::string* error);
bool LoadManifest(const std::string& package_dir, ModelManifest* out, std::string* error);

}  // namespace npc
