using System;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// gRPC method descriptors of npc.v1.NpcRuntime and npc.v1.NpcAgent, hand-written over Grpc.Core.Api
    /// (Method&lt;TReq, TResp&gt;, Marshallers.Create) so that no protoc gRPC plugin is needed and any
    /// CallInvoker works: Grpc.Net.Client's GrpcChannel.CreateCallInvoker() (with YetAnotherHttpHandler in
    /// Unity) or the legacy Grpc.Core Channel's DefaultCallInvoker. Paths are "/npc.v1.NpcRuntime/Tick" etc.,
    /// as grpc_tools generates them for the Python server.
    /// </summary>
    public static class NpcGrpc
    {
        public const string RuntimeService = "npc.v1.NpcRuntime";
        public const string AgentService = "npc.v1.NpcAgent";

        public static Marshaller<T> MarshallerFor<T>(MessageParser<T> parser) where T : class, IMessage<T>
        {
            return Marshallers.Create<T>(message => message.ToByteArray(), parser.ParseFrom);
        }

        private static Method<TReq, TResp> Unary<TReq, TResp>(string service, string name, MessageParser<TReq> req, MessageParser<TResp> resp)
            where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp>
        {
            return new Method<TReq, TResp>(MethodType.Unary, service, name, MarshallerFor(req), MarshallerFor(resp));
        }

        public static readonly Method<HandshakeRequest, HandshakeResponse> Handshake = Unary(RuntimeService, "Handshake", HandshakeRequest.Parser, HandshakeResponse.Parser);
        public static readonly Method<ListModelsRequest, ListModelsResponse> ListModels = Unary(RuntimeService, "ListModels", ListModelsRequest.Parser, ListModelsResponse.Parser);
        public static readonly Method<OpenSessionRequest, OpenSessionResponse> OpenSession = Unary(RuntimeService, "OpenSession", OpenSessionRequest.Parser, OpenSessionResponse.Parser);
        public static readonly Method<TickRequest, TickResponse> Tick = Unary(RuntimeService, "Tick", TickRequest.Parser, TickResponse.Parser);
        public static readonly Method<GenerateRequest, GenerateChunk> Generate = new Method<GenerateRequest, GenerateChunk>(
            MethodType.ServerStreaming, RuntimeService, "Generate", MarshallerFor(GenerateRequest.Parser), MarshallerFor(GenerateChunk.Parser));
        public static readonly Method<CancelRequest, CancelResponse> Cancel = Unary(RuntimeService, "Cancel", CancelRequest.Parser, CancelResponse.Parser);
        public static readonly Method<CloseSessionRequest, CloseSessionResponse> CloseSession = Unary(RuntimeService, "CloseSession", CloseSessionRequest.Parser, CloseSessionResponse.Parser);
        public static readonly Method<SaveSessionRequest, SessionSnapshot> SaveSession = Unary(RuntimeService, "SaveSession", SaveSessionRequest.Parser, SessionSnapshot.Parser);
        public static readonly Method<RestoreSessionRequest, OpenSessionResponse> RestoreSession = Unary(RuntimeService, "RestoreSession", RestoreSessionRequest.Parser, OpenSessionResponse.Parser);

        public static readonly Method<RegisterNpcRequest, RegisterNpcResponse> RegisterNpc = Unary(AgentService, "RegisterNpc", RegisterNpcRequest.Parser, RegisterNpcResponse.Parser);
        public static readonly Method<UnregisterNpcRequest, UnregisterNpcResponse> UnregisterNpc = Unary(AgentService, "UnregisterNpc", UnregisterNpcRequest.Parser, UnregisterNpcResponse.Parser);
        public static readonly Method<StepRequest, Decision> Step = Unary(AgentService, "Step", StepRequest.Parser, Decision.Parser);
        public static readonly Method<PlayRequest, PlayResponse> Play = new Method<PlayRequest, PlayResponse>(
            MethodType.DuplexStreaming, AgentService, "Play", MarshallerFor(PlayRequest.Parser), MarshallerFor(PlayResponse.Parser));
        public static readonly Method<StepRequest, StepChunk> StepStream = new Method<StepRequest, StepChunk>(
            MethodType.ServerStreaming, AgentService, "StepStream", MarshallerFor(StepRequest.Parser), MarshallerFor(StepChunk.Parser));
        public static readonly Method<RecallMemoriesRequest, RecallMemoriesResponse> RecallMemories = Unary(AgentService, "RecallMemories", RecallMemoriesRequest.Parser, RecallMemoriesResponse.Parser);
    }

    /// <summary>Connection settings shared by both clients.</summary>
    public sealed class NpcClientOptions
    {
        /// <summary>Sent as "authorization: Bearer &lt;token&gt;" metadata when not empty.</summary>
        public string BearerToken = "";
        /// <summary>Deadline of unary calls (Tick, Step...).</summary>
        public TimeSpan UnaryDeadline = TimeSpan.FromSeconds(5);
        /// <summary>Deadline of streams (Generate, Play); TimeSpan.Zero = none.</summary>
        public TimeSpan StreamDeadline = TimeSpan.Zero;
        /// <summary>Deadline of a whole StepStream (the action and the whole line; at least the step's
        /// deadline_ms plus a second); TimeSpan.Zero = none. A server that stalls then ends it with DEADLINE_EXCEEDED.</summary>
        public TimeSpan StepStreamDeadline = TimeSpan.FromSeconds(60);
        /// <summary>Host override passed to the CallInvoker (null = the channel's).</summary>
        public string Host;
        /// <summary>Fleet routing (docs/deploy.md): send "x-npc-id: &lt;npc id&gt;" metadata on every call that concerns
        /// one NPC, the key a proxy hashes on. Off: no routing key is sent.</summary>
        public bool SendRoutingKey = true;

        internal CallOptions CallOptionsFor(TimeSpan deadline, CancellationToken cancellationToken, string npcId = null)
        {
            Metadata headers = null;
            if (!string.IsNullOrEmpty(BearerToken))
            {
                headers = new Metadata();
                headers.Add("authorization", "Bearer " + BearerToken);
            }
            if (SendRoutingKey && !string.IsNullOrEmpty(npcId))
            {
                if (headers == null) headers = new Metadata();
                headers.Add(NpcRouting.RoutingKeyHeader, npcId);
            }
            DateTime? when = deadline > TimeSpan.Zero ? DateTime.UtcNow + deadline : (DateTime?)null;
            return new CallOptions(headers: headers, deadline: when, cancellationToken: cancellationToken);
        }
    }

    /// <summary>
    /// Client of npc.v1.NpcRuntime (decoding sessions, frame-sliced Tick, streaming Generate, snapshots). Calls about
    /// one session carry its NPC's routing key (x-npc-id; <see cref="Routing"/> maps sessions to NPCs); a Tick of
    /// several NPCs carries none. <see cref="LastReplica"/> names the replica of the latest response.
    /// </summary>
    public sealed class NpcRuntimeClient
    {
        private readonly CallInvoker invoker;
        private readonly NpcClientOptions options;

        public NpcRuntimeClient(CallInvoker invoker, NpcClientOptions options = null)
        {
            if (invoker == null) throw new ArgumentNullException("invoker");
            this.invoker = invoker;
            this.options = options ?? new NpcClientOptions();
            Routing = new NpcRouting();
        }

        /// <summary>Session → NPC map (routing keys) and the last replica.</summary>
        public NpcRouting Routing { get; private set; }
        /// <summary><c>npcrt-replica</c> of the latest response, for logs; "" before any.</summary>
        public string LastReplica { get { return Routing.LastReplica; } }

        private async Task<TResp> Call<TReq, TResp>(Method<TReq, TResp> method, TReq request, string npcId, CancellationToken ct)
            where TReq : class where TResp : class
        {
            var call = invoker.AsyncUnaryCall(method, options.Host, options.CallOptionsFor(options.UnaryDeadline, ct, npcId), request);
            try { return await call.ResponseAsync.ConfigureAwait(false); }
            finally { Routing.NoteReplica(call.ResponseHeadersAsync); }
        }

        public Task<HandshakeResponse> HandshakeAsync(HandshakeRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Handshake, request, null, ct); }
        public Task<ListModelsResponse> ListModelsAsync(CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.ListModels, new ListModelsRequest(), null, ct); }

        /// <summary>Opens a session routed by request.npc_id; later calls about it carry the same key.</summary>
        public async Task<OpenSessionResponse> OpenSessionAsync(OpenSessionRequest request, CancellationToken ct = default(CancellationToken))
        {
            var response = await Call(NpcGrpc.OpenSession, request, request.NpcId, ct).ConfigureAwait(false);
            Routing.Remember(response.SessionId, request.NpcId);
            return response;
        }

        /// <summary>Routed by its sessions' NPC when they all belong to one NPC; no routing key otherwise.</summary>
        public Task<TickResponse> TickAsync(TickRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Tick, request, Routing.TickKey(request), ct); }
        public Task<CancelResponse> CancelAsync(string sessionId, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Cancel, new CancelRequest { SessionId = sessionId }, Routing.NpcOf(sessionId), ct); }

        public async Task<CloseSessionResponse> CloseSessionAsync(string sessionId, CancellationToken ct = default(CancellationToken))
        {
            try
            {
                var response = await Call(NpcGrpc.CloseSession, new CloseSessionRequest { SessionId = sessionId }, Routing.NpcOf(sessionId), ct).ConfigureAwait(false);
                Routing.Forget(sessionId);
                return response;
            }
            catch (RpcException error) when (error.StatusCode == StatusCode.NotFound)
            {
                Routing.Forget(sessionId);
                throw;
            }
        }

        /// <summary>
        /// A snapshot of the session (it stays open): tokens, sampling and RNG state, limits and, with
        /// <paramref name="includeKv"/>, its KV cache (much larger; the restore then skips the re-prefill). A turn
        /// decoding under a constraint is FAILED_PRECONDITION: snapshot after the turn ends.
        /// </summary>
        public Task<SessionSnapshot> SaveSessionSnapshotAsync(string sessionId, bool includeKv = false, CancellationToken ct = default(CancellationToken))
        {
            return Call(NpcGrpc.SaveSession, new SaveSessionRequest { SessionId = sessionId, IncludeKv = includeKv }, Routing.NpcOf(sessionId), ct);
        }

        /// <summary>Save-game bytes of a session (<see cref="SaveSessionSnapshotAsync"/>'s data): keep them in the save file.</summary>
        public async Task<byte[]> SaveSessionAsync(string sessionId, bool includeKv = false, CancellationToken ct = default(CancellationToken))
        {
            var snapshot = await SaveSessionSnapshotAsync(sessionId, includeKv, ct).ConfigureAwait(false);
            return snapshot.Data.ToByteArray();
        }

        /// <summary>
        /// Re-creates a session from <see cref="SaveSessionAsync"/> bytes, on this server or another running the same
        /// model package; greedy decoding continues with the tokens the saved session would have produced.
        /// <paramref name="npcId"/>: the NPC it belongs to (its routing key now and for its later calls; "" = none).
        /// <paramref name="sessionId"/>: the restored session's id ("" = the saved one's; ALREADY_EXISTS while that is
        /// open). Damaged or foreign bytes: INVALID_ARGUMENT; another model: FAILED_PRECONDITION. A session saved
        /// between turns comes back finished: its next turn starts with a TickEntry.new_input.
        /// </summary>
        public async Task<OpenSessionResponse> RestoreSessionAsync(byte[] snapshot, string npcId, string sessionId = "", CancellationToken ct = default(CancellationToken))
        {
            if (snapshot == null || snapshot.Length == 0) throw new ArgumentException("the snapshot is empty; pass the bytes SaveSessionAsync returned", "snapshot");
            var request = new RestoreSessionRequest { Snapshot = new SessionSnapshot { Data = ByteString.CopyFrom(snapshot) }, SessionId = sessionId ?? "" };
            var response = await Call(NpcGrpc.RestoreSession, request, npcId, ct).ConfigureAwait(false);
            Routing.Remember(response.SessionId, npcId);
            return response;
        }

        /// <summary>Streams chunks; dispose the call (or cancel `ct`) to stop the generation on the server.</summary>
        public AsyncServerStreamingCall<GenerateChunk> Generate(GenerateRequest request, CancellationToken ct = default(CancellationToken))
        {
            var call = invoker.AsyncServerStreamingCall(NpcGrpc.Generate, options.Host, options.CallOptionsFor(options.StreamDeadline, ct, Routing.NpcOf(request.SessionId)), request);
            Routing.NoteReplica(call.ResponseHeadersAsync);
            return call;
        }
    }

    /// <summary>Client of npc.v1.NpcAgent (NPC brains on the server).</summary>
    public sealed class NpcAgentClient
    {
        private readonly CallInvoker invoker;
        private readonly NpcClientOptions options;

        public NpcAgentClient(CallInvoker invoker, NpcClientOptions options = null)
        {
            if (invoker == null) throw new ArgumentNullException("invoker");
            this.invoker = invoker;
            this.options = options ?? new NpcClientOptions();
            Routing = new NpcRouting();
        }

        /// <summary>The last replica (every NpcAgent call is routed by its request's npc_id).</summary>
        public NpcRouting Routing { get; private set; }
        /// <summary><c>npcrt-replica</c> of the latest response, for logs; "" before any.</summary>
        public string LastReplica { get { return Routing.LastReplica; } }

        private async Task<TResp> Call<TReq, TResp>(Method<TReq, TResp> method, TReq request, string npcId, TimeSpan deadline, CancellationToken ct)
            where TReq : class where TResp : class
        {
            var call = invoker.AsyncUnaryCall(method, options.Host, options.CallOptionsFor(deadline, ct, npcId), request);
            try { return await call.ResponseAsync.ConfigureAwait(false); }
            finally { Routing.NoteReplica(call.ResponseHeadersAsync); }
        }

        public Task<RegisterNpcResponse> RegisterNpcAsync(RegisterNpcRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.RegisterNpc, request, request.NpcId, options.UnaryDeadline, ct); }
        public Task<UnregisterNpcResponse> UnregisterNpcAsync(string npcId, bool forget = false, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.UnregisterNpc, new UnregisterNpcRequest { NpcId = npcId, Forget = forget }, npcId, options.UnaryDeadline, ct); }

        /// <summary>One perceive-plan-act cycle; the call deadline is the step's deadline_ms plus network slack.</summary>
        public Task<Decision> StepAsync(StepRequest request, CancellationToken ct = default(CancellationToken))
        {
            var deadline = request.DeadlineMs > 0 ? TimeSpan.FromMilliseconds(request.DeadlineMs) + TimeSpan.FromSeconds(1) : options.UnaryDeadline;
            return Call(NpcGrpc.Step, request, request.NpcId, deadline, ct);
        }

        /// <summary>
        /// One step whose answer streams: one StepChunk.action first, then dialogue deltas, then StepChunk.done
        /// with the whole Decision. Read it with <see cref="NpcDialogueStream"/> (action / sentence / done
        /// events); dispose the call (or cancel `ct`) to stop it. Deadline: NpcClientOptions.StepStreamDeadline.
        /// </summary>
        public AsyncServerStreamingCall<StepChunk> StepStream(StepRequest request, CancellationToken ct = default(CancellationToken))
        {
            var deadline = options.StepStreamDeadline;
            var stepDeadline = TimeSpan.FromMilliseconds(Math.Max(0f, request.DeadlineMs)) + TimeSpan.FromSeconds(1);
            if (deadline > TimeSpan.Zero && deadline < stepDeadline) deadline = stepDeadline;
            var call = invoker.AsyncServerStreamingCall(NpcGrpc.StepStream, options.Host, options.CallOptionsFor(deadline, ct, request.NpcId), request);
            Routing.NoteReplica(call.ResponseHeadersAsync);
            return call;
        }

        /// <summary>An NPC's memories, best first by the agent's retrieval score; an empty query = most recent first.</summary>
        public Task<RecallMemoriesResponse> RecallMemoriesAsync(RecallMemoriesRequest request, CancellationToken ct = default(CancellationToken))
        {
            return Call(NpcGrpc.RecallMemories, request, request.NpcId, options.UnaryDeadline, ct);
        }

        /// <summary>`limit` 0 = the server's default (20); at most 1000.</summary>
        public Task<RecallMemoriesResponse> RecallMemoriesAsync(string npcId, string query = "", uint limit = 0, CancellationToken ct = default(CancellationToken))
        {
            return RecallMemoriesAsync(new RecallMemoriesRequest { NpcId = npcId, Query = query ?? "", Limit = limit }, ct);
        }

        /// <summary>Bidirectional stream: write PlayRequests, read one PlayResponse per request, in order. One stream
        /// carries many NPCs, so it has no routing key unless <paramref name="routingNpcId"/> names one: behind a
        /// fleet proxy, open one stream per NPC (or per group of NPCs you route together).</summary>
        public AsyncDuplexStreamingCall<PlayRequest, PlayResponse> Play(CancellationToken ct = default(CancellationToken), string routingNpcId = null)
        {
            var call = invoker.AsyncDuplexStreamingCall(NpcGrpc.Play, options.Host, options.CallOptionsFor(options.StreamDeadline, ct, routingNpcId));
            Routing.NoteReplica(call.ResponseHeadersAsync);
            return call;
        }
    }
}
