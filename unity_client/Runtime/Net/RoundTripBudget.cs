using System;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// A frame budget is a round-trip budget: the game has `budget_ms` for the whole Tick, from sending it to
    /// reading the answer, while the server's `TickEntry.budget_ms` counts from when the server receives the call.
    /// This keeps a running estimate of the part the server cannot see (this client's encode/decode and the
    /// network: round trip − <c>TickResponse.tick_ms</c>, mean + 2 deviations, so most ticks fit) and takes it off
    /// each entry's budget before sending. Measured on a 2-core machine: with a Python client that part was
    /// 0.3–0.6 ms, enough to put most budgeted ticks past budget + 0.5 ms (docs/performance.md, "Served paths").
    /// Entries with budget 0 (the server's default) are left alone.
    /// </summary>
    public sealed class RoundTripBudget
    {
        /// <summary>The smallest budget sent: a budget eaten by the transport still asks for a minimal tick
        /// (the server's starvation guard then decides), never for the server default that 0 would mean.</summary>
        public const float MinServerBudgetMs = 0.05f;
        /// <summary>Weight of the newest observation in the running mean and deviation.</summary>
        public const double Weight = 0.1;

        private double mean, deviation;
        private bool seeded;

        /// <summary>Milliseconds taken off every budget: 0 until the first answer is observed.</summary>
        public float AllowanceMs { get { return seeded ? (float)(mean + 2.0 * deviation) : 0f; } }

        /// <summary>One Tick's round trip and the server's own time for it (TickResponse.tick_ms), milliseconds.</summary>
        public void Observe(double roundTripMs, double serverMs)
        {
            if (double.IsNaN(roundTripMs) || double.IsNaN(serverMs) || roundTripMs < 0) return;
            double outside = Math.Max(0.0, roundTripMs - Math.Max(0.0, serverMs));
            if (!seeded) { mean = outside; deviation = 0; seeded = true; return; }
            double delta = outside - mean;
            mean += Weight * delta;
            deviation += Weight * (Math.Abs(delta) - deviation);
        }

        /// <summary>The budget to send for a frame budget (0 stays 0: the server's default).</summary>
        public float ServerBudgetMs(float frameBudgetMs)
        {
            if (frameBudgetMs <= 0f) return frameBudgetMs;
            return Math.Max(MinServerBudgetMs, frameBudgetMs - AllowanceMs);
        }
    }
}
