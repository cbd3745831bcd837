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

        internal CallOptions CallOptionsFor(TimeSpan deadline, CancellationToken cancellationToken)
        {
            Metadata headers = null;
            if (!string.IsNullOrEmpty(BearerToken))
            {
                headers = new Metadata();
                headers.Add("authorization", "Bearer " + BearerToken);
            }
            DateTime? when = deadline > TimeSpan.Zero ? DateTime.UtcNow + deadline : (DateTime?)null;
            return new CallOptions(headers: headers, deadline: when, cancellationToken: cancellationToken);
        }
    }

    /// <summary>Client of npc.v1.NpcRuntime (decoding sessions, frame-sliced Tick, streaming Generate).</summary>
    public sealed class NpcRuntimeClient
    {
        private readonly CallInvoker invoker;
        private readonly NpcClientOptions options;

        public NpcRuntimeClient(CallInvoker invoker, NpcClientOptions options = null)
        {
            if (invoker == null) throw new ArgumentNullException("invoker");
            this.invoker = invoker;
            this.options = options ?? new NpcClientOptions();
        }

        private Task<TResp> Call<TReq, TResp>(Method<TReq, TResp> method, TReq request, CancellationToken ct)
            where TReq : class where TResp : class
        {
            return invoker.AsyncUnaryCall(method, options.Host, options.CallOptionsFor(options.UnaryDeadline, ct), request).ResponseAsync;
        }

        public Task<HandshakeResponse> HandshakeAsync(HandshakeRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Handshake, request, ct); }
        public Task<ListModelsResponse> ListModelsAsync(CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.ListModels, new ListModelsRequest(), ct); }
        public Task<OpenSessionResponse> OpenSessionAsync(OpenSessionRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.OpenSession, request, ct); }
        public Task<TickResponse> TickAsync(TickRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Tick, request, ct); }
        public Task<CancelResponse> CancelAsync(string sessionId, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.Cancel, new CancelRequest { SessionId = sessionId }, ct); }
        public Task<CloseSessionResponse> CloseSessionAsync(string sessionId, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.CloseSession, new CloseSessionRequest { SessionId = sessionId }, ct); }

        /// <summary>Streams chunks; dispose the call (or cancel `ct`) to stop the generation on the server.</summary>
        public AsyncServerStreamingCall<GenerateChunk> Generate(GenerateRequest request, CancellationToken ct = default(CancellationToken))
        {
            return invoker.AsyncServerStreamingCall(NpcGrpc.Generate, options.Host, options.CallOptionsFor(options.StreamDeadline, ct), request);
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
        }

        private Task<TResp> Call<TReq, TResp>(Method<TReq, TResp> method, TReq request, TimeSpan deadline, CancellationToken ct)
            where TReq : class where TResp : class
        {
            return invoker.AsyncUnaryCall(method, options.Host, options.CallOptionsFor(deadline, ct), request).ResponseAsync;
        }

        public Task<RegisterNpcResponse> RegisterNpcAsync(RegisterNpcRequest request, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.RegisterNpc, request, options.UnaryDeadline, ct); }
        public Task<UnregisterNpcResponse> UnregisterNpcAsync(string npcId, bool forget = false, CancellationToken ct = default(CancellationToken)) { return Call(NpcGrpc.UnregisterNpc, new UnregisterNpcRequest { NpcId = npcId, Forget = forget }, options.UnaryDeadline, ct); }

        /// <summary>One perceive-plan-act cycle; the call deadline is the step's deadline_ms plus network slack.</summary>
        public Task<Decision> StepAsync(StepRequest request, CancellationToken ct = default(CancellationToken))
        {
            var deadline = request.DeadlineMs > 0 ? TimeSpan.FromMilliseconds(request.DeadlineMs) + TimeSpan.FromSeconds(1) : options.UnaryDeadline;
            return Call(NpcGrpc.Step, request, deadline, ct);
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
            return invoker.AsyncServerStreamingCall(NpcGrpc.StepStream, options.Host, options.CallOptionsFor(deadline, ct), request);
        }

        /// <summary>An NPC's memories, best first by the agent's retrieval score; an empty query = most recent first.</summary>
        public Task<RecallMemoriesResponse> RecallMemoriesAsync(RecallMemoriesRequest request, CancellationToken ct = default(CancellationToken))
        {
            return Call(NpcGrpc.RecallMemories, request, options.UnaryDeadline, ct);
        }

        /// <summary>`limit` 0 = the server's default (20); at most 1000.</summary>
        public Task<RecallMemoriesResponse> RecallMemoriesAsync(string npcId, string query = "", uint limit = 0, CancellationToken ct = default(CancellationToken))
        {
            return RecallMemoriesAsync(new RecallMemoriesRequest { NpcId = npcId, Query = query ?? "", Limit = limit }, ct);
        }

        /// <summary>Bidirectional stream: write PlayRequests, read one PlayResponse per request, in order.</summary>
        public AsyncDuplexStreamingCall<PlayRequest, PlayResponse> Play(CancellationToken ct = default(CancellationToken))
        {
            return invoker.AsyncDuplexStreamingCall(NpcGrpc.Play, options.Host, options.CallOptionsFor(options.StreamDeadline, ct));
        }
    }
}
