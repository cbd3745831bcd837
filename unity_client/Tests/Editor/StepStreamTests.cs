using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using Npc.Proto.V1;
using NpcRuntime.Unity.Net;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    /// <summary>NpcAgent.StepStream: the shared event rule (stream_vectors.json) and NpcDialogueStream over a CallInvoker.</summary>
    [TestFixture]
    public sealed class StepStreamTests
    {
        private static List<Dictionary<string, object>> Cases()
        {
            return ((List<object>)TestVectors.Load("stream_vectors.json")["cases"]).Cast<Dictionary<string, object>>().ToList();
        }

        private static List<StepChunk> Chunks(Dictionary<string, object> c)
        {
            var chunks = new List<StepChunk>();
            foreach (Dictionary<string, object> recorded in (List<object>)c["chunks"])
            {
                var hex = (string)recorded["hex"];
                var chunk = StepChunk.Parser.ParseFrom(TestVectors.FromHex(hex));
                Assert.AreEqual(hex, TestVectors.ToHex(chunk.ToByteArray()), (string)c["name"] + ": chunk round trip");
                chunks.Add(chunk);
            }
            return chunks;
        }

        // One line per event, the same shape for the vector's JSON and for what the client raised.
        private static string Describe(Dictionary<string, object> e)
        {
            switch ((string)e["event"])
            {
                case "action":
                    var args = ((Dictionary<string, object>)e["arguments"]).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value);
                    return "action " + e["npc_id"] + " " + e["state"] + " " + e["action"] + " {" + string.Join(",", args) + "}";
                case "sentence": return "sentence [" + e["text"] + "]";
                case "done": return "done " + e["action"] + " [" + e["dialogue"] + "]";
                default: return (string)e["event"];
            }
        }

        private static string Describe(ActionChosen a)
        {
            var args = a.Arguments.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value);
            return "action " + a.NpcId + " " + a.State + " " + a.Action + " {" + string.Join(",", args) + "}";
        }

        private static List<string> Record(StepStreamAssembler assembler)
        {
            var events = new List<string>();
            assembler.ActionReceived += a => events.Add(Describe(a));
            assembler.SentenceReceived += s => events.Add("sentence [" + s + "]");
            assembler.DoneReceived += d => events.Add("done " + d.Action + " [" + d.Dialogue + "]");
            return events;
        }

        [Test]
        public void AssemblerGivesTheSharedEvents()
        {
            var cases = Cases();
            Assert.IsTrue(cases.Count >= 6, "stream cases: " + cases.Count);
            foreach (var c in cases)
            {
                var assembler = new StepStreamAssembler();
                var events = Record(assembler);
                try
                {
                    bool done = false;
                    foreach (var chunk in Chunks(c)) if (!done) done = assembler.Accept(chunk);
                    assembler.End();
                }
                catch (InvalidOperationException) { events.Add("error"); }
                var expected = ((List<object>)c["events"]).Cast<Dictionary<string, object>>().Select(Describe).ToList();
                CollectionAssert.AreEqual(expected, events, (string)c["name"]);
            }
        }

        [Test]
        public void ProtocolErrorsNameWhatWentWrong()
        {
            var assembler = new StepStreamAssembler();
            var error = Assert.Throws<InvalidOperationException>(() => assembler.Accept(new StepChunk { Dialogue = new DialogueDelta { Text = "Hi" } }));
            StringAssert.Contains("dialogue chunk before the action", error.Message);
            assembler = new StepStreamAssembler();
            assembler.Accept(new StepChunk { Action = new ActionChosen { Action = "idle" } });
            error = Assert.Throws<InvalidOperationException>(() => assembler.End());
            StringAssert.Contains("ended before done", error.Message);
        }

        private static object[] VectorChunks(string name)
        {
            return Chunks(Cases().First(c => (string)c["name"] == name)).Cast<object>().ToArray();
        }

        [Test]
        public void DialogueStreamRaisesActionSentencesDoneInOrder()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => VectorChunks("action, two sentences, done") };
            var stream = new NpcDialogueStream(new NpcAgentClient(invoker));
            var events = new List<string>();
            stream.OnAction += a => events.Add("action " + a.Action);
            stream.OnSentence += s => events.Add("sentence [" + s + "]");
            stream.OnDone += d => events.Add("done " + d.Action);
            stream.OnError += e => events.Add("error " + e.Message);
            var decision = stream.Start(new StepRequest { NpcId = "guard-01", DeadlineMs = 150 }).Result;

            Assert.AreEqual("/npc.v1.NpcAgent/StepStream", invoker.Calls.Single());
            var left = invoker.LastOptions.Deadline.Value - DateTime.UtcNow;
            Assert.IsTrue(left > TimeSpan.FromSeconds(50) && left <= TimeSpan.FromSeconds(60), "StepStream deadline in " + left);
            Assert.AreEqual(MethodType.ServerStreaming, NpcGrpc.StepStream.Type);
            CollectionAssert.AreEqual(new[] { "action warn", "sentence [Drop it, thief!]", "sentence [ The café is closed 🛡️.]", "done warn" }, events);
            Assert.AreEqual("Drop it, thief! The café is closed 🛡️.", decision.Dialogue);
            Assert.AreSame(decision, stream.Decision);
            Assert.AreEqual("warn", stream.Action.Action);
            Assert.IsFalse(stream.IsRunning);
        }

        [Test]
        public void ErrorsBeforeTheFirstChunkAndProtocolErrorsRaiseOnError()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => { throw new RpcException(new Status(StatusCode.NotFound, "unknown NPC 'ghost'")); } };
            var stream = new NpcDialogueStream(new NpcAgentClient(invoker));
            var errors = new List<Exception>();
            int actions = 0;
            stream.OnError += errors.Add;
            stream.OnAction += a => actions++;
            var failed = Assert.Throws<AggregateException>(() => stream.Start(new StepRequest { NpcId = "ghost" }).Wait());
            Assert.AreEqual(StatusCode.NotFound, ((RpcException)failed.InnerException).StatusCode);
            Assert.AreEqual(StatusCode.NotFound, ((RpcException)errors.Single()).StatusCode);
            Assert.AreEqual(0, actions);

            invoker.Handler = (m, r) => VectorChunks("stream ends before done");
            failed = Assert.Throws<AggregateException>(() => stream.Start(new StepRequest { NpcId = "guard-01" }).Wait());
            Assert.IsTrue(failed.InnerException is InvalidOperationException, failed.InnerException.ToString());
            Assert.AreEqual(2, errors.Count);
            Assert.AreEqual(1, actions, "the action arrived before the stream broke");
        }

        private static async Task Until(Func<bool> condition)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (!condition())
            {
                if (DateTime.UtcNow > deadline) Assert.Fail("timed out waiting for a stream event");
                await Task.Delay(1);
            }
        }

        private static async Task AssertCancelled(Task task)
        {
            try { await task; Assert.Fail("the stream was not stopped"); }
            catch (OperationCanceledException) { }
            Assert.IsTrue(task.IsCanceled);
        }

        [Test]
        public void StartingAgainStopsTheRunningStreamSilently()
        {
            var invoker = new ManualStreamInvoker();
            var events = new List<string>();
            new MainThreadPump().Run(async () =>
            {
                var stream = new NpcDialogueStream(new NpcAgentClient(invoker));
                stream.OnAction += a => events.Add("action " + a.Action);
                stream.OnSentence += s => events.Add("sentence [" + s + "]");
                stream.OnDone += d => events.Add("done " + d.Action);
                stream.OnError += e => events.Add("error " + e.Message);

                var first = stream.Start(new StepRequest { NpcId = "guard-01" });
                invoker.Streams[0].Push(new StepChunk { Action = new ActionChosen { Action = "warn" } });
                await Until(() => events.Count == 1);
                invoker.Streams[0].Push(new StepChunk { Dialogue = new DialogueDelta { Text = "Drop" } });
                await Until(() => invoker.Streams[0].Pending == 0);
                Assert.IsTrue(stream.IsRunning);

                var second = stream.Start(new StepRequest { NpcId = "guard-01" });
                Assert.IsTrue(invoker.Streams[0].Token.IsCancellationRequested, "the first call is cancelled");
                await AssertCancelled(first);
                invoker.Streams[1].Push(new StepChunk { Action = new ActionChosen { Action = "idle" } });
                invoker.Streams[1].Push(new StepChunk { Dialogue = new DialogueDelta { Text = "Hm.", SentenceEnd = true } });
                invoker.Streams[1].Push(new StepChunk { Done = new Decision { Action = "idle", Dialogue = "Hm." } });
                Assert.AreEqual("idle", (await second).Action);
                Assert.IsFalse(stream.IsRunning);

                var third = stream.Start(new StepRequest { NpcId = "guard-01" });
                invoker.Streams[2].Push(new StepChunk { Action = new ActionChosen { Action = "chase" } });
                await Until(() => events.Count == 5);
                stream.Cancel();
                invoker.Streams[2].Push(new StepChunk { Done = new Decision { Action = "chase" } });
                await AssertCancelled(third);
                Assert.IsFalse(stream.IsRunning);
            });
            // The first stream's buffered "Drop" never became a sentence; nothing after Cancel; no errors.
            CollectionAssert.AreEqual(new[] { "action warn", "action idle", "sentence [Hm.]", "done idle", "action chase" }, events);
        }

        [Test]
        public void EventsAreRaisedOnTheCallersContext()
        {
            // Unity's main thread is a SynchronizationContext that runs posted continuations in Update; the
            // chunks here complete on thread-pool threads, yet every event must run on the pump's thread.
            var invoker = new ManualStreamInvoker();
            var pump = new MainThreadPump();
            var threads = new List<int>();
            Decision decision = null;
            pump.Run(async () =>
            {
                var stream = new NpcDialogueStream(new NpcAgentClient(invoker));
                stream.OnAction += a => threads.Add(Thread.CurrentThread.ManagedThreadId);
                stream.OnSentence += s => threads.Add(Thread.CurrentThread.ManagedThreadId);
                stream.OnDone += d => threads.Add(Thread.CurrentThread.ManagedThreadId);
                var running = stream.Start(new StepRequest { NpcId = "guard-01" });
                ThreadPool.QueueUserWorkItem(_ =>
                {
                    foreach (var chunk in VectorChunks("action, two sentences, done")) { Thread.Sleep(2); invoker.Streams[0].Push((StepChunk)chunk); }
                });
                decision = await running;
            });
            Assert.AreEqual("warn", decision.Action);
            Assert.AreEqual(4, threads.Count);
            Assert.IsTrue(threads.All(t => t == pump.ThreadId), "events on the main thread only");
        }

        [Test]
        public void RecallMemoriesSendsTheRequestAndReadsTheRanking()
        {
            var invoker = new LoopbackInvoker();
            RecallMemoriesRequest seen = null;
            invoker.Handler = (m, r) =>
            {
                seen = (RecallMemoriesRequest)r;
                var response = new RecallMemoriesResponse();
                response.Memories.Add(new Memory { Text = "The player stole an apple.", Importance = 7, Kind = MemoryKind.Observation, Score = 0.9f });
                response.Memories.Add(new Memory { Text = "I said: drop it.", Importance = 3, Kind = MemoryKind.Dialogue, Score = 0.4f });
                return response;
            };
            var client = new NpcAgentClient(invoker, new NpcClientOptions { UnaryDeadline = TimeSpan.FromSeconds(2) });
            var memories = client.RecallMemoriesAsync("guard-01", "the apple", 5).Result.Memories;
            Assert.AreEqual("/npc.v1.NpcAgent/RecallMemories", invoker.Calls.Single());
            Assert.AreEqual("guard-01", seen.NpcId);
            Assert.AreEqual("the apple", seen.Query);
            Assert.AreEqual(5u, seen.Limit);
            Assert.IsTrue(invoker.LastOptions.Deadline.HasValue);
            Assert.AreEqual(2, memories.Count);
            Assert.AreEqual(MemoryKind.Dialogue, memories[1].Kind);
            Assert.AreEqual(0u, client.RecallMemoriesAsync("guard-01").ContinueWith(t => seen.Limit).Result, "limit 0 = server default");
        }
    }

    /// <summary>Server-streaming calls whose chunks the test pushes one by one; cancellation ends MoveNext as gRPC does.</summary>
    internal sealed class ManualStreamInvoker : CallInvoker
    {
        public readonly List<PushReader> Streams = new List<PushReader>();

        internal sealed class PushReader : IAsyncStreamReader<StepChunk>
        {
            private readonly BlockingCollection<StepChunk> items = new BlockingCollection<StepChunk>();
            public CancellationToken Token;
            public StepChunk Current { get; private set; }
            public int Pending { get { return items.Count; } }
            public void Push(StepChunk chunk) { items.Add(StepChunk.Parser.ParseFrom(chunk.ToByteArray())); }
            public Task<bool> MoveNext(CancellationToken cancellationToken)
            {
                StepChunk next;
                if (items.TryTake(out next)) { Current = next; return Task.FromResult(true); }
                return Task.Run(() =>
                {
                    try { Current = items.Take(cancellationToken); return true; }
                    catch (OperationCanceledException) { throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client.")); }
                });
            }
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            var reader = new PushReader { Token = options.CancellationToken };
            Streams.Add(reader);
            return new AsyncServerStreamingCall<TResponse>((IAsyncStreamReader<TResponse>)(object)reader, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => new Metadata(), () => { });
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request) { throw new NotSupportedException(); }
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request) { throw new NotSupportedException(); }
        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options) { throw new NotSupportedException(); }
        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options) { throw new NotSupportedException(); }
    }

    /// <summary>A single-threaded SynchronizationContext, like Unity's main thread: Run pumps posted work until the task ends.</summary>
    internal sealed class MainThreadPump : SynchronizationContext
    {
        private readonly BlockingCollection<KeyValuePair<SendOrPostCallback, object>> queue = new BlockingCollection<KeyValuePair<SendOrPostCallback, object>>();
        public int ThreadId { get; private set; }

        public override void Post(SendOrPostCallback d, object state)
        {
            // Continuations of stopped streams may still post after Run returned; they have nothing left to do.
            try { queue.Add(new KeyValuePair<SendOrPostCallback, object>(d, state)); }
            catch (InvalidOperationException) { }
        }

        public void Run(Func<Task> body)
        {
            var previous = Current;
            ThreadId = Thread.CurrentThread.ManagedThreadId;
            SetSynchronizationContext(this);
            try
            {
                var task = body();
                task.ContinueWith(_ => queue.CompleteAdding(), TaskScheduler.Default);
                foreach (var work in queue.GetConsumingEnumerable(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token)) work.Key(work.Value);
                task.GetAwaiter().GetResult();
            }
            finally { SetSynchronizationContext(previous); }
        }
    }
}
