#include "npc/model_manifest.h"

namespace npc {

size_t TensorSpec::ElementBytes() const {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float16") return 2;
  if (dtype == "int64") return 8;
  return 0;
}

bool TensorSpec::IsStatic() const {
  for (int64_t d : shape) {
    if (d <= 0) return false;
  }
  return !shape.empty();
}

uint64_t TensorSpec::Volume() const {
  uint64_t v = 1;
  for (int64_t d : shape) v *= static_cast<uint64_t>(d > 0 ? d : 1);
  return v;
}

namespace {

// "float" (ONNX name) and "float32" both mean float32; keep one spelling.
std::string NormalizeDtype(const std::string& dtype) {
  if (dtype == "float" || dtype == "tensor(float)") return "float32";
  if (dtype == "tensor(float16)") return "float16";
  if (dtype == "tensor(int64)") return "int64";
  if (dtype == "tensor(int32)") return "int32";
  return dtype;
}

bool ParseTensors(const json::Value& list, const std::string& where, std::vector<TensorSpec>* out, std::string* error) {
  if (!list.is_array()) {
    *error = where + " must be a list of {name, dtype, shape}";
    return false;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const json::Value& t = list[i];
    TensorSpec spec;
    spec.name = t["name"].as_string();
    spec.dtype = NormalizeDtype(t["dtype"].as_string());
    if (spec.name.empty()) {
      *error = where + "[" + std::to_string(i) + "].name is missing";
      return false;
    }
    for (const json::Value& d : t["shape"].items()) {
      spec.shape.push_back(d.is_number() ? d.as_int() : -1);  // symbolic dims are strings
    }
    out->push_back(spec);
  }
  return true;
}

uint32_t U32(const json::Value& v) { return static_cast<uint32_t>(v.as_uint(0)); }

}  // namespace

bool ParseManifest(const json::Value& root, ModelManifest* out, std::string* error) {
  std::string local;
  std::string* err = error ? error : &local;
  if (!root.is_object()) {
    *err = "manifest.json: the top level must be a JSON object";
    return false;
  }
  ModelManifest m;
  m.format_version = static_cast<int>(root["format_version"].as_int(0));
  if (m.format_version != 1) {
    *err = "manifest.json: format_version must be 1 (got " + std::to_string(m.format_version) + ")";
    return false;
  }
  m.kind = root["kind"].as_string();
  m.name = root["name"].as_string();
  m.target = root["target"].as_string();
  m.precision = root["precision"].as_string();
  const json::Value& arch = root["architecture"];
  m.family = arch["family"].as_string();
  m.num_layers = U32(arch["num_layers"]);
  m.num_heads = U32(arch["num_heads"]);
  m.num_kv_heads = U32(arch["num_kv_heads"]);
  m.head_dim = U32(arch["head_dim"]);
  m.hidden_size = U32(arch["hidden_size"]);
  m.vocab_size = U32(arch["vocab_size"]);
  m.context_length = U32(arch["context_length"]);
  m.kv_layout = root["kv_cache"]["layout"].as_string();
  if (root["kv_cache"]["dtype"].is_string()) m.kv_dtype = NormalizeDtype(root["kv_cache"]["dtype"].as_string());
  const json::Value& special = root["special_tokens"];
  m.bos = special["bos"].is_number() ? special["bos"].as_int() : -1;
  m.pad = special["pad"].is_number() ? special["pad"].as_int() : -1;
  if (special["eos"].is_number()) {
    m.eos.push_back(special["eos"].as_int());
  } else {
    for (const json::Value& e : special["eos"].items()) m.eos.push_back(e.as_int());
  }
  if (m.kind == "causal-lm") {
    if (m.num_layers == 0 || m.num_kv_heads == 0 || m.head_dim == 0 || m.vocab_size == 0) {
      *err = "manifest.json: architecture needs num_layers, num_kv_heads, head_dim and vocab_size > 0";
      return false;
    }
  }
  const json::Value& fixed = root["variants"]["fixed-capacity"];
  if (fixed.is_object()) {
    m.fixed.present = true;
    m.fixed.file = fixed["file"].as_string();
    m.fixed.capacity = U32(fixed["capacity"]);
    if (m.fixed.file.empty() || m.fixed.capacity == 0) {
      *err = "manifest.json: variants.fixed-capacity needs a file name and a capacity > 0";
      return false;
    }
    if (!ParseTensors(fixed["inputs"], "variants.fixed-capacity.inputs", &m.fixed.inputs, err)) return false;
    if (!ParseTensors(fixed["outputs"], "variants.fixed-capacity.outputs", &m.fixed.outputs, err)) return false;
  }
  *out = m;
  return true;
}

bool LoadManifest(const std::string& package_dir, ModelManifest* out, std::string* error) {
  json::Value root;
  const std::string path = package_dir + "/manifest.json";
  if (!json::ParseFile(path, &root, error)) return false;
  if (!ParseManifest(root, out, error)) {
    if (error) *error = path + ": " + *error;
    return false;
  }
  return true;
}

}  // namespace npc
