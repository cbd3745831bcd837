using System;
using System.Collections.Generic;

namespace NpcRuntime.Unity.Decoding
{
    /// <summary>
    /// Decides, step by step, whether the next unit of work (one ScheduleIterable layer, or one token)
    /// still fits in this frame's millisecond budget. The rule, shared with the Unreal client and checked
    /// against clients_test/vectors/budget_vectors.json:
    ///   a step runs in the current frame when it is the frame's first step (progress is guaranteed) or
    ///   when spent + estimated cost &lt;= budget (+1e-9); otherwise the frame ends and the step runs first
    ///   in the next frame.
    /// The estimate of a step's cost is supplied by the caller (the brain uses a running mean of measured
    /// layer times); traces use the true costs.
    /// </summary>
    public sealed class FrameBudgetSlicer
    {
        private const double Epsilon = 1e-9;
        private double budgetMs;

        public FrameBudgetSlicer(double budgetMs) { BudgetMs = budgetMs; }

        public double BudgetMs
        {
            get { return budgetMs; }
            set
            {
                if (!(value > 0) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException("value", "budget must be a positive number of milliseconds, got " + value);
                budgetMs = value;
            }
        }

        public double SpentMs { get; private set; }
        public int StepsThisFrame { get; private set; }

        public void BeginFrame() { SpentMs = 0; StepsThisFrame = 0; }

        public bool CanRun(double estimatedCostMs)
        {
            return StepsThisFrame == 0 || SpentMs + Math.Max(0, estimatedCostMs) <= budgetMs + Epsilon;
        }

        public void Record(double actualCostMs)
        {
            SpentMs += Math.Max(0, actualCostMs);
            StepsThisFrame++;
        }

        /// <summary>Which step indices run in which frame, for known per-step costs.</summary>
        public static List<List<int>> Plan(IList<double> costsMs, double budgetMs)
        {
            var slicer = new FrameBudgetSlicer(budgetMs);
            var frames = new List<List<int>>();
            var current = new List<int>();
            slicer.BeginFrame();
            for (int step = 0; step < costsMs.Count; step++)
            {
                if (!slicer.CanRun(costsMs[step]))
                {
                    frames.Add(current);
                    current = new List<int>();
                    slicer.BeginFrame();
                }
                slicer.Record(costsMs[step]);
                current.Add(step);
            }
            if (current.Count > 0) frames.Add(current);
            return frames;
        }
    }

    /// <summary>Running mean of measured step costs: the estimate the slicer checks before each step.</summary>
    public sealed class StepCostEstimator
    {
        private double total;
        private int samples;
        private readonly double initialMs;

        public StepCostEstimator(double initialMs) { this.initialMs = initialMs; }
        public double EstimateMs { get { return samples == 0 ? initialMs : total / samples; } }
        public void Add(double measuredMs) { total += measuredMs; samples++; }
    }
}
