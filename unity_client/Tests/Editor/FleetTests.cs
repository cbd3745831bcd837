using System;
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
    /// <summary>
    /// Fleet metadata on the wire (x-npc-id routing key per call type, npcrt-replica read back) and save-game
    /// snapshots, through <see cref="LoopbackInvoker"/> (the methods' real marshallers, a handler as the server).
    /// </summary>
    [TestFixture]
    public sealed class FleetTests
    {
        private static readonly byte[] SnapshotBytes = { 0x4e, 0x50, 0x43, 0x00, 0xff, 0x01 };   // NUL and 0xff on purpose

        /// <summary>A fake server: sessions "s-&lt;npc&gt;", snapshots echoed, every other answer empty.</summary>
        private static object Answer(string method, object request)
        {
            switch (method.Substring(method.LastIndexOf('/') + 1))
            {
                case "OpenSession": return new OpenSessionResponse { SessionId = "s-" + ((OpenSessionRequest)request).NpcId };
                case "Tick":
                    var tick = new TickResponse();
                    foreach (var e in ((TickRequest)request).Entries) tick.Results.Add(new TickResult { SessionId = e.SessionId });
                    return tick;
                case "Generate": return new GenerateChunk { Finished = true };
                case "Cancel": return new CancelResponse();
                case "CloseSession": return new CloseSessionResponse();
                case "SaveSession":
                    var save = (SaveSessionRequest)request;
                    return new SessionSnapshot { Data = ByteString.CopyFrom(SnapshotBytes), SessionId = save.SessionId, Model = "tiny", ContextTokens = save.IncludeKv ? 9u : 7u };
                case "RestoreSession":
                    var restore = (RestoreSessionRequest)request;
                    if (!restore.Snapshot.Data.ToByteArray().SequenceEqual(SnapshotBytes)) throw new RpcException(new Status(StatusCode.InvalidArgument, "not a session snapshot"));
                    return new OpenSessionResponse { SessionId = restore.SessionId.Length > 0 ? restore.SessionId : "s-saved" };
                case "Handshake": return new HandshakeResponse { ProtocolVersion = "1" };
                case "ListModels": return new ListModelsResponse();
                case "RegisterNpc": return new RegisterNpcResponse { NpcId = ((RegisterNpcRequest)request).NpcId };
                case "UnregisterNpc": return new UnregisterNpcResponse();
                case "Step": case "StepStream": return new Decision { NpcId = ((StepRequest)request).NpcId, Action = "idle" };
                case "RecallMemories": return new RecallMemoriesResponse();
                case "Play": return new PlayResponse { Seq = ((PlayRequest)request).Seq };
            }
            throw new RpcException(new Status(StatusCode.Unimplemented, method));
        }

        private static LoopbackInvoker Server() { return new LoopbackInvoker { Handler = Answer }; }

        private static string LastKey(LoopbackInvoker invoker, string method)
        {
            Assert.AreEqual(method, invoker.Calls.Last());
            return invoker.RoutingKeys.Last();
        }

        [Test]
        public void SessionCallsCarryTheNpcTheSessionWasOpenedWith()
        {
            var invoker = Server();
            var client = new NpcRuntimeClient(invoker);
            var opened = client.OpenSessionAsync(new OpenSessionRequest { NpcId = "guard-01" }).Result;
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/OpenSession"));
            var tick = new TickRequest();
            tick.Entries.Add(new TickEntry { SessionId = opened.SessionId });
            client.TickAsync(tick).Wait();
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/Tick"));
            var stream = client.Generate(new GenerateRequest { SessionId = opened.SessionId });
            Assert.IsTrue(stream.ResponseStream.MoveNext(CancellationToken.None).Result);
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/Generate"));
            client.CancelAsync(opened.SessionId).Wait();
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/Cancel"));
            client.SaveSessionAsync(opened.SessionId).Wait();
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/SaveSession"));
            client.CloseSessionAsync(opened.SessionId).Wait();
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/CloseSession"));
            Assert.AreEqual("", client.Routing.NpcOf(opened.SessionId), "forgotten once closed");
            client.CancelAsync(opened.SessionId).Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcRuntime/Cancel"));
        }

        [Test]
        public void AgentCallsCarryTheRequestsNpcAndGlobalCallsNone()
        {
            var invoker = Server();
            var agent = new NpcAgentClient(invoker);
            agent.RegisterNpcAsync(new RegisterNpcRequest { NpcId = "merchant-02" }).Wait();
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/RegisterNpc"));
            agent.StepAsync(new StepRequest { NpcId = "merchant-02" }).Wait();
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/Step"));
            agent.StepStream(new StepRequest { NpcId = "merchant-02" });
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/StepStream"));
            agent.RecallMemoriesAsync("merchant-02").Wait();
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/RecallMemories"));
            agent.UnregisterNpcAsync("merchant-02").Wait();
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/UnregisterNpc"));
            agent.Play();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcAgent/Play"), "a stream of many NPCs has no key");
            agent.Play(CancellationToken.None, "merchant-02");
            Assert.AreEqual("merchant-02", LastKey(invoker, "/npc.v1.NpcAgent/Play"));

            var runtime = new NpcRuntimeClient(invoker);
            runtime.HandshakeAsync(new HandshakeRequest()).Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcRuntime/Handshake"));
            runtime.ListModelsAsync().Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcRuntime/ListModels"));
        }

        [Test]
        public void ATickOfSeveralNpcsCarriesNoKeyUnlessTickedPerNpc()
        {
            var invoker = Server();
            var client = new NpcRuntimeClient(invoker);
            var sessions = new[] { "guard-01", "merchant-02", "smith-03" }.Select(npc => client.OpenSessionAsync(new OpenSessionRequest { NpcId = npc }).Result.SessionId).ToList();

            var batcher = new TickBatcher(client);
            var results = sessions.Select(s => batcher.Enqueue(new TickEntry { SessionId = s })).ToList();
            batcher.Flush().Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcRuntime/Tick"));
            Assert.AreEqual(1, batcher.RequestsSent);

            invoker.RoutingKeys.Clear();
            invoker.Calls.Clear();
            batcher.OneTickPerNpc = true;
            results = sessions.Select(s => batcher.Enqueue(new TickEntry { SessionId = s })).ToList();
            batcher.Flush().Wait();
            Assert.AreEqual(3, invoker.Calls.Count);
            CollectionAssert.AreEqual(new[] { "guard-01", "merchant-02", "smith-03" }, invoker.RoutingKeys.OrderBy(k => k, StringComparer.Ordinal).ToArray());
            for (int i = 0; i < sessions.Count; i++) Assert.AreEqual(sessions[i], results[i].Result.SessionId);
        }

        [Test]
        public void RoutingKeyCanBeTurnedOff()
        {
            var invoker = Server();
            var options = new NpcClientOptions { SendRoutingKey = false, BearerToken = "t" };
            new NpcRuntimeClient(invoker, options).OpenSessionAsync(new OpenSessionRequest { NpcId = "guard-01" }).Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcRuntime/OpenSession"));
            new NpcAgentClient(invoker, options).StepAsync(new StepRequest { NpcId = "guard-01" }).Wait();
            Assert.IsNull(LastKey(invoker, "/npc.v1.NpcAgent/Step"));
            Assert.AreEqual("Bearer t", invoker.LastOptions.Headers.GetValue("authorization"));
        }

        [Test]
        public void LastReplicaFollowsTheResponses()
        {
            var invoker = Server();
            var runtime = new NpcRuntimeClient(invoker);
            var agent = new NpcAgentClient(invoker);
            Assert.AreEqual("", runtime.LastReplica);
            invoker.ResponseHeaders = new Metadata { { "npcrt-replica", "replica-a" } };
            runtime.HandshakeAsync(new HandshakeRequest()).Wait();
            Assert.AreEqual("replica-a", runtime.LastReplica);
            invoker.ResponseHeaders = new Metadata { { "npcrt-replica", "replica-b" } };
            agent.StepStream(new StepRequest { NpcId = "guard-01" });
            Assert.AreEqual("replica-b", agent.LastReplica);
            invoker.ResponseHeaders = new Metadata();
            runtime.ListModelsAsync().Wait();
            Assert.AreEqual("replica-a", runtime.LastReplica, "a response without the header keeps the last name");
        }

        [Test]
        public void SaveGameBytesRestoreUnderANewIdRoutedByTheNpc()
        {
            var invoker = Server();
            RestoreSessionRequest seen = null;
            invoker.Handler = (method, request) => { if (request is RestoreSessionRequest) seen = (RestoreSessionRequest)request; return Answer(method, request); };
            var client = new NpcRuntimeClient(invoker);
            var opened = client.OpenSessionAsync(new OpenSessionRequest { NpcId = "guard-01" }).Result;
            byte[] saved = client.SaveSessionAsync(opened.SessionId, includeKv: true).Result;
            CollectionAssert.AreEqual(SnapshotBytes, saved);
            var snapshot = client.SaveSessionSnapshotAsync(opened.SessionId, includeKv: true).Result;
            Assert.AreEqual(9u, snapshot.ContextTokens);
            Assert.AreEqual(opened.SessionId, snapshot.SessionId);

            var restored = client.RestoreSessionAsync(saved, "guard-01", "s-guard-01-loaded").Result;
            Assert.AreEqual("s-guard-01-loaded", restored.SessionId);
            Assert.AreEqual("guard-01", LastKey(invoker, "/npc.v1.NpcRuntime/RestoreSession"));
            CollectionAssert.AreEqual(SnapshotBytes, seen.Snapshot.Data.ToByteArray());
            Assert.AreEqual("guard-01", client.Routing.NpcOf("s-guard-01-loaded"));

            var error = Assert.Throws<AggregateException>(() => client.RestoreSessionAsync(new byte[] { 1, 2 }, "guard-01").Wait());
            Assert.AreEqual(StatusCode.InvalidArgument, ((RpcException)error.InnerException).StatusCode);
            int calls = invoker.Calls.Count;
            var empty = Assert.Throws<AggregateException>(() => client.RestoreSessionAsync(new byte[0], "guard-01").Wait());
            Assert.IsTrue(empty.InnerException is ArgumentException, empty.InnerException.GetType().Name);
            Assert.AreEqual(calls, invoker.Calls.Count, "refused before any call");
        }
    }
}
