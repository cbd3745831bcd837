using System;
using System.Collections.Generic;
using NpcRuntime.Unity.Json;

namespace NpcRuntime.Unity.Package
{
    /// <summary>The fields of manifest.json (docs/package.md, format_version 1) the Unity client needs. Parse checks the
    /// whole contract first (ManifestContract: the same rules, fields and error classes as the Python and C++ readers).</summary>
    public sealed class ModelManifest
    {
        public const int SupportedFormatVersion = 1;

        public int FormatVersion { get; private set; }
        public string Kind { get; private set; }          // "causal-lm" | "policy"
        public string Name { get; private set; }
        public string Target { get; private set; }        // "ort" | "portable"
        public string Precision { get; private set; }
        public int NumLayers { get; private set; }
        public int NumKvHeads { get; private set; }
        public int HeadDim { get; private set; }
        public int VocabSize { get; private set; }
        public int ContextLength { get; private set; }
        public string KvLayout { get; private set; }      // "growing" for portable packages
        public int KvCapacity { get; private set; }
        public int BosId { get; private set; }
        public List<int> EosIds { get; private set; }
        public List<string> InputNames { get; private set; }
        public List<string> OutputNames { get; private set; }
        public int PolicyFeatures { get; private set; }
        public int PolicyActions { get; private set; }
        /// <summary>Listed file name (relative, confined) -> sha256 hex.</summary>
        public Dictionary<string, string> Files { get; private set; }

        public bool HasInput(string name) { return InputNames.Contains(name); }

        public static ModelManifest Parse(string json)
        {
            const string where = "manifest.json";
            object parsed;
            try { parsed = MiniJson.Parse(json); }
            catch (FormatException e) { throw new ManifestException("json", "", "is not valid JSON (" + e.Message + ")", e); }
            ManifestContract.Check(parsed);
            var root = (Dictionary<string, object>)parsed;
            var m = new ModelManifest();
            m.Files = new Dictionary<string, string>();
            foreach (var entry in (Dictionary<string, object>)root["files"]) m.Files[entry.Key] = (string)entry.Value;
            m.FormatVersion = JsonFields.Int(root, "format_version", where);
            if (m.FormatVersion != SupportedFormatVersion)
                throw new FormatException(where + ": format_version " + m.FormatVersion + " is not supported (this client reads " + SupportedFormatVersion + "); re-export the package or update the client");
            m.Kind = JsonFields.Str(root, "kind", where);
            m.Name = JsonFields.OptStr(root, "name", "");
            m.Target = JsonFields.Str(root, "target", where);
            m.Precision = JsonFields.OptStr(root, "precision", "fp32");
            m.InputNames = Names(JsonFields.Arr(root, "inputs", where), where + " inputs");
            m.OutputNames = Names(JsonFields.Arr(root, "outputs", where), where + " outputs");
            m.EosIds = new List<int>();
            if (m.Kind == "causal-lm")
            {
                var arch = JsonFields.Obj(root, "architecture", where);
                m.NumLayers = JsonFields.Int(arch, "num_layers", where + " architecture");
                m.NumKvHeads = JsonFields.Int(arch, "num_kv_heads", where + " architecture");
                m.HeadDim = JsonFields.Int(arch, "head_dim", where + " architecture");
                m.VocabSize = JsonFields.Int(arch, "vocab_size", where + " architecture");
                m.ContextLength = JsonFields.Int(arch, "context_length", where + " architecture");
                var kv = JsonFields.Obj(root, "kv_cache", where);
                m.KvLayout = JsonFields.Str(kv, "layout", where + " kv_cache");
                m.KvCapacity = kv.ContainsKey("capacity") ? JsonFields.Int(kv, "capacity", where + " kv_cache") : m.ContextLength;
                var special = JsonFields.OptObj(root, "special_tokens") ?? new Dictionary<string, object>();
                object bos;
                m.BosId = special.TryGetValue("bos", out bos) && bos is double ? (int)(double)bos : -1;
                object eos;
                if (special.TryGetValue("eos", out eos))
                {
                    var list = eos as List<object>;
                    if (list != null) foreach (var e in list) m.EosIds.Add((int)(double)e);
                    else if (eos is double) m.EosIds.Add((int)(double)eos);
                }
            }
            else if (m.Kind == "policy")
            {
                var policy = JsonFields.OptObj(root, "policy");
                if (policy != null)
                {
                    m.PolicyFeatures = JsonFields.Int(policy, "num_features", where + " policy");
                    m.PolicyActions = JsonFields.Int(policy, "num_actions", where + " policy");
                }
            }
            else throw new FormatException(where + ": kind must be \"causal-lm\" or \"policy\", got \"" + m.Kind + "\"");
            return m;
        }

        /// <summary>Throws unless this is a package Sentis can run: target portable, of the expected kind.</summary>
        public void RequirePortable(string expectedKind)
        {
            if (Target != "portable")
                throw new NotSupportedException("model package '" + Name + "' has target \"" + Target + "\"; Unity needs a \"portable\" package (npcrt export --target portable)");
            if (Kind != expectedKind)
                throw new NotSupportedException("model package '" + Name + "' is a " + Kind + " model, expected " + expectedKind);
            if (Kind == "causal-lm" && KvLayout != "growing")
                throw new NotSupportedException("model package '" + Name + "' has kv_cache.layout \"" + KvLayout + "\"; the Sentis brain runs the \"growing\" layout of model.onnx");
        }

        private static List<string> Names(List<object> items, string where)
        {
            var names = new List<string>();
            foreach (var item in items)
            {
                var obj = item as Dictionary<string, object>;
                if (obj == null) throw new FormatException(where + ": each entry must be an object with a name");
                names.Add(JsonFields.Str(obj, "name", where));
            }
            return names;
        }
    }

    /// <summary>policy.json: feature and action names, in model order, and optional normalisation.</summary>
    public sealed class PolicySpec
    {
        public List<string> Features { get; private set; }
        public List<string> Actions { get; private set; }
        public float[] Mean { get; private set; }
        public float[] Std { get; private set; }

        public static PolicySpec Parse(string json)
        {
            const string where = "policy.json";
            var root = MiniJson.ParseObject(json, where);
            var spec = new PolicySpec
            {
                Features = NameList(JsonFields.Arr(root, "features", where), where + " features"),
                Actions = NameList(JsonFields.Arr(root, "actions", where), where + " actions"),
            };
            var norm = JsonFields.OptObj(root, "normalization") ?? JsonFields.OptObj(root, "normalisation");
            if (norm != null)
            {
                spec.Mean = Floats(JsonFields.Arr(norm, "mean", where + " normalization"));
                spec.Std = Floats(JsonFields.Arr(norm, "std", where + " normalization"));
                if (spec.Mean.Length != spec.Features.Count || spec.Std.Length != spec.Features.Count)
                    throw new FormatException(where + ": normalization mean/std must have one value per feature (" + spec.Features.Count + ")");
            }
            return spec;
        }

        /// <summary>Feature vector from named observation values; missing names count as 0.</summary>
        public float[] Featurize(IDictionary<string, double> values)
        {
            var x = new float[Features.Count];
            for (int i = 0; i < x.Length; i++)
            {
                double v;
                x[i] = values != null && values.TryGetValue(Features[i], out v) ? (float)v : 0f;
                if (Mean != null) x[i] = (x[i] - Mean[i]) / (Std[i] == 0f ? 1f : Std[i]);
            }
            return x;
        }

        private static List<string> NameList(List<object> items, string where)
        {
            var names = new List<string>();
            foreach (var item in items)
            {
                var s = item as string;
                var obj = item as Dictionary<string, object>;
                if (s == null && obj != null) s = JsonFields.Str(obj, "name", where);
                if (s == null) throw new FormatException(where + ": entries must be names or objects with a name");
                names.Add(s);
            }
            return names;
        }

        private static float[] Floats(List<object> items)
        {
            var result = new float[items.Count];
            for (int i = 0; i < result.Length; i++) result[i] = (float)(double)items[i];
            return result;
        }
    }
}
