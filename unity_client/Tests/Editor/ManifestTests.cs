using System;
using NpcRuntime.Unity.Package;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    [TestFixture]
    public sealed class ManifestTests
    {
        public const string DialogueManifest = @"{
          ""format_version"": 1, ""kind"": ""causal-lm"", ""name"": ""tiny"", ""target"": ""portable"", ""precision"": ""fp32"", ""opset"": 15,
          ""files"": {""model.onnx"": ""0000000000000000000000000000000000000000000000000000000000000000"",
                      ""model.fixed.onnx"": ""0000000000000000000000000000000000000000000000000000000000000001"",
                      ""tokenizer.json"": ""0000000000000000000000000000000000000000000000000000000000000002"",
                      ""genai_config.json"": ""0000000000000000000000000000000000000000000000000000000000000003""},
          ""architecture"": {""family"": ""llama"", ""num_layers"": 2, ""num_heads"": 2, ""num_kv_heads"": 1, ""head_dim"": 2,
                             ""hidden_size"": 4, ""vocab_size"": 400, ""context_length"": 64},
          ""kv_cache"": {""layout"": ""growing"", ""capacity"": 64, ""dtype"": ""float32""},
          ""inputs"": [{""name"": ""input_ids""}, {""name"": ""attention_mask""}, {""name"": ""position_ids""},
                       {""name"": ""past_key_values.0.key""}, {""name"": ""past_key_values.0.value""},
                       {""name"": ""past_key_values.1.key""}, {""name"": ""past_key_values.1.value""}],
          ""outputs"": [{""name"": ""logits""}, {""name"": ""present.0.key""}, {""name"": ""present.0.value""},
                        {""name"": ""present.1.key""}, {""name"": ""present.1.value""}],
          ""special_tokens"": {""bos"": 1, ""eos"": [2], ""pad"": 0}
        }";

        [Test]
        public void ParsesAPortableDialogueManifest()
        {
            var m = ModelManifest.Parse(DialogueManifest);
            Assert.AreEqual("causal-lm", m.Kind);
            Assert.AreEqual(2, m.NumLayers);
            Assert.AreEqual(400, m.VocabSize);
            Assert.AreEqual("growing", m.KvLayout);
            Assert.AreEqual(1, m.BosId);
            Assert.IsTrue(m.EosIds.Contains(2));
            Assert.IsTrue(m.HasInput("position_ids"));
            m.RequirePortable("causal-lm");
        }

        [Test]
        public void RejectsOrtPackagesWithAHint()
        {
            var m = ModelManifest.Parse(DialogueManifest.Replace("\"portable\"", "\"ort\""));
            var error = Assert.Throws<NotSupportedException>(() => m.RequirePortable("causal-lm"));
            StringAssert.Contains("--target portable", error.Message);
        }

        [Test]
        public void MissingFieldIsNamed()
        {
            var error = Assert.Throws<ManifestException>(() => ModelManifest.Parse(DialogueManifest.Replace("\"kv_cache\"", "\"kv\"")));
            StringAssert.Contains("kv_cache", error.Message);
            Assert.AreEqual("missing", error.Rule);
            Assert.AreEqual("kv_cache", error.Field);
        }

        [Test]
        public void FutureFormatVersionIsRejected()
        {
            var error = Assert.Throws<FormatException>(() => ModelManifest.Parse(DialogueManifest.Replace("\"format_version\": 1", "\"format_version\": 2")));
            StringAssert.Contains("format_version 2", error.Message);
        }

        /// <summary>clients_test/vectors/manifest_vectors.json: the same outcome, rule and field as npc_package.</summary>
        [Test]
        public void ManifestVectors()
        {
            var vectors = TestVectors.Load("manifest_vectors.json");
            int count = 0;
            foreach (var item in (System.Collections.Generic.List<object>)vectors["cases"])
            {
                var c = (System.Collections.Generic.Dictionary<string, object>)item;
                var expect = (System.Collections.Generic.Dictionary<string, object>)c["expect"];
                string got;
                try { ModelManifest.Parse((string)c["text"]); got = "ok"; }
                catch (ManifestException e) { got = e.Rule + " " + e.Field; }
                var want = (bool)expect["ok"] ? "ok" : expect["rule"] + " " + expect["field"];
                Assert.AreEqual(want, got, (string)c["name"]);
                count++;
            }
            Assert.IsTrue(count >= 60, "expected the full vector set");
        }

        [Test]
        public void ResolveInsideKeepsFilesInThePackage()
        {
            var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "npc-pkg");
            StringAssert.Contains("npc-pkg", ManifestContract.ResolveInside(dir, "sub/model.onnx"));
            foreach (var bad in new[] { "../secret.txt", "/etc/hostname", "a/../../b", "C:/x", "..\\x" })
                Assert.Throws<ManifestException>(() => ManifestContract.ResolveInside(dir, bad));
        }

        [Test]
        public void PolicySpecFeaturizesByName()
        {
            var spec = PolicySpec.Parse(@"{""features"": [""player_distance"", {""name"": ""npc_health""}], ""actions"": [""idle"", ""flee""],
                                          ""normalization"": {""mean"": [2.0, 0.0], ""std"": [2.0, 1.0]}}");
            var x = spec.Featurize(new System.Collections.Generic.Dictionary<string, double> { { "player_distance", 6.0 } });
            CollectionAssert.AreEqual(new[] { 2f, 0f }, x);
            Assert.AreEqual("flee", spec.Actions[1]);
        }
    }
}
