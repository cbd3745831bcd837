#include "npc/model_manifest.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <system_error>

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

// The fields the client uses, from a manifest CheckManifest accepted.
static bool ParseFields(const json::Value& root, ModelManifest* out, std::string* error) {
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

// ---- the contract (package/npc_package: manifest.schema.json + manifest.py), in the same order ---------

namespace {

constexpr size_t kMaxNameBytes = 1024;
constexpr double kMaxCount = 1099511627776.0;  // 2^40, the schema's "positive" maximum

bool Fail(ManifestError* e, const std::string& rule, const std::string& field, const std::string& message) {
  e->rule = rule;
  e->field = field;
  e->message = message;
  return false;
}
bool Missing(ManifestError* e, const std::string& field) { return Fail(e, "missing", field, "is required but absent"); }
bool Type(ManifestError* e, const std::string& field, const std::string& wanted) {
  return Fail(e, "type", field, "must be " + wanted);
}

bool IsInt(const json::Value& v) {
  if (!v.is_number()) return false;
  double d = v.as_double();
  return std::isfinite(d) && std::floor(d) == d;
}

bool OneOf(const std::string& s, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (s == a) return true;
  }
  return false;
}

bool Enum(const json::Value& o, const std::string& key, const std::string& field,
          std::initializer_list<const char*> allowed, ManifestError* e) {
  if (!o.has(key)) return true;
  const json::Value& v = o[key];
  if (!v.is_string()) return Type(e, field, "string");
  if (!OneOf(v.as_string(), allowed)) return Fail(e, "value", field, "'" + v.as_string() + "' is not an allowed value");
  return true;
}

bool Positive(const json::Value& o, const std::string& key, const std::string& field, double max, ManifestError* e) {
  if (!o.has(key)) return true;
  const json::Value& v = o[key];
  if (!IsInt(v)) return Type(e, field, "integer");
  if (v.as_double() < 1 || v.as_double() > max) return Fail(e, "value", field, "is out of range");
  return true;
}

bool OptString(const json::Value& o, const std::string& key, const std::string& field, bool null_ok, ManifestError* e) {
  if (!o.has(key)) return true;
  const json::Value& v = o[key];
  if (v.is_string() || (null_ok && v.is_null())) return true;
  return Type(e, field, null_ok ? "string or null" : "string");
}

// An object, or null (returns nullptr without error), or a type error.
bool ObjOrNull(const json::Value& o, const std::string& key, const json::Value** out, ManifestError* e) {
  *out = nullptr;
  if (!o.has(key) || o[key].is_null()) return true;
  if (!o[key].is_object()) return Type(e, key, "object or null");
  *out = &o[key];
  return true;
}

bool IsDigest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool Tensors(const json::Value& list, const std::string& field, ManifestError* e) {
  if (!list.is_array()) return Type(e, field, "array");
  if (list.size() == 0) return Fail(e, "value", field, "needs at least 1 item(s)");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = field + "[" + std::to_string(i) + "]";
    const json::Value& t = list[i];
    if (!t.is_object()) return Type(e, where, "object");
    if (!t.has("name")) return Missing(e, where + ".name");
    if (!t["name"].is_string()) return Type(e, where + ".name", "string");
    if (t["name"].as_string().empty()) return Fail(e, "value", where + ".name", "must not be empty");
    if (!OptString(t, "dtype", where + ".dtype", false, e)) return false;
    if (t.has("shape")) {
      const json::Value& dims = t["shape"];
      if (!dims.is_array()) return Type(e, where + ".shape", "array");
      for (size_t d = 0; d < dims.size(); ++d) {
        if (!dims[d].is_string() && !IsInt(dims[d])) return Type(e, where + ".shape[" + std::to_string(d) + "]", "integer or string");
      }
    }
  }
  return true;
}

bool SpecialTokens(const json::Value& special, ManifestError* e) {
  for (const char* key : {"bos", "eos", "pad"}) {
    if (!special.has(key) || special[key].is_null()) continue;
    const std::string field = std::string("special_tokens.") + key;
    const json::Value& v = special[key];
    if (std::string(key) == "eos" && v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string item = field + "[" + std::to_string(i) + "]";
        if (!IsInt(v[i])) return Type(e, item, "integer");
        if (v[i].as_double() < 0) return Fail(e, "value", item, "must be a token id >= 0");
      }
      continue;
    }
    if (!IsInt(v)) return Type(e, field, "integer or null");
    if (v.as_double() < 0) return Fail(e, "value", field, "must be a token id >= 0");
  }
  return true;
}

bool Files(const json::Value& files, ManifestError* e) {
  if (!files.is_object()) return Type(e, "files", "object");
  if (files.size() == 0) return Fail(e, "value", "files", "must not be empty");
  for (const auto& entry : files.members()) {
    std::string problem = FileNameProblem(entry.first);
    if (!problem.empty()) return Fail(e, "path", "files", "file name '" + entry.first + "' " + problem);
    if (!entry.second.is_string()) return Type(e, "files", "string");
    if (!IsDigest(entry.second.as_string())) {
      return Fail(e, "value", "files", "'" + entry.first + "' must map to its sha256 as 64 lowercase hex digits");
    }
  }
  return true;
}

bool Variants(const json::Value& variants, ManifestError* e) {
  if (!variants.is_object()) return Type(e, "variants", "object");
  for (const auto& entry : variants.members()) {
    const json::Value& v = entry.second;
    if (!v.is_object()) return Type(e, "variants", "object");
    if (!v.has("file")) return Missing(e, "variants.file");
    if (!v["file"].is_string()) return Type(e, "variants.file", "string");
    std::string problem = FileNameProblem(v["file"].as_string());
    if (!problem.empty()) return Fail(e, "path", "variants.file", "file name '" + v["file"].as_string() + "' " + problem);
    if (!Enum(v, "layout", "variants.layout", {"shared-buffer", "growing", "fixed-capacity"}, e)) return false;
    if (!Positive(v, "capacity", "variants.capacity", kMaxCount, e)) return false;
    if (v.has("inputs") && !Tensors(v["inputs"], "variants.inputs", e)) return false;
    if (v.has("outputs") && !Tensors(v["outputs"], "variants.outputs", e)) return false;
  }
  return true;
}

bool Listing(const json::Value& root, const std::string& kind, const std::string& target, ManifestError* e) {
  const json::Value& files = root["files"];
  std::vector<std::string> needed = {"model.onnx", kind == "causal-lm" ? "tokenizer.json" : "policy.json"};
  if (kind == "causal-lm") needed.push_back(target == "ort" ? "genai_config.json" : "model.fixed.onnx");
  for (const std::string& name : needed) {
    if (!files.has(name)) return Fail(e, "listing", "files", name + " is not listed (a " + target + " " + kind + " package needs it)");
  }
  for (const auto& entry : root["variants"].members()) {
    const std::string& file = entry.second["file"].as_string();
    if (!files.has(file)) return Fail(e, "listing", "variants", file + " is not listed (a variant names it)");
  }
  return true;
}

bool HasName(const json::Value& tensors, const std::string& name) {
  for (const json::Value& t : tensors.items()) {
    if (t["name"].as_string() == name) return true;
  }
  return false;
}

bool Io(const json::Value& root, const std::string& kind, ManifestError* e) {
  const json::Value& inputs = root["inputs"];
  const json::Value& outputs = root["outputs"];
  std::vector<std::string> want_in, want_out;
  if (kind == "causal-lm") {
    want_in = {"input_ids", "attention_mask"};
    want_out = {"logits"};
    double layers = root["architecture"]["num_layers"].as_double();
    // bounded: a hostile num_layers cannot build a huge list (a missing name shows within size() + 1 layers)
    size_t limit = std::max(inputs.size(), outputs.size());
    for (size_t i = 0; i < layers && i <= limit; ++i) {
      for (const char* w : {"key", "value"}) {
        want_in.push_back("past_key_values." + std::to_string(i) + "." + w);
        want_out.push_back("present." + std::to_string(i) + "." + w);
      }
    }
  } else {
    want_in = {"observations"};
    want_out = {"action_logits", "confidence"};
  }
  for (const std::string& n : want_in) {
    if (!HasName(inputs, n)) return Fail(e, "io", "inputs", "lacks '" + n + "' (the " + kind + " I/O names, docs/package.md)");
  }
  for (const std::string& n : want_out) {
    if (!HasName(outputs, n)) return Fail(e, "io", "outputs", "lacks '" + n + "' (the " + kind + " I/O names, docs/package.md)");
  }
  if (kind == "policy" && inputs.size() != 1) return Fail(e, "io", "inputs", "a policy's only input is observations");
  if (kind == "policy" && (outputs.size() != 2 || outputs[0]["name"].as_string() != "action_logits")) {
    return Fail(e, "io", "outputs", "a policy's outputs are exactly action_logits, confidence");
  }
  return true;
}

}  // namespace

std::string FileNameProblem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameBytes) return "is longer than 1024 characters";
  for (unsigned char c : name) {
    if (c == '\\' || c == ':' || c < 0x20 || c == 0x7f) return "contains a backslash, ':' or a control character";
  }
  if (name[0] == '/') return "is absolute (names are relative to the package directory)";
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return "has an empty, '.' or '..' component";
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (name == "manifest.json") return "is the manifest itself";
  return "";
}

bool ResolveInside(const std::string& package_dir, const std::string& name, std::string* out, std::string* error) {
  std::string problem = FileNameProblem(name);
  if (!problem.empty()) {
    if (error) *error = "file name '" + name + "' " + problem;
    return false;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::path(package_dir), ec);
  if (ec) {
    if (error) *error = package_dir + ": " + ec.message();
    return false;
  }
  fs::path full = fs::weakly_canonical(root / fs::path(name), ec);
  if (ec) {
    if (error) *error = name + ": " + ec.message();
    return false;
  }
  // inside: root is a proper prefix of full, component by component
  auto r = root.begin(), f = full.begin();
  for (; r != root.end() && !r->empty(); ++r, ++f) {
    if (f == full.end() || *r != *f) {
      if (error) *error = "'" + name + "' resolves to " + full.string() + ", outside the package";
      return false;
    }
  }
  if (out) *out = full.string();
  return true;
}

bool CheckManifest(const json::Value& root, ManifestError* e) {
  if (!root.is_object()) return Fail(e, "json", "", "must hold a JSON object");
  if (!root.has("format_version")) return Missing(e, "format_version");
  if (!IsInt(root["format_version"])) return Type(e, "format_version", "integer");
  if (root["format_version"].as_double() != 1) {
    return Fail(e, "version", "format_version", "format_version " + std::to_string(root["format_version"].as_int()) + " is not supported (this client reads 1); re-export the package or update the client");
  }
  for (const char* key : {"format_version", "kind", "name", "precision", "target", "opset", "inputs", "outputs", "files"}) {
    if (!root.has(key)) return Missing(e, key);
  }
  if (!Enum(root, "kind", "kind", {"causal-lm", "policy"}, e)) return false;
  if (!root["name"].is_string()) return Type(e, "name", "string");
  size_t name_len = root["name"].as_string().size();
  if (name_len < 1 || name_len > 256) return Fail(e, "value", "name", "must be 1 to 256 characters");
  if (!OptString(root, "source", "source", true, e)) return false;
  if (!Enum(root, "precision", "precision", {"fp32", "fp16", "int8", "int4"}, e)) return false;
  if (!Enum(root, "target", "target", {"ort", "portable"}, e)) return false;
  if (!Positive(root, "opset", "opset", 1e300, e)) return false;
  const json::Value* arch = nullptr;
  if (!ObjOrNull(root, "architecture", &arch, e)) return false;
  static const char* kArch[] = {"num_layers", "num_heads", "num_kv_heads", "head_dim", "hidden_size", "vocab_size", "context_length"};
  if (arch) {
    for (const char* f : kArch) {
      if (!arch->has(f)) return Missing(e, std::string("architecture.") + f);
    }
    if (!OptString(*arch, "family", "architecture.family", false, e)) return false;
    for (const char* f : kArch) {
      if (!Positive(*arch, f, std::string("architecture.") + f, kMaxCount, e)) return false;
    }
  }
  const json::Value* ignored = nullptr;
  if (!ObjOrNull(root, "quantization", &ignored, e)) return false;
  const json::Value* kv = nullptr;
  if (!ObjOrNull(root, "kv_cache", &kv, e)) return false;
  if (kv) {
    if (!kv->has("layout")) return Missing(e, "kv_cache.layout");
    if (!Enum(*kv, "layout", "kv_cache.layout", {"shared-buffer", "growing", "fixed-capacity"}, e)) return false;
    if (!Positive(*kv, "capacity", "kv_cache.capacity", kMaxCount, e)) return false;
    if (!Enum(*kv, "dtype", "kv_cache.dtype", {"float32", "float16"}, e)) return false;
  }
  if (!Tensors(root["inputs"], "inputs", e) || !Tensors(root["outputs"], "outputs", e)) return false;
  const json::Value* special = nullptr;
  if (!ObjOrNull(root, "special_tokens", &special, e)) return false;
  if (special && !SpecialTokens(*special, e)) return false;
  if (!OptString(root, "chat_template", "chat_template", true, e)) return false;
  if (!Files(root["files"], e)) return false;
  if (!OptString(root, "exporter_version", "exporter_version", false, e)) return false;
  if (root.has("created_unix") && !IsInt(root["created_unix"])) return Type(e, "created_unix", "integer");
  if (!ObjOrNull(root, "validation", &ignored, e)) return false;
  const json::Value* policy = nullptr;
  if (!ObjOrNull(root, "policy", &policy, e)) return false;
  if (policy && (!Positive(*policy, "num_features", "policy.num_features", kMaxCount, e) ||
                 !Positive(*policy, "num_actions", "policy.num_actions", kMaxCount, e))) {
    return false;
  }
  if (root.has("variants") && !Variants(root["variants"], e)) return false;
  const std::string kind = root["kind"].as_string(), target = root["target"].as_string();
  if (kind == "causal-lm") {
    if (!root.has("architecture")) return Missing(e, "architecture");
    if (!root.has("kv_cache")) return Missing(e, "kv_cache");
    if (!root["architecture"].is_object()) return Type(e, "architecture", "object");
    if (!root["kv_cache"].is_object()) return Type(e, "kv_cache", "object");
  }
  const std::string precision = root["precision"].as_string();
  if (target == "portable" && precision != "fp32" && precision != "fp16") {
    return Fail(e, "value", "precision", "portable packages hold fp32 or fp16 weights");
  }
  return Listing(root, kind, target, e) && Io(root, kind, e);
}

bool ParseManifest(const json::Value& root, ModelManifest* out, std::string* error) {
  ManifestError e;
  bool ok = ParseManifest(root, out, &e);
  if (!ok && error) *error = e.Describe();
  return ok;
}

bool ParseManifest(const json::Value& root, ModelManifest* out, ManifestError* error) {
  ManifestError local;
  ManifestError* err = error ? error : &local;
  if (!CheckManifest(root, err)) return false;
  std::string message;
  if (!ParseFields(root, out, &message)) return Fail(err, "value", "", message);
  for (const auto& entry : root["files"].members()) out->files[entry.first] = entry.second.as_string();
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
