// Reads the parts of a model package's manifest.json (docs/package.md, format_version 1) that an
// on-device decoder needs: architecture numbers, special tokens and the fixed-capacity KV variant
// (`variants["fixed-capacity"]`: model.fixed.onnx with static shapes, for Unreal NNE).
// ParseManifest first checks the whole contract (CheckManifest): the same rules, in the same order, as the
// Python reader (package/npc_package) and the Unity one, so every clients_test/vectors/manifest_vectors.json
// case gives the same error rule and field.
#pragma once

#include <cstdint>
#include <map>
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
  std::map<std::string, std::string> files;  // listed file (relative, confined) -> sha256 hex
};

// A broken contract: `rule` is the error class ("json", "version", "missing", "type", "value", "path",
// "listing", "io"; docs/package.md), `field` the manifest field (dotted path, [i] for list items).
struct ManifestError {
  std::string rule;
  std::string field;
  std::string message;
  std::string Describe() const { return "manifest.json " + (field.empty() ? "" : field + ": ") + message; }
};

// Why `name` is not a safe package file name ("" when it is): relative, '/'-separated, no empty, '.' or '..'
// component, no '\', ':' or control characters, at most 1024 bytes, not manifest.json.
std::string FileNameProblem(const std::string& name);
// The full path of listed file `name` under `package_dir`, after the name rules and a check that the resolved
// path (symlinks followed) stays inside the package directory. False (and `error`) otherwise.
bool ResolveInside(const std::string& package_dir, const std::string& name, std::string* out, std::string* error);
// Checks the manifest's contract; false with `error` filled at the first broken rule.
bool CheckManifest(const json::Value& root, ManifestError* error);

// Parses manifest JSON text. On failure returns false and names the field to fix in `error`.
bool ParseManifest(const json::Value& root, ModelManifest* out, std::string* error);
bool ParseManifest(const json::Value& root, ModelManifest* out, ManifestError* error);
bool LoadManifest(const std::string& package_dir, ModelManifest* out, std::string* error);

}  // namespace npc
