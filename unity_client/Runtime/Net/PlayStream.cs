using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// Drives many NPCs over one NpcAgent.Play stream: Send() numbers each PlayRequest (seq) and writes it
    /// (one write at a time, as IClientStreamWriter requires); a read loop raises every decision, error and
    /// response as it arrives. The server answers each request exactly once, in order.
    /// Call from the main thread; events are raised on the continuation context (Unity's main thread).
    /// </summary>
    public sealed class PlayStream : IDisposable
    {
        private readonly AsyncDuplexStreamingCall<PlayRequest, PlayResponse> call;
        private readonly CancellationTokenSource cancel = new CancellationTokenSource();
        private Task writeChain = Task.FromResult(true);
        private ulong nextSeq = 1;
        private readonly HashSet<ulong> awaiting = new HashSet<ulong>();

        public event Action<Decision> DecisionReceived;
        public event Action<NpcError> ErrorReceived;
        public event Action<PlayResponse> ResponseReceived;

        /// <summary>Completes when the server ends the stream; faults with RpcException on a stream error.</summary>
        public Task Completion { get; private set; }
        public int Outstanding { get { lock (awaiting) return awaiting.Count; } }

        public PlayStream(NpcAgentClient client)
        {
            call = client.Play(cancel.Token);
            Completion = ReadLoop();
        }

        /// <summary>Assigns the next seq, queues the write and returns the seq.</summary>
        public ulong Send(PlayRequest request)
        {
            var message = request.Clone();
            message.Seq = nextSeq++;
            lock (awaiting) awaiting.Add(message.Seq);
            writeChain = writeChain.ContinueWith(_ => call.RequestStream.WriteAsync(message), TaskScheduler.Default).Unwrap();
            return message.Seq;
        }

        /// <summary>Half-closes the stream after the queued writes; the server then finishes its answers.</summary>
        public Task CompleteAsync()
        {
            writeChain = writeChain.ContinueWith(_ => call.RequestStream.CompleteAsync(), TaskScheduler.Default).Unwrap();
            return writeChain;
        }

        private async Task ReadLoop()
        {
            while (await call.ResponseStream.MoveNext(cancel.Token))
            {
                var response = call.ResponseStream.Current;
                lock (awaiting) awaiting.Remove(response.Seq);
                foreach (var decision in response.Decisions) if (DecisionReceived != null) DecisionReceived(decision);
                foreach (var error in response.Errors) if (ErrorReceived != null) ErrorReceived(error);
                if (ResponseReceived != null) ResponseReceived(response);
            }
        }

        public void Dispose()
        {
            cancel.Cancel();
            call.Dispose();
        }
    }
}
