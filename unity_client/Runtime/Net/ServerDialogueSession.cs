using System;
using System.Threading.Tasks;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// A dialogue session decoded by the server and advanced by the frame's batched Tick: call Advance()
    /// every frame (it only queues an entry), text arrives through TextReceived as the server decodes it.
    /// </summary>
    public sealed class ServerDialogueSession
    {
        private readonly TickBatcher batcher;
        private string nextInput = "";
        private bool awaiting;

        public string SessionId { get; private set; }
        public float BudgetMs { get; set; }
        public bool Finished { get; private set; }
        public FinishReason LastFinishReason { get; private set; }
        public event Action<string> TextReceived;
        public event Action<FinishReason> TurnFinished;
        public event Action<string> ErrorReceived;

        public ServerDialogueSession(TickBatcher batcher, string sessionId, float budgetMs = 2f)
        {
            this.batcher = batcher;
            SessionId = sessionId;
            BudgetMs = budgetMs;
        }

        public static async Task<ServerDialogueSession> OpenAsync(NpcRuntimeClient client, TickBatcher batcher, OpenSessionRequest request, float budgetMs = 2f)
        {
            var response = await client.OpenSessionAsync(request);
            return new ServerDialogueSession(batcher, response.SessionId, budgetMs);
        }

        /// <summary>Queues the player's next line; it starts a new turn after the current one.</summary>
        public void Say(string line) { nextInput = line ?? ""; Finished = false; }

        /// <summary>Queues this frame's tick entry (at most one outstanding per session).</summary>
        public void Advance()
        {
            if (awaiting || (Finished && nextInput.Length == 0)) return;
            var entry = new TickEntry { SessionId = SessionId, BudgetMs = BudgetMs, NewInput = nextInput };
            nextInput = "";
            awaiting = true;
            Route(batcher.Enqueue(entry));
        }

        private async void Route(Task<TickResult> pending)
        {
            TickResult result;
            try { result = await pending; }
            catch (Exception error) { awaiting = false; if (ErrorReceived != null) ErrorReceived(error.Message); return; }
            awaiting = false;
            if (result.ErrorCode != 0) { Finished = true; if (ErrorReceived != null) ErrorReceived(result.Error); return; }
            if (result.TextDelta.Length > 0 && TextReceived != null) TextReceived(result.TextDelta);
            if (result.Finished)
            {
                Finished = true;
                LastFinishReason = result.FinishReason;
                if (TurnFinished != null) TurnFinished(result.FinishReason);
            }
        }
    }
}
