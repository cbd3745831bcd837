using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// Collects every NPC's TickEntry during a frame and sends them as ONE NpcRuntime.Tick call at the end of
    /// the frame (NpcConnection calls Flush from LateUpdate), as the contract asks: "one call per game frame
    /// for every NPC the client cares about". Results are routed back by position (the server answers in
    /// request order). While a tick is in flight, new entries wait for the next flush instead of piling up
    /// calls. Two entries for one session in a frame are merged (largest budget and token limit).
    /// Fleet (docs/deploy.md): a Tick of several NPCs carries no routing key, so behind a proxy set
    /// <see cref="OneTickPerNpc"/>: the frame's entries go as one Tick per NPC, in parallel, each routed by its NPC.
    /// </summary>
    public sealed class TickBatcher
    {
        private sealed class Pending
        {
            public TickEntry Entry;
            public TaskCompletionSource<TickResult> Completion;
        }

        private readonly Func<TickRequest, Task<TickResponse>> send;
        private readonly Func<string, string> npcOfSession;   // null: every entry in one Tick
        private List<Pending> queued = new List<Pending>();
        private readonly Dictionary<string, Pending> bySession = new Dictionary<string, Pending>();

        /// <summary>Largest entries per request (HandshakeResponse.max_tick_entries); 0 = unlimited.</summary>
        public int MaxEntriesPerTick { get; set; }
        public bool InFlight { get; private set; }
        public int QueuedCount { get { return queued.Count; } }
        public int RequestsSent { get; private set; }
        /// <summary>Fleet: one Tick per NPC per frame (sent in parallel), each with that NPC's routing key, so the
        /// proxy sends it to the replica holding the NPC's session. Needs the session → NPC map (the client's).</summary>
        public bool OneTickPerNpc { get; set; }
        /// <summary>Budgets are round-trip budgets (default): each entry's budget_ms is sent minus this client's
        /// measured transport time, so the answer is back within the frame's budget. Null: sent as given.</summary>
        public RoundTripBudget RoundTrip { get; set; }

        /// <summary><paramref name="npcOfSession"/>: a session's NPC ("" unknown), for <see cref="OneTickPerNpc"/>.</summary>
        public TickBatcher(Func<TickRequest, Task<TickResponse>> send, Func<string, string> npcOfSession = null)
        {
            if (send == null) throw new ArgumentNullException("send");
            this.send = send;
            this.npcOfSession = npcOfSession;
            RoundTrip = new RoundTripBudget();
        }

        public TickBatcher(NpcRuntimeClient client) : this(request => client.TickAsync(request), client.Routing.NpcOf) { }

        /// <summary>Queues an entry for this frame's tick; the task completes with this session's result.</summary>
        public Task<TickResult> Enqueue(TickEntry entry)
        {
            if (entry == null) throw new ArgumentNullException("entry");
            if (string.IsNullOrEmpty(entry.SessionId)) throw new ArgumentException("TickEntry.session_id is empty", "entry");
            Pending existing;
            if (bySession.TryGetValue(entry.SessionId, out existing))
            {
                Merge(existing.Entry, entry);
                return existing.Completion.Task;
            }
            var pending = new Pending { Entry = entry.Clone(), Completion = new TaskCompletionSource<TickResult>() };
            queued.Add(pending);
            bySession[entry.SessionId] = pending;
            return pending.Completion.Task;
        }

        private static void Merge(TickEntry into, TickEntry extra)
        {
            if (extra.NewInput.Length > 0)
            {
                if (into.NewInput.Length > 0)
                    throw new InvalidOperationException("session " + into.SessionId + " already has a new_input queued this frame; send the next line in a later frame");
                into.NewInput = extra.NewInput;
                if (extra.Constraint != null) into.Constraint = extra.Constraint.Clone();
            }
            into.BudgetMs = Math.Max(into.BudgetMs, extra.BudgetMs);
            into.MaxTokens = into.MaxTokens == 0 || extra.MaxTokens == 0 ? 0 : Math.Max(into.MaxTokens, extra.MaxTokens);
        }

        /// <summary>Sends the frame's entries (one request, or several of MaxEntriesPerTick). No-op when empty or in flight.</summary>
        public async Task Flush()
        {
            if (InFlight || queued.Count == 0) return;
            var batch = queued;
            queued = new List<Pending>();
            bySession.Clear();
            InFlight = true;
            try
            {
                if (!OneTickPerNpc || npcOfSession == null) { await SendGroup(batch); return; }
                var groups = new List<List<Pending>>();
                var byNpc = new Dictionary<string, List<Pending>>();
                foreach (var p in batch)
                {
                    string npcId = npcOfSession(p.Entry.SessionId) ?? "";
                    List<Pending> group;
                    if (!byNpc.TryGetValue(npcId, out group)) { group = new List<Pending>(); byNpc[npcId] = group; groups.Add(group); }
                    group.Add(p);
                }
                var sends = new List<Task>();
                foreach (var group in groups) sends.Add(SendGroup(group));
                await Task.WhenAll(sends);
            }
            finally
            {
                InFlight = false;
            }
        }

        private async Task SendGroup(List<Pending> batch)
        {
            int chunk = MaxEntriesPerTick > 0 ? MaxEntriesPerTick : batch.Count;
            for (int start = 0; start < batch.Count; start += chunk)
                await SendChunk(batch.GetRange(start, Math.Min(chunk, batch.Count - start)));
        }

        private async Task SendChunk(List<Pending> chunk)
        {
            var request = new TickRequest();
            var roundTrip = RoundTrip;
            foreach (var p in chunk)
            {
                if (roundTrip != null) p.Entry.BudgetMs = roundTrip.ServerBudgetMs(p.Entry.BudgetMs);   // a clone: the caller's entry is untouched
                request.Entries.Add(p.Entry);
            }
            TickResponse response;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                RequestsSent++;
                response = await send(request);
            }
            catch (Exception error)
            {
                foreach (var p in chunk) p.Completion.TrySetException(error);
                return;
            }
            if (roundTrip != null) roundTrip.Observe(clock.Elapsed.TotalMilliseconds, response.TickMs);
            for (int i = 0; i < chunk.Count; i++)
            {
                if (i < response.Results.Count && response.Results[i].SessionId == chunk[i].Entry.SessionId)
                    chunk[i].Completion.TrySetResult(response.Results[i]);
                else
                    chunk[i].Completion.TrySetException(new InvalidOperationException(
                        "Tick response does not match the request at entry " + i + " (session " + chunk[i].Entry.SessionId + ")"));
            }
        }
    }
}
