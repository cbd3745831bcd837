using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.Proto.V1;
using NpcRuntime.Unity.Net;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    /// <summary>A CallInvoker that serializes through the methods' real marshallers and answers from a handler.</summary>
    internal sealed class LoopbackInvoker : CallInvoker
    {
        public readonly List<string> Calls = new List<string>();
        /// <summary>x-npc-id of each call, in order (null when absent).</summary>
        public readonly List<string> RoutingKeys = new List<string>();
        public CallOptions LastOptions;
        /// <summary>Response headers of every call (a server sends npcrt-replica here).</summary>
        public Metadata ResponseHeaders = new Metadata();

        private void Note(string method, CallOptions options)
        {
            lock (Calls)
            {
                Calls.Add(method);
                RoutingKeys.Add(options.Headers == null ? null : options.Headers.GetValue("x-npc-id"));
                LastOptions = options;
            }
        }
        public Func<string, object, object> Handler = (method, request) => { throw new RpcException(new Status(StatusCode.Unimplemented, method)); };

        private TResp Invoke<TReq, TResp>(Method<TReq, TResp> method, CallOptions options, TReq request)
        {
            Note(method.FullName, options);
            var wireRequest = method.RequestMarshaller.Deserializer(method.RequestMarshaller.Serializer(request));
            var response = (TResp)Handler(method.FullName, wireRequest);
            return method.ResponseMarshaller.Deserializer(method.ResponseMarshaller.Serializer(response));
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            return Invoke(method, options, request);
        }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            Task<TResponse> task;
            try { task = Task.FromResult(Invoke(method, options, request)); }
            catch (Exception e) { var tcs = new TaskCompletionSource<TResponse>(); tcs.SetException(e); task = tcs.Task; }
            return new AsyncUnaryCall<TResponse>(task, Task.FromResult(ResponseHeaders), () => Status.DefaultSuccess, () => new Metadata(), () => { });
        }

        /// <summary>Server streaming: Handler returns one response or an array of them; its exception surfaces
        /// from the first MoveNext, as a server's status does.</summary>
        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            Note(method.FullName, options);
            var items = new List<TResponse>();
            Exception error = null;
            try
            {
                var wireRequest = method.RequestMarshaller.Deserializer(method.RequestMarshaller.Serializer(request));
                var result = Handler(method.FullName, wireRequest);
                foreach (var item in result as object[] ?? new[] { result })
                    items.Add(method.ResponseMarshaller.Deserializer(method.ResponseMarshaller.Serializer((TResponse)item)));
            }
            catch (Exception e) { error = e; }
            return new AsyncServerStreamingCall<TResponse>(new ListReader<TResponse>(items, error), Task.FromResult(ResponseHeaders), () => Status.DefaultSuccess, () => new Metadata(), () => { });
        }

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options)
        {
            throw new NotSupportedException();
        }

        /// <summary>Duplex: every written request is answered through Handler, in order, over the wire format.</summary>
        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options)
        {
            Note(method.FullName, options);
            var responses = new AsyncQueue<TResponse>();
            var writer = new QueueWriter<TRequest>(request =>
            {
                var wire = method.RequestMarshaller.Deserializer(method.RequestMarshaller.Serializer(request));
                var response = (TResponse)Handler(method.FullName, wire);
                responses.Add(method.ResponseMarshaller.Deserializer(method.ResponseMarshaller.Serializer(response)));
            }, responses.Complete);
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(writer, responses, Task.FromResult(ResponseHeaders), () => Status.DefaultSuccess, () => new Metadata(), () => { });
        }

        private sealed class QueueWriter<T> : IClientStreamWriter<T>
        {
            private readonly Action<T> onWrite;
            private readonly Action onComplete;
            private bool writing;
            public QueueWriter(Action<T> onWrite, Action onComplete) { this.onWrite = onWrite; this.onComplete = onComplete; }
            public WriteOptions WriteOptions { get; set; }
            public Task WriteAsync(T message)
            {
                if (writing) throw new InvalidOperationException("only one write can be pending at a time");
                writing = true;
                try { onWrite(message); } finally { writing = false; }
                return Task.FromResult(true);
            }
            public Task CompleteAsync() { onComplete(); return Task.FromResult(true); }
        }

        private sealed class AsyncQueue<T> : IAsyncStreamReader<T>
        {
            private readonly Queue<T> items = new Queue<T>();
            private TaskCompletionSource<bool> waiter;
            private bool completed;
            public T Current { get; private set; }
            public void Add(T item)
            {
                lock (items) { items.Enqueue(item); }
                Wake();
            }
            public void Complete() { completed = true; Wake(); }
            private void Wake()
            {
                TaskCompletionSource<bool> w;
                lock (items) { w = waiter; waiter = null; }
                if (w != null) w.SetResult(true);
            }
            public async Task<bool> MoveNext(CancellationToken cancellationToken)
            {
                while (true)
                {
                    TaskCompletionSource<bool> w;
                    lock (items)
                    {
                        if (items.Count > 0) { Current = items.Dequeue(); return true; }
                        if (completed) return false;
                        w = waiter = new TaskCompletionSource<bool>();
                    }
                    await w.Task;
                }
            }
        }

        private sealed class ListReader<T> : IAsyncStreamReader<T>
        {
            private readonly IEnumerator<T> items;
            private readonly Exception error;
            public ListReader(IEnumerable<T> items, Exception error) { this.items = items.GetEnumerator(); this.error = error; }
            public T Current { get { return items.Current; } }
            public Task<bool> MoveNext(CancellationToken cancellationToken)
            {
                if (error == null) return Task.FromResult(items.MoveNext());
                var failed = new TaskCompletionSource<bool>();
                failed.SetException(error);
                return failed.Task;
            }
        }
    }

    [TestFixture]
    public sealed class GrpcClientTests
    {
        [Test]
        public void UnaryCallsUseContractPathsTokenAndDeadline()
        {
            var invoker = new LoopbackInvoker();
            invoker.Handler = (method, request) => new OpenSessionResponse { SessionId = "s-1", PromptTokens = (uint)((OpenSessionRequest)request).Prompt.Length };
            var client = new NpcRuntimeClient(invoker, new NpcClientOptions { BearerToken = "secret", UnaryDeadline = TimeSpan.FromSeconds(3) });
            var response = client.OpenSessionAsync(new OpenSessionRequest { Prompt = "Hello!" }).Result;
            Assert.AreEqual("s-1", response.SessionId);
            Assert.AreEqual(6u, response.PromptTokens);
            Assert.AreEqual("/npc.v1.NpcRuntime/OpenSession", invoker.Calls[0]);
            Assert.AreEqual("Bearer secret", invoker.LastOptions.Headers.GetValue("authorization"));
            Assert.IsTrue(invoker.LastOptions.Deadline.HasValue);
            var left = invoker.LastOptions.Deadline.Value - DateTime.UtcNow;
            Assert.IsTrue(left > TimeSpan.FromSeconds(2) && left <= TimeSpan.FromSeconds(3), "deadline in " + left);
        }

        [Test]
        public void NoTokenMeansNoAuthorizationHeader()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => new CancelResponse { WasRunning = true } };
            Assert.IsTrue(new NpcRuntimeClient(invoker).CancelAsync("s-1").Result.WasRunning);
            Assert.IsNull(invoker.LastOptions.Headers);
        }

        [Test]
        public void AgentStepDeadlineFollowsTheRequest()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => new Decision { NpcId = ((StepRequest)r).NpcId, Action = "warn" } };
            var decision = new NpcAgentClient(invoker).StepAsync(new StepRequest { NpcId = "guard-01", DeadlineMs = 150 }).Result;
            Assert.AreEqual("warn", decision.Action);
            Assert.AreEqual("/npc.v1.NpcAgent/Step", invoker.Calls[0]);
            var left = invoker.LastOptions.Deadline.Value - DateTime.UtcNow;
            Assert.IsTrue(left <= TimeSpan.FromMilliseconds(1150), "deadline in " + left);
        }

        [Test]
        public void GenerateAndPlayUseStreamingMethods()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => new GenerateChunk { Text = "Move along.", Finished = true } };
            Assert.AreEqual(MethodType.ServerStreaming, NpcGrpc.Generate.Type);
            Assert.AreEqual(MethodType.DuplexStreaming, NpcGrpc.Play.Type);
            var call = new NpcRuntimeClient(invoker).Generate(new GenerateRequest { SessionId = "s-1" });
            Assert.IsTrue(call.ResponseStream.MoveNext(CancellationToken.None).Result);
            Assert.AreEqual("Move along.", call.ResponseStream.Current.Text);
            Assert.IsFalse(call.ResponseStream.MoveNext(CancellationToken.None).Result);
            CollectionAssert.AreEqual(new[] { "/npc.v1.NpcRuntime/Generate" }, invoker.Calls);
        }

        [Test]
        public void ServerErrorsSurfaceAsRpcException()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => { throw new RpcException(new Status(StatusCode.NotFound, "unknown session id 's-9'")); } };
            var error = Assert.Throws<AggregateException>(() => new NpcRuntimeClient(invoker).CloseSessionAsync("s-9").Wait());
            Assert.AreEqual(StatusCode.NotFound, ((RpcException)error.InnerException).StatusCode);
        }
    }

    [TestFixture]
    public sealed class TickBatcherTests
    {
        private static TickResponse Echo(TickRequest request)
        {
            var response = new TickResponse();
            foreach (var e in request.Entries) response.Results.Add(new TickResult { SessionId = e.SessionId, TextDelta = e.NewInput + "|" + e.BudgetMs });
            return response;
        }

        [Test]
        public void OneRequestPerFrameCarriesEveryNpc()
        {
            var sent = new List<TickRequest>();
            var batcher = new TickBatcher(r => { sent.Add(r); return Task.FromResult(Echo(r)); });
            var a = batcher.Enqueue(new TickEntry { SessionId = "a", BudgetMs = 2 });
            var b = batcher.Enqueue(new TickEntry { SessionId = "b", BudgetMs = 1, NewInput = "hi" });
            var c = batcher.Enqueue(new TickEntry { SessionId = "c", BudgetMs = 3 });
            batcher.Flush().Wait();
            Assert.AreEqual(1, sent.Count);
            Assert.AreEqual(3, sent[0].Entries.Count);
            Assert.AreEqual("|2", a.Result.TextDelta);
            Assert.AreEqual("hi|1", b.Result.TextDelta);
            Assert.AreEqual("c", c.Result.SessionId);
            batcher.Flush().Wait();
            Assert.AreEqual(1, sent.Count, "an empty frame sends nothing");
        }

        [Test]
        public void SameSessionTwiceInAFrameIsMerged()
        {
            var sent = new List<TickRequest>();
            var batcher = new TickBatcher(r => { sent.Add(r); return Task.FromResult(Echo(r)); });
            var first = batcher.Enqueue(new TickEntry { SessionId = "a", BudgetMs = 1, MaxTokens = 2 });
            var second = batcher.Enqueue(new TickEntry { SessionId = "a", BudgetMs = 4, MaxTokens = 3, NewInput = "hello" });
            batcher.Flush().Wait();
            Assert.AreEqual(1, sent[0].Entries.Count);
            Assert.AreEqual(4f, sent[0].Entries[0].BudgetMs);
            Assert.AreEqual(3u, sent[0].Entries[0].MaxTokens);
            Assert.AreSame(first, second);
            Assert.Throws<InvalidOperationException>(() =>
            {
                batcher.Enqueue(new TickEntry { SessionId = "x", NewInput = "one" });
                batcher.Enqueue(new TickEntry { SessionId = "x", NewInput = "two" });
            });
        }

        [Test]
        public void EntriesWaitWhileATickIsInFlight()
        {
            var gate = new TaskCompletionSource<TickResponse>();
            var sent = new List<TickRequest>();
            var batcher = new TickBatcher(r => { sent.Add(r); return sent.Count == 1 ? gate.Task : Task.FromResult(Echo(r)); });
            var a = batcher.Enqueue(new TickEntry { SessionId = "a" });
            var flushing = batcher.Flush();
            Assert.IsTrue(batcher.InFlight);
            var b = batcher.Enqueue(new TickEntry { SessionId = "b" });
            batcher.Flush().Wait();
            Assert.AreEqual(1, sent.Count, "no second call while one is in flight");
            gate.SetResult(Echo(sent[0]));
            flushing.Wait();
            Assert.AreEqual("a", a.Result.SessionId);
            batcher.Flush().Wait();
            Assert.AreEqual(2, sent.Count);
            Assert.AreEqual("b", b.Result.SessionId);
        }

        [Test]
        public void BudgetsAreRoundTripBudgets()
        {
            // the first call goes out as given; its round trip (>= 30 ms here) minus the server's 1 ms is the
            // transport allowance taken off the next frame's budgets; 0 (server default) is never changed
            var sent = new List<TickRequest>();
            var batcher = new TickBatcher(async r =>
            {
                sent.Add(r.Clone());
                await Task.Delay(30);
                var response = Echo(r);
                response.TickMs = 1f;
                return response;
            });
            var caller = new TickEntry { SessionId = "a", BudgetMs = 100 };
            batcher.Enqueue(caller);
            batcher.Flush().Wait();
            Assert.AreEqual(100f, sent[0].Entries[0].BudgetMs);
            Assert.IsTrue(batcher.RoundTrip.AllowanceMs >= 28f, "allowance " + batcher.RoundTrip.AllowanceMs);
            batcher.Enqueue(new TickEntry { SessionId = "a", BudgetMs = 100 });
            batcher.Enqueue(new TickEntry { SessionId = "b", BudgetMs = 0 });
            batcher.Enqueue(new TickEntry { SessionId = "c", BudgetMs = 4 });
            batcher.Flush().Wait();
            Assert.IsTrue(sent[1].Entries[0].BudgetMs <= 72f, "sent " + sent[1].Entries[0].BudgetMs);
            Assert.AreEqual(0f, sent[1].Entries[1].BudgetMs, "0 = the server's default, left alone");
            Assert.AreEqual(RoundTripBudget.MinServerBudgetMs, sent[1].Entries[2].BudgetMs, "a budget the transport eats asks for a minimal tick");
            Assert.AreEqual(100f, caller.BudgetMs, "the caller's entry is not modified");

            var plain = new List<TickRequest>();
            var raw = new TickBatcher(r => { plain.Add(r); return Task.FromResult(Echo(r)); }) { RoundTrip = null };
            raw.Enqueue(new TickEntry { SessionId = "a", BudgetMs = 3 });
            raw.Flush().Wait();
            Assert.AreEqual(3f, plain[0].Entries[0].BudgetMs);
        }

        [Test]
        public void RoundTripAllowanceFollowsTheTransport()
        {
            var budget = new RoundTripBudget();
            Assert.AreEqual(0f, budget.AllowanceMs);
            Assert.AreEqual(8f, budget.ServerBudgetMs(8f));
            budget.Observe(5.5, 5.0);                       // 0.5 ms outside the server
            Assert.AreEqual(0.5f, budget.AllowanceMs, 1e-6);
            Assert.AreEqual(7.5f, budget.ServerBudgetMs(8f), 1e-6);
            for (int i = 0; i < 100; i++) budget.Observe(3.0, 2.0);   // settles on 1 ms, deviation decays
            Assert.AreEqual(1.0f, budget.AllowanceMs, 0.01);
            budget.Observe(double.NaN, 1.0);                // ignored
            budget.Observe(1.0, 5.0);                       // server time past the round trip: 0 outside
            Assert.IsTrue(budget.AllowanceMs < 1.2f);
            Assert.AreEqual(0f, budget.ServerBudgetMs(0f));
        }

        [Test]
        public void LargeFramesSplitAtMaxEntries()
        {
            var sent = new List<TickRequest>();
            var batcher = new TickBatcher(r => { sent.Add(r); return Task.FromResult(Echo(r)); }) { MaxEntriesPerTick = 2 };
            var tasks = new List<Task<TickResult>>();
            for (int i = 0; i < 5; i++) tasks.Add(batcher.Enqueue(new TickEntry { SessionId = "n" + i }));
            batcher.Flush().Wait();
            Assert.AreEqual(3, sent.Count);
            for (int i = 0; i < 5; i++) Assert.AreEqual("n" + i, tasks[i].Result.SessionId);
        }

        [Test]
        public void RpcFailureFailsEveryEntryOfTheCall()
        {
            var batcher = new TickBatcher(r => { var t = new TaskCompletionSource<TickResponse>(); t.SetException(new RpcException(new Status(StatusCode.Unavailable, "server shutting down"))); return t.Task; });
            var a = batcher.Enqueue(new TickEntry { SessionId = "a" });
            batcher.Flush().Wait();
            var error = Assert.Throws<AggregateException>(() => a.Wait());
            Assert.AreEqual(StatusCode.Unavailable, ((RpcException)error.InnerException).StatusCode);
            Assert.IsFalse(batcher.InFlight);
        }

        [Test]
        public void BatcherOverTheClientUsesOneTickCall()
        {
            var invoker = new LoopbackInvoker { Handler = (m, r) => Echo((TickRequest)r) };
            var batcher = new TickBatcher(new NpcRuntimeClient(invoker));
            var a = batcher.Enqueue(new TickEntry { SessionId = "a", NewInput = "x" });
            var b = batcher.Enqueue(new TickEntry { SessionId = "b" });
            batcher.Flush().Wait();
            CollectionAssert.AreEqual(new[] { "/npc.v1.NpcRuntime/Tick" }, invoker.Calls);
            Assert.AreEqual("x|0", a.Result.TextDelta);
            Assert.AreEqual("b", b.Result.SessionId);
        }
    }

    [TestFixture]
    public sealed class PlayStreamTests
    {
        [Test]
        public void DecisionsAndErrorsArriveInOrderWithSeq()
        {
            var invoker = new LoopbackInvoker();
            invoker.Handler = (method, request) =>
            {
                var play = (PlayRequest)request;
                var response = new PlayResponse { Seq = play.Seq };
                foreach (var step in play.Steps)
                {
                    if (step.NpcId == "ghost") response.Errors.Add(new NpcError { NpcId = "ghost", Code = 5, Message = "unknown NPC 'ghost'" });
                    else response.Decisions.Add(new Decision { NpcId = step.NpcId, Action = "idle" });
                }
                return response;
            };
            var stream = new PlayStream(new NpcAgentClient(invoker));
            var decisions = new List<string>();
            var errors = new List<int>();
            var seqs = new List<ulong>();
            stream.DecisionReceived += d => decisions.Add(d.NpcId + ":" + d.Action);
            stream.ErrorReceived += e => errors.Add(e.Code);
            stream.ResponseReceived += r => seqs.Add(r.Seq);

            var first = new PlayRequest();
            first.Steps.Add(new StepRequest { NpcId = "guard-01" });
            first.Steps.Add(new StepRequest { NpcId = "ghost" });
            var second = new PlayRequest();
            second.Steps.Add(new StepRequest { NpcId = "merchant-02" });
            Assert.AreEqual(1UL, stream.Send(first));
            Assert.AreEqual(2UL, stream.Send(second));
            stream.CompleteAsync().Wait();
            Assert.IsTrue(stream.Completion.Wait(5000), "the read loop ends when the stream completes");

            Assert.AreEqual("/npc.v1.NpcAgent/Play", invoker.Calls[0]);
            CollectionAssert.AreEqual(new[] { "guard-01:idle", "merchant-02:idle" }, decisions);
            CollectionAssert.AreEqual(new[] { 5 }, errors);
            CollectionAssert.AreEqual(new ulong[] { 1, 2 }, seqs);
            Assert.AreEqual(0, stream.Outstanding);
        }
    }
}
