using System;
using System.Collections.Generic;
using System.Linq;
using NpcRuntime.Unity.Decoding;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    [TestFixture]
    public sealed class FrameBudgetSlicerTests
    {
        [Test]
        public void TracesMatchTheSharedVectors()
        {
            var vectors = TestVectors.Load("budget_vectors.json");
            foreach (Dictionary<string, object> c in (List<object>)vectors["cases"])
            {
                var costs = ((List<object>)c["costs_ms"]).Select(v => (double)v).ToList();
                var frames = FrameBudgetSlicer.Plan(costs, (double)c["budget_ms"]);
                var expected = (List<object>)c["frames"];
                Assert.AreEqual(expected.Count, frames.Count, (string)c["name"] + ": frame count");
                for (int f = 0; f < frames.Count; f++)
                    CollectionAssert.AreEqual(TestVectors.Ints(expected[f]), frames[f], (string)c["name"] + ": frame " + f);
            }
        }

        [Test]
        public void FirstStepAlwaysRunsThenBudgetBinds()
        {
            var slicer = new FrameBudgetSlicer(1.0);
            slicer.BeginFrame();
            Assert.IsTrue(slicer.CanRun(5.0));
            slicer.Record(5.0);
            Assert.IsFalse(slicer.CanRun(0.1));
            slicer.BeginFrame();
            Assert.IsTrue(slicer.CanRun(0.5));
            slicer.Record(0.5);
            Assert.IsTrue(slicer.CanRun(0.5));
            Assert.AreEqual(1, slicer.StepsThisFrame);
        }

        [Test]
        public void RejectsNonPositiveBudgets()
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new FrameBudgetSlicer(0));
            Assert.Throws<ArgumentOutOfRangeException>(() => new FrameBudgetSlicer(double.NaN));
        }

        [Test]
        public void EstimatorIsTheRunningMean()
        {
            var e = new StepCostEstimator(0.25);
            Assert.AreEqual(0.25, e.EstimateMs, 1e-12);
            e.Add(1.0); e.Add(2.0);
            Assert.AreEqual(1.5, e.EstimateMs, 1e-12);
        }
    }

    [TestFixture]
    public sealed class KvCacheBookTests
    {
        [Test]
        public void PrefillThenDecodeBookkeeping()
        {
            var kv = new KvCacheBook(2, 4, 8, 16);
            CollectionAssert.AreEqual(new[] { 1, 4, 0, 8 }, kv.PastShape());
            CollectionAssert.AreEqual(new[] { 1, 1, 1 }, kv.AttentionMask(3));
            CollectionAssert.AreEqual(new[] { 0, 1, 2 }, kv.PositionIds(3));
            kv.Commit(3);
            CollectionAssert.AreEqual(new[] { 1, 4, 3, 8 }, kv.PastShape());
            Assert.AreEqual(4, kv.AttentionMask(1).Length);
            CollectionAssert.AreEqual(new[] { 3 }, kv.PositionIds(1));
            kv.Commit(1);
            Assert.AreEqual(12, kv.Remaining);
        }

        [Test]
        public void FeedbackPairsMapPresentToPast()
        {
            var pairs = new KvCacheBook(2, 1, 1, 4).FeedbackPairs().ToList();
            Assert.AreEqual(4, pairs.Count);
            Assert.AreEqual("past_key_values.0.key", pairs[0].Key);
            Assert.AreEqual("present.0.key", pairs[0].Value);
            Assert.AreEqual("past_key_values.1.value", pairs[3].Key);
            Assert.AreEqual("present.1.value", pairs[3].Value);
        }

        [Test]
        public void ContextFullIsAClearError()
        {
            var kv = new KvCacheBook(1, 1, 1, 4);
            kv.Commit(3);
            var error = Assert.Throws<InvalidOperationException>(() => kv.Commit(2));
            StringAssert.Contains("capacity of 4", error.Message);
        }
    }
}
