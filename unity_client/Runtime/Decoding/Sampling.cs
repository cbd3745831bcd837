using System;
using System.Collections.Generic;

namespace NpcRuntime.Unity.Decoding
{
    /// <summary>Sampling settings, with the same meaning and zero-value defaults as npc.v1.SamplingParams.</summary>
    [Serializable]
    public struct SamplingSettings
    {
        /// <summary>Softmax temperature; 0 = greedy (argmax).</summary>
        public float temperature;
        /// <summary>Keep only the k most likely tokens; 0 = disabled.</summary>
        public int topK;
        /// <summary>Nucleus: keep the smallest set with cumulative probability >= topP; 0 or 1 = disabled.</summary>
        public float topP;
        /// <summary>> 1 discourages tokens already produced; 0 or 1 = disabled.</summary>
        public float repetitionPenalty;
        /// <summary>RNG seed: same seed and inputs, same output.</summary>
        public ulong seed;

        public static SamplingSettings Greedy { get { return new SamplingSettings(); } }
    }

    /// <summary>SplitMix64: tiny, fast, and the same sequence on every platform and Mono/IL2CPP.</summary>
    public sealed class SeededRandom
    {
        private ulong state;
        public SeededRandom(ulong seed) { state = seed; }

        public ulong NextUInt64()
        {
            ulong z = (state += 0x9E3779B97F4A7C15UL);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
        public double NextDouble() { return (NextUInt64() >> 11) * (1.0 / (1UL << 53)); }
    }

    /// <summary>Picks the next token from a row of logits: greedy, temperature, top-k, top-p, repetition penalty.</summary>
    public sealed class TokenSampler
    {
        private readonly SamplingSettings settings;
        private readonly SeededRandom random;

        public TokenSampler(SamplingSettings settings)
        {
            if (settings.temperature < 0f || settings.temperature > 5f) throw new ArgumentOutOfRangeException("settings", "temperature must be in [0, 5], got " + settings.temperature);
            if (settings.topK < 0) throw new ArgumentOutOfRangeException("settings", "topK must be >= 0, got " + settings.topK);
            if (settings.topP < 0f || settings.topP > 1f) throw new ArgumentOutOfRangeException("settings", "topP must be in [0, 1], got " + settings.topP);
            this.settings = settings;
            random = new SeededRandom(settings.seed);
        }

        /// <summary>Index of the largest logit; the lowest index wins ties.</summary>
        public static int ArgMax(float[] logits, int offset, int count)
        {
            int best = 0;
            float bestValue = float.NegativeInfinity;
            for (int i = 0; i < count; i++)
                if (logits[offset + i] > bestValue) { bestValue = logits[offset + i]; best = i; }
            return best;
        }

        /// <summary>Samples from logits[offset .. offset + vocab); `history` feeds the repetition penalty.</summary>
        public int Sample(float[] logits, int offset, int vocab, IList<int> history)
        {
            var scores = new float[vocab];
            Array.Copy(logits, offset, scores, 0, vocab);
            float penalty = settings.repetitionPenalty;
            if (penalty > 0f && penalty != 1f && history != null)
            {
                var seen = new HashSet<int>(history);
                foreach (int id in seen)
                    if (id >= 0 && id < vocab) scores[id] = scores[id] > 0 ? scores[id] / penalty : scores[id] * penalty;
            }
            if (settings.temperature <= 0f) return ArgMax(scores, 0, vocab);

            // Candidates sorted by score, descending; ties by id for determinism.
            var order = new int[vocab];
            for (int i = 0; i < vocab; i++) order[i] = i;
            Array.Sort(order, (a, b) => scores[a] != scores[b] ? scores[b].CompareTo(scores[a]) : a.CompareTo(b));
            int keep = settings.topK > 0 ? Math.Min(settings.topK, vocab) : vocab;

            var probs = new double[keep];
            double max = scores[order[0]] / settings.temperature, sum = 0;
            for (int i = 0; i < keep; i++) { probs[i] = Math.Exp(scores[order[i]] / settings.temperature - max); sum += probs[i]; }
            for (int i = 0; i < keep; i++) probs[i] /= sum;

            if (settings.topP > 0f && settings.topP < 1f)
            {
                double cumulative = 0;
                int nucleus = keep;
                for (int i = 0; i < keep; i++) { cumulative += probs[i]; if (cumulative >= settings.topP) { nucleus = i + 1; break; } }
                keep = nucleus;
                sum = 0;
                for (int i = 0; i < keep; i++) sum += probs[i];
                for (int i = 0; i < keep; i++) probs[i] /= sum;
            }

            double draw = random.NextDouble(), acc = 0;
            for (int i = 0; i < keep; i++) { acc += probs[i]; if (draw < acc) return order[i]; }
            return order[keep - 1];
        }
    }
}
