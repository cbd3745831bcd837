using System;
using System.Collections.Generic;
using NpcRuntime.Unity.Decoding;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    [TestFixture]
    public sealed class SamplingTests
    {
        private static readonly float[] Logits = { 0.1f, 2.0f, 1.9f, -1f, 2.0f };

        [Test]
        public void GreedyTakesTheFirstMaximum()
        {
            var sampler = new TokenSampler(SamplingSettings.Greedy);
            Assert.AreEqual(1, sampler.Sample(Logits, 0, Logits.Length, null));
        }

        [Test]
        public void SampleReadsTheRowAtOffset()
        {
            var rows = new float[] { 9f, 0f, 0f, /* row 1: */ 0f, 0f, 5f };
            Assert.AreEqual(2, new TokenSampler(SamplingSettings.Greedy).Sample(rows, 3, 3, null));
        }

        [Test]
        public void TopKOfOneIsGreedy()
        {
            var sampler = new TokenSampler(new SamplingSettings { temperature = 1.5f, topK = 1, seed = 7 });
            for (int i = 0; i < 20; i++) Assert.AreEqual(1, sampler.Sample(Logits, 0, Logits.Length, null));
        }

        [Test]
        public void SameSeedSameTokens()
        {
            var settings = new SamplingSettings { temperature = 1f, seed = 42 };
            var a = new TokenSampler(settings);
            var b = new TokenSampler(settings);
            for (int i = 0; i < 50; i++) Assert.AreEqual(a.Sample(Logits, 0, 5, null), b.Sample(Logits, 0, 5, null));
        }

        [Test]
        public void TopKKeepsOnlyTheBest()
        {
            var sampler = new TokenSampler(new SamplingSettings { temperature = 5f, topK = 3, seed = 3 });
            var seen = new HashSet<int>();
            for (int i = 0; i < 300; i++) seen.Add(sampler.Sample(Logits, 0, 5, null));
            Assert.IsTrue(seen.SetEquals(new[] { 1, 2, 4 }), "sampled " + string.Join(",", seen));
        }

        [Test]
        public void TinyTopPKeepsTheArgmax()
        {
            var sampler = new TokenSampler(new SamplingSettings { temperature = 1f, topP = 0.01f, seed = 9 });
            for (int i = 0; i < 20; i++) Assert.AreEqual(1, sampler.Sample(Logits, 0, 5, null));
        }

        [Test]
        public void RepetitionPenaltyMovesAwayFromSeenTokens()
        {
            var sampler = new TokenSampler(new SamplingSettings { repetitionPenalty = 2f });
            Assert.AreEqual(2, sampler.Sample(Logits, 0, 5, new List<int> { 1, 4 }));
        }

        [Test]
        public void SplitMix64KnownSequence()
        {
            var rng = new SeededRandom(0);
            Assert.AreEqual(0xE220A8397B1DCDAFUL, rng.NextUInt64());
            Assert.AreEqual(0x6E789E6AA1B965F4UL, rng.NextUInt64());
        }

        [Test]
        public void RejectsOutOfRangeSettings()
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(new SamplingSettings { temperature = 9f }));
            Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(new SamplingSettings { topP = 1.5f }));
        }
    }
}
