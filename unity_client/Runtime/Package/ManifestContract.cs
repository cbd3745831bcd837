using System;
using System.Collections.Generic;
using NpcRuntime.Unity.Json;

namespace NpcRuntime.Unity.Package
{
    /// <summary>A manifest.json that breaks the package contract (docs/package.md). <see cref="Rule"/> is the error
    /// class and <see cref="Field"/> the manifest field (dotted path, [i] for list items), the same ones the Python
    /// reader (npc_package) and the C++ core report for clients_test/vectors/manifest_vectors.json.</summary>
    public sealed class ManifestException : FormatException
    {
        public string Rule { get; private set; }
        public string Field { get; private set; }

        public ManifestException(string rule, string field, string message, Exception inner = null)
            : base("manifest.json " + (field.Length > 0 ? field + ": " : "") + message, inner)
        {
            Rule = rule;
            Field = field;
        }
    }

    /// <summary>The manifest rules of npc_package (package/npc_package/manifest.schema.json + manifest.py), by hand
    /// and in the same order, so one defect gives the same rule and field in every reader.</summary>
    public static class ManifestContract
    {
        public const int FormatVersion = 1;
        public const int MaxNameChars = 1024;
        private const double MaxCount = 1099511627776.0;  // 2^40: the schema's "positive" maximum
        private static readonly string[] Required = { "format_version", "kind", "name", "precision", "target", "opset", "inputs", "outputs", "files" };
        private static readonly string[] Kinds = { "causal-lm", "policy" };
        private static readonly string[] Precisions = { "fp32", "fp16", "int8", "int4" };
        private static readonly string[] Targets = { "ort", "portable" };
        private static readonly string[] Layouts = { "shared-buffer", "growing", "fixed-capacity" };
        private static readonly string[] KvDtypes = { "float32", "float16" };
        private static readonly string[] ArchFields = { "num_layers", "num_heads", "num_kv_heads", "head_dim", "hidden_size", "vocab_size", "context_length" };

        /// <summary>Why <paramref name="name"/> is not a safe package file name, or null (the rules of npc_package/paths.py).</summary>
        public static string NameProblem(string name)
        {
            if (string.IsNullOrEmpty(name)) return "is empty";
            if (name.Length > MaxNameChars) return "is longer than " + MaxNameChars + " characters";
            foreach (char ch in name)
                if (ch == '\\' || ch == ':' || ch < ' ' || ch == '\x7f') return "contains a backslash, ':' or a control character";
            if (name[0] == '/') return "is absolute (names are relative to the package directory)";
            foreach (var part in name.Split('/'))
                if (part.Length == 0 || part == "." || part == "..") return "has an empty, '.' or '..' component";
            if (name == "manifest.json") return "is the manifest itself";
            return null;
        }

        /// <summary>The full path of the listed file <paramref name="name"/> under <paramref name="packageDir"/>, after the
        /// name rules and a check that the resolved path stays inside the package directory.</summary>
        public static string ResolveInside(string packageDir, string name)
        {
            var problem = NameProblem(name);
            if (problem != null) throw new ManifestException("path", "files", "file name '" + name + "' " + problem);
            var root = System.IO.Path.GetFullPath(packageDir).TrimEnd(System.IO.Path.DirectorySeparatorChar) + System.IO.Path.DirectorySeparatorChar;
            var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, name));
            if (!full.StartsWith(root, StringComparison.Ordinal)) throw new ManifestException("path", "files", "'" + name + "' resolves outside the package");
            return full;
        }

        /// <summary>Throws ManifestException unless the parsed manifest follows the contract.</summary>
        public static void Check(object parsed)
        {
            var root = parsed as Dictionary<string, object>;
            if (root == null) throw new ManifestException("json", "", "must hold a JSON object");
            object version;
            if (!root.TryGetValue("format_version", out version)) throw Missing("format_version");
            if (!IsInt(version)) throw Type("format_version", "integer");
            if ((double)version != FormatVersion)
                throw new ManifestException("version", "format_version", "format_version " + (double)version + " is not supported (this client reads " + FormatVersion + "); re-export the package or update the client");
            foreach (var key in Required) if (!root.ContainsKey(key)) throw Missing(key);
            Enum(root, "kind", Kinds);
            var name = Str(root, "name", "name");
            if (name != null && (name.Length < 1 || name.Length > 256)) throw Value("name", "must be 1 to 256 characters");
            OptStrOrNull(root, "source");
            Enum(root, "precision", Precisions);
            Enum(root, "target", Targets);
            Positive(root, "opset", "opset", double.MaxValue);
            var arch = ObjOrNull(root, "architecture");
            if (arch != null)
            {
                foreach (var f in ArchFields) if (!arch.ContainsKey(f)) throw Missing("architecture." + f);
                OptStr(arch, "family", "architecture.family");
                foreach (var f in ArchFields) Positive(arch, f, "architecture." + f, MaxCount);
            }
            ObjOrNull(root, "quantization");
            var kv = ObjOrNull(root, "kv_cache");
            if (kv != null)
            {
                if (!kv.ContainsKey("layout")) throw Missing("kv_cache.layout");
                Enum(kv, "layout", Layouts, "kv_cache.");
                Positive(kv, "capacity", "kv_cache.capacity", MaxCount);
                Enum(kv, "dtype", KvDtypes, "kv_cache.");
            }
            Tensors(root["inputs"], "inputs");
            Tensors(root["outputs"], "outputs");
            var special = ObjOrNull(root, "special_tokens");
            if (special != null) SpecialTokens(special);
            OptStrOrNull(root, "chat_template");
            Files(root["files"]);
            OptStr(root, "exporter_version", "exporter_version");
            object created;
            if (root.TryGetValue("created_unix", out created) && !IsInt(created)) throw Type("created_unix", "integer");
            ObjOrNull(root, "validation");
            var policy = ObjOrNull(root, "policy");
            if (policy != null)
            {
                Positive(policy, "num_features", "policy.num_features", MaxCount);
                Positive(policy, "num_actions", "policy.num_actions", MaxCount);
            }
            object variants;
            if (root.TryGetValue("variants", out variants)) Variants(variants);
            string kind = (string)root["kind"], target = (string)root["target"];
            if (kind == "causal-lm")
            {
                if (!root.ContainsKey("architecture")) throw Missing("architecture");
                if (!root.ContainsKey("kv_cache")) throw Missing("kv_cache");
                if (!(root["architecture"] is Dictionary<string, object>)) throw Type("architecture", "object");
                if (!(root["kv_cache"] is Dictionary<string, object>)) throw Type("kv_cache", "object");
            }
            if (target == "portable" && (string)root["precision"] != "fp32" && (string)root["precision"] != "fp16")
                throw Value("precision", "portable packages hold fp32 or fp16 weights");
            Listing(root, kind, target);
            Io(root, kind);
        }

        private static void Listing(Dictionary<string, object> root, string kind, string target)
        {
            var files = (Dictionary<string, object>)root["files"];
            var needed = new List<string> { "model.onnx", kind == "causal-lm" ? "tokenizer.json" : "policy.json" };
            if (kind == "causal-lm") needed.Add(target == "ort" ? "genai_config.json" : "model.fixed.onnx");
            foreach (var n in needed)
                if (!files.ContainsKey(n)) throw new ManifestException("listing", "files", n + " is not listed (a " + target + " " + kind + " package needs it)");
            object variants;
            if (root.TryGetValue("variants", out variants))
                foreach (var v in ((Dictionary<string, object>)variants).Values)
                {
                    var file = (string)((Dictionary<string, object>)v)["file"];
                    if (!files.ContainsKey(file)) throw new ManifestException("listing", "variants", file + " is not listed (a variant names it)");
                }
        }

        private static void Io(Dictionary<string, object> root, string kind)
        {
            var inputs = Names(root["inputs"]);
            var outputs = Names(root["outputs"]);
            var wantIn = new List<string>();
            var wantOut = new List<string>();
            if (kind == "causal-lm")
            {
                double layers = (double)((Dictionary<string, object>)root["architecture"])["num_layers"];
                wantIn.Add("input_ids"); wantIn.Add("attention_mask"); wantOut.Add("logits");
                // bounded: a hostile num_layers cannot build a huge list (a missing name shows up within Count + 1)
                for (int i = 0; i < layers && i <= Math.Max(inputs.Count, outputs.Count); i++)
                    foreach (var w in new[] { "key", "value" })
                    {
                        wantIn.Add("past_key_values." + i + "." + w);
                        wantOut.Add("present." + i + "." + w);
                    }
            }
            else
            {
                wantIn.Add("observations"); wantOut.Add("action_logits"); wantOut.Add("confidence");
            }
            foreach (var n in wantIn) if (!inputs.Contains(n)) throw new ManifestException("io", "inputs", "lacks '" + n + "' (the " + kind + " I/O names, docs/package.md)");
            foreach (var n in wantOut) if (!outputs.Contains(n)) throw new ManifestException("io", "outputs", "lacks '" + n + "' (the " + kind + " I/O names, docs/package.md)");
            if (kind == "policy" && inputs.Count != 1) throw new ManifestException("io", "inputs", "a policy's only input is observations");
            if (kind == "policy" && (outputs.Count != 2 || outputs[0] != "action_logits")) throw new ManifestException("io", "outputs", "a policy's outputs are exactly action_logits, confidence");
        }

        private static List<string> Names(object tensors)
        {
            var names = new List<string>();
            foreach (var t in (List<object>)tensors) names.Add((string)((Dictionary<string, object>)t)["name"]);
            return names;
        }

        private static void Files(object value)
        {
            var files = value as Dictionary<string, object>;
            if (files == null) throw Type("files", "object");
            if (files.Count == 0) throw Value("files", "must not be empty");
            foreach (var entry in files)
            {
                var problem = NameProblem(entry.Key);
                if (problem != null) throw new ManifestException("path", "files", "file name '" + entry.Key + "' " + problem + " (names stay inside the package)");
                var digest = entry.Value as string;
                if (digest == null) throw Type("files", "string");
                if (!IsDigest(digest)) throw Value("files", "'" + entry.Key + "' must map to its sha256 as 64 lowercase hex digits");
            }
        }

        private static void Variants(object value)
        {
            var variants = value as Dictionary<string, object>;
            if (variants == null) throw Type("variants", "object");
            foreach (var entry in variants.Values)
            {
                var v = entry as Dictionary<string, object>;
                if (v == null) throw Type("variants", "object");
                if (!v.ContainsKey("file")) throw Missing("variants.file");
                var file = v["file"] as string;
                if (file == null) throw Type("variants.file", "string");
                var problem = NameProblem(file);
                if (problem != null) throw new ManifestException("path", "variants.file", "file name '" + file + "' " + problem);
                Enum(v, "layout", Layouts, "variants.");
                Positive(v, "capacity", "variants.capacity", MaxCount);
                if (v.ContainsKey("inputs")) Tensors(v["inputs"], "variants.inputs");
                if (v.ContainsKey("outputs")) Tensors(v["outputs"], "variants.outputs");
            }
        }

        private static void Tensors(object value, string field)
        {
            var list = value as List<object>;
            if (list == null) throw Type(field, "array");
            if (list.Count == 0) throw Value(field, "needs at least 1 item(s)");
            for (int i = 0; i < list.Count; i++)
            {
                var where = field + "[" + i + "]";
                var t = list[i] as Dictionary<string, object>;
                if (t == null) throw Type(where, "object");
                if (!t.ContainsKey("name")) throw Missing(where + ".name");
                var name = Str(t, "name", where + ".name");
                if (name.Length == 0) throw Value(where + ".name", "must not be empty");
                OptStr(t, "dtype", where + ".dtype");
                object shape;
                if (t.TryGetValue("shape", out shape))
                {
                    var dims = shape as List<object>;
                    if (dims == null) throw Type(where + ".shape", "array");
                    for (int d = 0; d < dims.Count; d++)
                        if (!(dims[d] is string) && !IsInt(dims[d])) throw Type(where + ".shape[" + d + "]", "integer or string");
                }
            }
        }

        private static void SpecialTokens(Dictionary<string, object> special)
        {
            foreach (var key in new[] { "bos", "eos", "pad" })
            {
                object v;
                if (!special.TryGetValue(key, out v) || v == null) continue;
                var field = "special_tokens." + key;
                var list = v as List<object>;
                if (key == "eos" && list != null)
                {
                    for (int i = 0; i < list.Count; i++)
                    {
                        if (!IsInt(list[i])) throw Type(field + "[" + i + "]", "integer");
                        if ((double)list[i] < 0) throw Value(field + "[" + i + "]", "must be a token id >= 0");
                    }
                    continue;
                }
                if (!IsInt(v)) throw Type(field, key == "eos" ? "integer or array or null" : "integer or null");
                if ((double)v < 0) throw Value(field, "must be a token id >= 0");
            }
        }

        private static bool IsInt(object v) { return v is double && !double.IsInfinity((double)v) && Math.Floor((double)v) == (double)v; }

        private static bool IsDigest(string s)
        {
            if (s.Length != 64) return false;
            foreach (char ch in s) if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
            return true;
        }

        private static string Str(Dictionary<string, object> o, string key, string field)
        {
            var s = o[key] as string;
            if (s == null) throw Type(field, "string");
            return s;
        }

        private static void OptStr(Dictionary<string, object> o, string key, string field)
        {
            object v;
            if (o.TryGetValue(key, out v) && !(v is string)) throw Type(field, "string");
        }

        private static void OptStrOrNull(Dictionary<string, object> o, string key)
        {
            object v;
            if (o.TryGetValue(key, out v) && v != null && !(v is string)) throw Type(key, "string or null");
        }

        private static Dictionary<string, object> ObjOrNull(Dictionary<string, object> o, string key)
        {
            object v;
            if (!o.TryGetValue(key, out v) || v == null) return null;
            var d = v as Dictionary<string, object>;
            if (d == null) throw Type(key, "object or null");
            return d;
        }

        private static void Enum(Dictionary<string, object> o, string key, string[] allowed, string prefix = "")
        {
            object v;
            if (!o.TryGetValue(key, out v)) return;
            var s = v as string;
            if (s == null) throw Type(prefix + key, "string");
            if (Array.IndexOf(allowed, s) < 0) throw Value(prefix + key, "'" + s + "' is not one of " + string.Join(", ", allowed));
        }

        private static void Positive(Dictionary<string, object> o, string key, string field, double max)
        {
            object v;
            if (!o.TryGetValue(key, out v)) return;
            if (!IsInt(v)) throw Type(field, "integer");
            if ((double)v < 1 || (double)v > max) throw Value(field, (double)v + " is out of range (1.." + max + ")");
        }

        private static ManifestException Missing(string field) { return new ManifestException("missing", field, "is required but absent"); }
        private static ManifestException Type(string field, string wanted) { return new ManifestException("type", field, "must be " + wanted); }
        private static ManifestException Value(string field, string message) { return new ManifestException("value", field, message); }
    }
}
