using System;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// One NPC's streamed decisions (NpcAgent.StepStream) as events, so a game can act and start subtitles or
    /// text-to-speech before the whole line is decoded:
    ///   OnAction   the decision's action (final: never retracted), before any text;
    ///   OnSentence each sentence as soon as its last delta arrived (text kept exactly: the sentences
    ///              concatenate to Decision.Dialogue);
    ///   OnDone     the whole Decision, as Step would return it;
    ///   OnError    an RPC error (RpcException: NOT_FOUND for an unknown NPC...) or a protocol error.
    /// Create one per NPC, subscribe once, call <see cref="Start"/> per step. Call Start from the main thread:
    /// the read loop awaits on the caller's context, so in Unity every event is raised on the main thread (as
    /// PlayStream and TickBatcher do). Starting again, <see cref="Cancel"/> or Dispose stops the running
    /// stream (the server stops decoding); a stopped stream raises nothing more and no OnError.
    /// </summary>
    public sealed class NpcDialogueStream : IDisposable
    {
        private readonly NpcAgentClient client;
        private CancellationTokenSource running;
        private int generation;

        public event Action<ActionChosen> OnAction;
        public event Action<string> OnSentence;
        public event Action<Decision> OnDone;
        public event Action<Exception> OnError;

        /// <summary>The running (or last) step's action; null until its first chunk.</summary>
        public ActionChosen Action { get; private set; }
        /// <summary>The last completed step's decision.</summary>
        public Decision Decision { get; private set; }
        public bool IsRunning { get { return running != null; } }

        public NpcDialogueStream(NpcAgentClient client)
        {
            if (client == null) throw new ArgumentNullException("client");
            this.client = client;
        }

        /// <summary>
        /// Starts one streamed step (stopping a running one). The task completes with the final Decision after
        /// OnDone, faults after OnError, and is cancelled when the stream is stopped or `ct` is cancelled.
        /// </summary>
        public Task<Decision> Start(StepRequest request, CancellationToken ct = default(CancellationToken))
        {
            if (request == null) throw new ArgumentNullException("request");
            Cancel();
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
            running = cancel;
            Action = null;
            int run = ++generation;
            return Read(run, cancel, client.StepStream(request, cancel.Token));
        }

        /// <summary>Stops the running stream, if any (the server stops decoding when the call is cancelled).</summary>
        public void Cancel()
        {
            var cancel = running;
            running = null;
            generation++;
            if (cancel != null) cancel.Cancel();
        }

        public void Dispose() { Cancel(); }

        private async Task<Decision> Read(int run, CancellationTokenSource cancel, AsyncServerStreamingCall<StepChunk> call)
        {
            var assembler = new StepStreamAssembler();
            // Events of a stream that was stopped or replaced meanwhile are dropped.
            assembler.ActionReceived += a => { if (run == generation) { Action = a; if (OnAction != null) OnAction(a); } };
            assembler.SentenceReceived += s => { if (run == generation && OnSentence != null) OnSentence(s); };
            assembler.DoneReceived += d => { if (run == generation) { Decision = d; if (OnDone != null) OnDone(d); } };
            try
            {
                using (call)
                {
                    while (await call.ResponseStream.MoveNext(cancel.Token))
                    {
                        if (run != generation) throw new OperationCanceledException(cancel.Token);
                        if (assembler.Accept(call.ResponseStream.Current)) return assembler.Decision;
                    }
                    if (run != generation) throw new OperationCanceledException(cancel.Token);
                    assembler.End();
                    return assembler.Decision;
                }
            }
            catch (Exception error)
            {
                if (cancel.IsCancellationRequested || run != generation)
                    throw new OperationCanceledException("the StepStream was stopped", error, cancel.Token);
                if (OnError != null) OnError(error);
                throw;
            }
            finally
            {
                if (run == generation) running = null;
                cancel.Dispose();
            }
        }
    }
}
