using System;
using System.Collections.Generic;

namespace NpcRuntime.Unity.Decoding
{
    /// <summary>
    /// Bookkeeping of a "growing" KV cache (docs/model-package.md): past_key_values.{i}.key|value are
    /// [1, kv_heads, past_len, head_dim]; the graph returns present.{i}.key|value = concat(past, new),
    /// which become the next step's past. attention_mask is [1, past_len + new] of ones; position_ids
    /// (when the graph has it) is [1, new] counting from past_len. No tensors here: pure arithmetic.
    /// </summary>
    public sealed class KvCacheBook
    {
        public int NumLayers { get; private set; }
        public int KvHeads { get; private set; }
        public int HeadDim { get; private set; }
        public int Capacity { get; private set; }
        public int PastLength { get; private set; }

        public KvCacheBook(int numLayers, int kvHeads, int headDim, int capacity)
        {
            if (numLayers <= 0 || kvHeads <= 0 || headDim <= 0 || capacity <= 0)
                throw new ArgumentException("KV cache dimensions must be positive (layers " + numLayers + ", kv_heads " + kvHeads + ", head_dim " + headDim + ", capacity " + capacity + ")");
            NumLayers = numLayers; KvHeads = kvHeads; HeadDim = headDim; Capacity = capacity;
        }

        public static string PastName(int layer, bool key) { return "past_key_values." + layer + (key ? ".key" : ".value"); }
        public static string PresentName(int layer, bool key) { return "present." + layer + (key ? ".key" : ".value"); }

        /// <summary>(past input, present output) name pairs, keys then values per layer.</summary>
        public IEnumerable<KeyValuePair<string, string>> FeedbackPairs()
        {
            for (int layer = 0; layer < NumLayers; layer++)
            {
                yield return new KeyValuePair<string, string>(PastName(layer, true), PresentName(layer, true));
                yield return new KeyValuePair<string, string>(PastName(layer, false), PresentName(layer, false));
            }
        }

        public int Remaining { get { return Capacity - PastLength; } }

        /// <summary>Throws when `newTokens` more positions would not fit in the context.</summary>
        public void CheckFits(int newTokens)
        {
            if (newTokens <= 0) throw new ArgumentOutOfRangeException("newTokens", "a step needs at least one new token");
            if (PastLength + newTokens > Capacity)
                throw new InvalidOperationException("context full: " + PastLength + " cached + " + newTokens + " new tokens exceed the capacity of " + Capacity);
        }

        /// <summary>[1, past_len + new] ones.</summary>
        public int[] AttentionMask(int newTokens)
        {
            CheckFits(newTokens);
            var mask = new int[PastLength + newTokens];
            for (int i = 0; i < mask.Length; i++) mask[i] = 1;
            return mask;
        }

        /// <summary>[1, new]: past_len, past_len + 1, ...</summary>
        public int[] PositionIds(int newTokens)
        {
            CheckFits(newTokens);
            var ids = new int[newTokens];
            for (int i = 0; i < newTokens; i++) ids[i] = PastLength + i;
            return ids;
        }

        /// <summary>Shape of every past tensor for the next step, [1, kv_heads, past_len, head_dim].</summary>
        public int[] PastShape() { return new[] { 1, KvHeads, PastLength, HeadDim }; }

        /// <summary>After a forward pass over `newTokens` tokens: the presents are the new past.</summary>
        public void Commit(int newTokens)
        {
            CheckFits(newTokens);
            PastLength += newTokens;
        }

        public void Reset() { PastLength = 0; }
    }
}
