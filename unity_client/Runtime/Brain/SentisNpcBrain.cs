using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using NpcRuntime.Unity.Decoding;
using NpcRuntime.Unity.Package;
using NpcRuntime.Unity.Tokenization;
using Unity.InferenceEngine;

namespace NpcRuntime.Unity.Brain
{
    /// <summary>Why a local generation ended (mirrors npc.v1.FinishReason).</summary>
    public enum LocalFinishReason { None, Length, Stop, Eos, Cancelled, ContextFull }

    public enum BrainState { Idle, Scheduling, AwaitingReadback, Finished }

    /// <summary>
    /// On-device dialogue decoding with Unity Inference Engine 2.x, frame-sliced.
    ///
    /// One forward pass = one <c>Worker.ScheduleIterable()</c> enumeration; each <c>MoveNext()</c> schedules one
    /// layer, and <see cref="Tick"/> stops calling it when the frame's millisecond budget is spent
    /// (docs: "Split inference over multiple frames", com.unity.ai.inference manual). After the last layer the
    /// <c>present.{i}.key|value</c> outputs are copied with <c>Worker.CopyOutput(string, ref Tensor)</c> into
    /// tensors the brain owns (PeekOutput references die at the next schedule) and fed back as
    /// <c>past_key_values.{i}.*</c>; the logits are read back without blocking: <c>Tensor.ReadbackRequest()</c>,
    /// then <c>IsReadbackRequestDone()</c> polled on later ticks, then <c>Tensor&lt;float&gt;.DownloadToArray()</c>,
    /// which no longer waits (Tensor.cs of the package: "Schedules an asynchronous download ...").
    /// int64 ONNX inputs (input_ids, attention_mask, position_ids) are int tensors in Inference Engine, so they
    /// are fed as <c>Tensor&lt;int&gt;</c>.
    /// API checked against: the Worker.cs, Tensor.cs and TensorT.cs sources (Sentis 2.1; the same public API
    /// moved to Unity.InferenceEngine with [MovedFrom("Unity.Sentis")] in com.unity.ai.inference 2.x), the
    /// manual pages split-inference-over-multiple-frames.html and read-output-async.html, and
    /// api/Unity.InferenceEngine.ModelLoader.html (Load(ModelAsset) / Load(string) / Load(Stream)).
    /// </summary>
    public sealed class SentisNpcBrain : IDisposable
    {
        public event Action<int, string> TokenDecoded;              // (token id, text delta)
        public event Action<string, LocalFinishReason> Finished;     // (full text of the turn, reason)

        private readonly ModelManifest manifest;
        private readonly ByteLevelBpeTokenizer tokenizer;
        private readonly Worker worker;
        private readonly KvCacheBook kv;
        private readonly FrameBudgetSlicer slicer;
        private readonly StepCostEstimator layerCost = new StepCostEstimator(0.25);
        private readonly bool hasPositionIds;
        private readonly Tensor[] past;              // index = 2 * layer + (key ? 0 : 1)
        private readonly List<Tensor> stepInputs = new List<Tensor>();
        private readonly List<int> history = new List<int>();

        private TokenSampler sampler;
        private List<int> pendingInput = new List<int>();
        private IEnumerator schedule;
        private Tensor<float> logits;
        private int stepTokens;
        private int generated;
        private int maxNewTokens;
        private IList<string> stopSequences;
        private Utf8StreamDecoder utf8;
        private System.Text.StringBuilder turnText;

        public BrainState State { get; private set; }
        /// <summary>True while a turn has work left (input to feed, a pass scheduled, or logits to read back).</summary>
        public bool IsBusy { get { return State == BrainState.Scheduling || State == BrainState.AwaitingReadback || pendingInput.Count > 0; } }
        public LocalFinishReason FinishReason { get; private set; }
        public int ContextTokens { get { return kv.PastLength; } }
        public int ForwardPasses { get; private set; }
        public ByteLevelBpeTokenizer Tokenizer { get { return tokenizer; } }
        public double FrameBudgetMs { get { return slicer.BudgetMs; } set { slicer.BudgetMs = value; } }

        public SentisNpcBrain(NpcModelPackage package, BackendType backend = BackendType.CPU, double frameBudgetMs = 2.0)
            : this(package.ParseManifest(), RequireText(package.tokenizer, "tokenizer.json", package.name), ModelLoader.Load(package.model), backend, frameBudgetMs)
        {
        }

        public SentisNpcBrain(ModelManifest manifest, string tokenizerJson, Model model, BackendType backend, double frameBudgetMs)
        {
            manifest.RequirePortable("causal-lm");
            this.manifest = manifest;
            tokenizer = ByteLevelBpeTokenizer.FromJson(tokenizerJson);
            kv = new KvCacheBook(manifest.NumLayers, manifest.NumKvHeads, manifest.HeadDim, Math.Min(manifest.KvCapacity, manifest.ContextLength));
            hasPositionIds = manifest.HasInput("position_ids");
            slicer = new FrameBudgetSlicer(frameBudgetMs);
            worker = new Worker(model, backend);
            past = new Tensor[2 * kv.NumLayers];
            ResetCache();
            State = BrainState.Idle;
        }

        /// <summary>Starts a turn: `text` is appended to the conversation (the KV cache keeps earlier turns).</summary>
        public void Begin(string text, int maxNewTokens, SamplingSettings sampling, IList<string> stop = null)
        {
            if (IsBusy) throw new InvalidOperationException("a turn is still running; call Cancel() first");
            if (maxNewTokens <= 0) throw new ArgumentOutOfRangeException("maxNewTokens", "must be positive");
            var ids = tokenizer.Encode(text);
            if (kv.PastLength == 0 && manifest.BosId >= 0 && (ids.Count == 0 || ids[0] != manifest.BosId)) ids.Insert(0, manifest.BosId);
            if (ids.Count == 0) throw new ArgumentException("the input encodes to no tokens", "text");
            kv.CheckFits(ids.Count);
            pendingInput = ids;
            history.AddRange(ids);
            sampler = new TokenSampler(sampling);
            this.maxNewTokens = maxNewTokens;
            stopSequences = stop ?? new string[0];
            generated = 0;
            utf8 = new Utf8StreamDecoder();
            turnText = new System.Text.StringBuilder();
            FinishReason = LocalFinishReason.None;
            State = BrainState.Idle;
        }

        /// <summary>Forgets the conversation (empties the KV cache).</summary>
        public void ResetConversation()
        {
            Cancel();
            history.Clear();
            ResetCache();
            State = BrainState.Idle;
        }

        public void Cancel()
        {
            if (IsBusy)
            {
                // An interrupted pass leaves the cache as it was: its presents were never copied back.
                schedule = null;
                logits = null;
                pendingInput.Clear();
                Finish(LocalFinishReason.Cancelled);
            }
        }

        /// <summary>
        /// Advances the turn within this frame's budget: schedules layers while they fit, polls the logits
        /// readback, samples, and starts the next pass. Call once per frame (NpcAgent does, from Update).
        /// Returns the number of tokens decoded during this call.
        /// </summary>
        public int Tick()
        {
            slicer.BeginFrame();
            int decoded = 0;
            while (true)
            {
                if (State == BrainState.Idle)
                {
                    if (pendingInput.Count == 0 || !slicer.CanRun(layerCost.EstimateMs)) return decoded;
                    StartPass();
                }
                if (State == BrainState.Scheduling)
                {
                    if (!RunLayers()) return decoded; // budget spent mid-pass: continue next frame
                    FinishPass();
                }
                if (State == BrainState.AwaitingReadback)
                {
                    if (!logits.IsReadbackRequestDone()) return decoded; // poll again next frame, never block
                    if (ConsumeLogits()) decoded++;
                    if (State == BrainState.Finished) return decoded;
                }
                if (State == BrainState.Finished) return decoded;
            }
        }

        private void StartPass()
        {
            stepTokens = pendingInput.Count;
            DisposeStepInputs();
            var ids = pendingInput.ToArray();
            SetInput("input_ids", new Tensor<int>(new TensorShape(1, stepTokens), ids));
            var mask = kv.AttentionMask(stepTokens);
            SetInput("attention_mask", new Tensor<int>(new TensorShape(1, mask.Length), mask));
            if (hasPositionIds) SetInput("position_ids", new Tensor<int>(new TensorShape(1, stepTokens), kv.PositionIds(stepTokens)));
            for (int layer = 0; layer < kv.NumLayers; layer++)
            {
                worker.SetInput(KvCacheBook.PastName(layer, true), past[2 * layer]);
                worker.SetInput(KvCacheBook.PastName(layer, false), past[2 * layer + 1]);
            }
            pendingInput = new List<int>();
            schedule = worker.ScheduleIterable();
            State = BrainState.Scheduling;
        }

        private void SetInput(string name, Tensor tensor)
        {
            stepInputs.Add(tensor);
            worker.SetInput(name, tensor);
        }

        /// <summary>Schedules layers while the budget allows; true when the pass is fully scheduled.</summary>
        private bool RunLayers()
        {
            var watch = new Stopwatch();
            while (slicer.CanRun(layerCost.EstimateMs))
            {
                watch.Reset();
                watch.Start();
                bool more = schedule.MoveNext();
                watch.Stop();
                double ms = watch.Elapsed.TotalMilliseconds;
                slicer.Record(ms);
                layerCost.Add(ms);
                if (!more) return true;
            }
            return false;
        }

        private void FinishPass()
        {
            schedule = null;
            ForwardPasses++;
            // present.* -> owned tensors that become the next past_key_values.* (PeekOutput dies at next schedule).
            for (int layer = 0; layer < kv.NumLayers; layer++)
            {
                CopyPresent(layer, true);
                CopyPresent(layer, false);
            }
            kv.Commit(stepTokens);
            logits = worker.PeekOutput("logits") as Tensor<float>;
            if (logits == null) throw new InvalidOperationException("the model has no float 'logits' output");
            logits.ReadbackRequest();
            State = BrainState.AwaitingReadback;
        }

        private void CopyPresent(int layer, bool key)
        {
            int slot = 2 * layer + (key ? 0 : 1);
            Tensor next = null;
            worker.CopyOutput(KvCacheBook.PresentName(layer, key), ref next);
            past[slot].Dispose();
            past[slot] = next;
        }

        /// <summary>Samples from the last position's logits; true when a token was produced.</summary>
        private bool ConsumeLogits()
        {
            float[] data = logits.DownloadToArray(); // readback is done: no wait
            logits = null;
            int vocab = manifest.VocabSize;
            int lastRow = data.Length / vocab - 1;     // logits: [1, sequence, vocab]
            int token = sampler.Sample(data, lastRow * vocab, vocab, history);
            history.Add(token);
            generated++;

            if (manifest.EosIds.Contains(token)) { Finish(LocalFinishReason.Eos); return true; }
            if (tokenizer.IsSpecial(token))
            {
                // A special token (e.g. <|end|> closing an assistant turn) is never text; it can be a stop sequence.
                string content = System.Text.Encoding.UTF8.GetString(tokenizer.TokenBytes(token));
                foreach (var stop in stopSequences) if (stop == content) { Finish(LocalFinishReason.Stop); return true; }
            }
            string delta = tokenizer.IsSpecial(token) ? "" : utf8.Push(tokenizer.TokenBytes(token));
            turnText.Append(delta);
            if (TokenDecoded != null) TokenDecoded(token, delta);

            foreach (var stop in stopSequences)
            {
                if (stop.Length > 0 && turnText.ToString().EndsWith(stop, StringComparison.Ordinal))
                {
                    turnText.Length -= stop.Length;
                    Finish(LocalFinishReason.Stop);
                    return true;
                }
            }
            if (generated >= maxNewTokens) { Finish(LocalFinishReason.Length); return true; }
            if (kv.Remaining < 1) { Finish(LocalFinishReason.ContextFull); return true; }
            pendingInput = new List<int> { token };
            State = BrainState.Idle;
            return true;
        }

        private void Finish(LocalFinishReason reason)
        {
            if (utf8 != null) turnText.Append(utf8.Flush());
            FinishReason = reason;
            State = BrainState.Finished;
            if (Finished != null) Finished(turnText == null ? "" : turnText.ToString(), reason);
        }

        private void ResetCache()
        {
            kv.Reset();
            var shape = kv.PastShape(); // [1, kv_heads, 0, head_dim]: an empty past for the first pass
            for (int i = 0; i < past.Length; i++)
            {
                if (past[i] != null) past[i].Dispose();
                past[i] = new Tensor<float>(new TensorShape(shape[0], shape[1], shape[2], shape[3]));
            }
        }

        private void DisposeStepInputs()
        {
            foreach (var t in stepInputs) t.Dispose();
            stepInputs.Clear();
        }

        private static string RequireText(UnityEngine.TextAsset asset, string file, string package)
        {
            if (asset == null) throw new InvalidOperationException("NpcModelPackage '" + package + "' has no " + file + " assigned");
            return asset.text;
        }

        public void Dispose()
        {
            DisposeStepInputs();
            foreach (var t in past) if (t != null) t.Dispose();
            worker.Dispose();
        }
    }
}
