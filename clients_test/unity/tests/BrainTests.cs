// Drives SentisNpcBrain and SentisPolicyBrain through the Inference Engine call sequence with a fake model
// (the shim's TEST HOOKS): frame slicing over ScheduleIterable, KV feedback, non-blocking readback.
// Lives here, not in unity_client/Tests, because real Inference Engine has no such hooks.
using System;
using System.Collections.Generic;
using System.Linq;
using NpcRuntime.Unity.Brain;
using NpcRuntime.Unity.Decoding;
using NpcRuntime.Unity.Package;
using NpcRuntime.Unity.Tokenization;
using NUnit.Framework;
using Unity.InferenceEngine;

namespace NpcRuntime.Unity.Tests
{
    [TestFixture]
    public sealed class BrainTests
    {
        private int Vocab;
        private ModelManifest manifest;
        private string tokenizerJson;
        private readonly List<int> pastLengthsSeen = new List<int>();
        private readonly List<int> inputLengthsSeen = new List<int>();

        [SetUp]
        public void SetUp()
        {
            var vectors = TestVectors.Load("tokenizer_vectors.json");
            tokenizerJson = TestVectors.ReadRepoFile((string)vectors["tokenizer"]);
            Vocab = ByteLevelBpeTokenizer.FromJson(tokenizerJson).VocabSize; // whichever tokenizer the vectors use
            manifest = ModelManifest.Parse(ManifestTests.DialogueManifest.Replace("\"vocab_size\": 400", "\"vocab_size\": " + Vocab));
            Assert.AreEqual(Vocab, manifest.VocabSize);
        }

        /// <summary>A fake decoder whose greedy continuation is `script`; checks the KV and mask it is fed.</summary>
        private Model FakeDecoder(int[] script, int layers)
        {
            var model = new Model { TestLayerCount = layers };
            foreach (var name in manifest.InputNames) model.inputs.Add(new Model.Input { name = name, dataType = name.StartsWith("past") ? DataType.Float : DataType.Int });
            foreach (var name in manifest.OutputNames) model.outputs.Add(new Model.Output { name = name });
            int step = 0;
            model.TestCompute = inputs =>
            {
                var ids = ((Tensor<int>)inputs["input_ids"]).DownloadToArray();
                int past = inputs["past_key_values.0.key"].shape[2];
                pastLengthsSeen.Add(past);
                inputLengthsSeen.Add(ids.Length);
                Assert.AreEqual(past + ids.Length, inputs["attention_mask"].shape[1], "attention_mask covers past + new");
                CollectionAssert.AreEqual(Enumerable.Range(past, ids.Length).ToArray(), ((Tensor<int>)inputs["position_ids"]).DownloadToArray());
                var outputs = new Dictionary<string, Tensor>();
                for (int layer = 0; layer < 2; layer++)
                    foreach (var kind in new[] { "key", "value" })
                    {
                        // present = concat(past, new): values are the absolute positions, so feedback errors show.
                        var old = ((Tensor<float>)inputs["past_key_values." + layer + "." + kind]).DownloadToArray();
                        for (int i = 0; i < old.Length; i += 2) Assert.AreEqual((float)(i / 2), old[i], "past position " + (i / 2));
                        var data = new float[(past + ids.Length) * 2];
                        for (int p = 0; p < past + ids.Length; p++) { data[2 * p] = p; data[2 * p + 1] = layer; }
                        outputs["present." + layer + "." + kind] = new Tensor<float>(new TensorShape(1, 1, past + ids.Length, 2), data);
                    }
                var logits = new float[ids.Length * Vocab];
                int next = step < script.Length ? script[step] : 2;
                logits[(ids.Length - 1) * Vocab + next] = 10f;
                step++;
                var logitsTensor = new Tensor<float>(new TensorShape(1, ids.Length, Vocab), logits);
                logitsTensor.TestReadbackPolls = 2; // the readback takes two polls: the brain must not block
                outputs["logits"] = logitsTensor;
                return outputs;
            };
            return model;
        }

        private SentisNpcBrain Brain(int[] script, int layers, double budgetMs)
        {
            return new SentisNpcBrain(manifest, tokenizerJson, FakeDecoder(script, layers), BackendType.CPU, budgetMs);
        }

        [Test]
        public void DecodesAScriptedLineWithKvFeedbackAndAsyncReadback()
        {
            var tok = ByteLevelBpeTokenizer.FromJson(tokenizerJson);
            var line = tok.Encode("Hello there!");
            var script = line.Concat(new[] { 2 }).ToArray(); // then </s>
            var brain = Brain(script, 3, 1000.0);
            var deltas = new List<string>();
            string finalText = null;
            LocalFinishReason finalReason = LocalFinishReason.None;
            brain.TokenDecoded += (id, delta) => deltas.Add(delta);
            brain.Finished += (text, reason) => { finalText = text; finalReason = reason; };

            brain.Begin("<|user|>Hi!<|end|><|assistant|>", 32, SamplingSettings.Greedy);
            int frames = 0;
            while (brain.State != BrainState.Finished && frames < 1000) { brain.Tick(); frames++; }

            Assert.AreEqual("Hello there!", finalText);
            Assert.AreEqual(LocalFinishReason.Eos, finalReason);
            Assert.AreEqual("Hello there!", string.Concat(deltas));
            int prompt = tok.Encode("<|user|>Hi!<|end|><|assistant|>").Count + 1; // + <s>
            Assert.AreEqual(prompt, inputLengthsSeen[0], "prefill feeds the whole prompt once");
            Assert.IsTrue(inputLengthsSeen.Skip(1).All(n => n == 1), "decode feeds one token per pass");
            CollectionAssert.AreEqual(Enumerable.Range(0, script.Length).Select(i => i == 0 ? 0 : prompt + i - 1).ToArray(), pastLengthsSeen);
            // Each readback answers "not done" on two polls, so every token spans at least two more frames.
            Assert.IsTrue(frames >= 2 * script.Length, "each readback waited for later frames (" + frames + " frames)");
            Assert.AreEqual(prompt + script.Length - 1, brain.ContextTokens);
        }

        [Test]
        public void ATinyBudgetSpreadsOnePassOverSeveralFrames()
        {
            var brain = Brain(new[] { 2 }, 8, 1e-6);
            brain.Begin("Hi", 4, SamplingSettings.Greedy);
            int frames = 0;
            while (brain.State == BrainState.Idle || brain.State == BrainState.Scheduling) { brain.Tick(); frames++; }
            // 8 layers, one per frame, plus the enumerator's closing MoveNext() (it returns false after the last layer).
            Assert.AreEqual(9, frames, "one layer per frame when a layer exceeds the budget");
            Assert.AreEqual(1, brain.ForwardPasses);
        }

        [Test]
        public void SecondTurnReusesTheCache()
        {
            var brain = Brain(new[] { 300, 2, 301, 2 }, 2, 1000.0);
            brain.Begin("Hi", 8, SamplingSettings.Greedy);
            while (brain.State != BrainState.Finished) brain.Tick();
            int afterFirst = brain.ContextTokens;
            pastLengthsSeen.Clear();
            brain.Begin("Again", 8, SamplingSettings.Greedy);
            while (brain.State != BrainState.Finished) brain.Tick();
            Assert.AreEqual(afterFirst, pastLengthsSeen[0], "the second turn starts from the first turn's cache");
        }

        [Test]
        public void MaxTokensEndsTheTurn()
        {
            var brain = Brain(new[] { 300, 301, 302, 303 }, 2, 1000.0);
            LocalFinishReason reason = LocalFinishReason.None;
            brain.Finished += (t, r) => reason = r;
            brain.Begin("Hi", 2, SamplingSettings.Greedy);
            while (brain.State != BrainState.Finished) brain.Tick();
            Assert.AreEqual(LocalFinishReason.Length, reason);
        }

        [Test]
        public void ASpecialStopTokenEndsTheTurnWithoutText()
        {
            var brain = Brain(new[] { 300, 6, 301 }, 2, 1000.0); // 6 = <|end|>
            string text = null;
            LocalFinishReason reason = LocalFinishReason.None;
            brain.Finished += (t, r) => { text = t; reason = r; };
            brain.Begin("Hi", 8, SamplingSettings.Greedy, new[] { "<|end|>" });
            while (brain.State != BrainState.Finished) brain.Tick();
            Assert.AreEqual(LocalFinishReason.Stop, reason);
            Assert.IsFalse(text.Contains("<|end|>"), "the stop token is not part of the line: " + text);
            Assert.AreEqual(2, brain.ForwardPasses);
        }

        [Test]
        public void BeginWhileBusyIsRefused()
        {
            var brain = Brain(new[] { 300, 2 }, 2, 1000.0);
            brain.Begin("Hi", 8, SamplingSettings.Greedy);
            Assert.Throws<InvalidOperationException>(() => brain.Begin("again", 8, SamplingSettings.Greedy));
            brain.Cancel();
            Assert.AreEqual(LocalFinishReason.Cancelled, brain.FinishReason);
            brain.Begin("again", 8, SamplingSettings.Greedy);
        }

        [Test]
        public void OrtPackagesAreRefused()
        {
            var ort = ModelManifest.Parse(ManifestTests.DialogueManifest.Replace("\"portable\"", "\"ort\""));
            Assert.Throws<NotSupportedException>(() => new SentisNpcBrain(ort, tokenizerJson, new Model(), BackendType.CPU, 2.0));
        }

        [Test]
        public void PolicyBrainReadsBackWithoutBlocking()
        {
            var policyManifest = ModelManifest.Parse(@"{""format_version"": 1, ""kind"": ""policy"", ""name"": ""p"", ""target"": ""portable"", ""precision"": ""fp32"", ""opset"": 15,
                ""files"": {""model.onnx"": ""0000000000000000000000000000000000000000000000000000000000000000"", ""policy.json"": ""0000000000000000000000000000000000000000000000000000000000000001""},
                ""inputs"": [{""name"": ""observations""}], ""outputs"": [{""name"": ""action_logits""}, {""name"": ""confidence""}],
                ""policy"": {""num_features"": 2, ""num_actions"": 3}}");
            var model = new Model();
            model.inputs.Add(new Model.Input { name = "observations", dataType = DataType.Float });
            model.TestCompute = inputs =>
            {
                var x = ((Tensor<float>)inputs["observations"]).DownloadToArray();
                var logits = new Tensor<float>(new TensorShape(1, 3), new[] { 0f, x[0] > 0 ? 5f : -5f, 1f }) { TestReadbackPolls = 1 };
                return new Dictionary<string, Tensor> { { "action_logits", logits }, { "confidence", new Tensor<float>(new TensorShape(1), new[] { 0.875f }) } };
            };
            var brain = new SentisPolicyBrain(policyManifest, @"{""features"": [""threat"", ""health""], ""actions"": [""idle"", ""flee"", ""talk""]}", model, BackendType.CPU);
            brain.Request(new Dictionary<string, double> { { "threat", 1.0 } });
            PolicyDecision decision;
            Assert.IsFalse(brain.TryGetDecision(out decision), "first poll: readback not done yet");
            Assert.IsTrue(brain.TryGetDecision(out decision));
            Assert.AreEqual("flee", decision.action);
            Assert.AreEqual(0.875f, decision.confidence);
            Assert.IsFalse(brain.Pending);
        }
    }
}
