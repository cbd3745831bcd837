#include "npc/npc_client.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <grpcpp/grpcpp.h>

#include "npc_proto/v1/agent.grpc.pb.h"
#include "npc/round_trip_budget.h"
#include "npc_proto/v1/runtime.grpc.pb.h"
#include "proto_convert.h"

namespace npc {

// ---- client ------------------------------------------------------------------------------------------

namespace {

Status FromGrpc(const grpc::Status& status) {
  Status out;
  out.code = static_cast<StatusCode>(status.error_code());
  out.message = status.error_message();
  return out;
}

Status MissingOutput(const char* what) {
  return Status{StatusCode::kInvalidArgument, std::string(what) + ": output pointer must not be null"};
}

const std::string kNoNpc;  // calls that concern no single NPC: no routing key

}  // namespace

struct NpcRuntimeClient::Impl {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::NpcRuntime::Stub> runtime;
  std::unique_ptr<v1::NpcAgent::Stub> agent;

  mutable std::mutex mutex;  // guards the three fields below (calls run on any worker thread)
  std::string last_replica;
  std::unordered_map<std::string, std::string> session_npc;  // session id -> npc id (routing key)
  RoundTripBudget round_trip;                                 // Tick budgets: the transport's share

  // A fresh context per call: deadline, bearer token, and the NPC's routing key.
  void Prepare(grpc::ClientContext* context, double deadline_ms, const std::string& npc_id) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(deadline_ms * 1000.0)));
    if (!options.bearer_token.empty()) context->AddMetadata("authorization", "Bearer " + options.bearer_token);
    if (options.send_routing_key && !npc_id.empty()) context->AddMetadata(kRoutingKeyHeader, npc_id);
  }

  // After a finished call (its initial metadata received): which replica answered. An error sent without
  // a response (trailers-only) carries it in the trailing metadata.
  void NoteReplica(const grpc::ClientContext& context) {
    for (const auto* metadata : {&context.GetServerInitialMetadata(), &context.GetServerTrailingMetadata()}) {
      const auto found = metadata->find(kReplicaHeader);
      if (found != metadata->end()) {
        std::lock_guard<std::mutex> lock(mutex);
        last_replica.assign(found->second.data(), found->second.size());
        return;
      }
    }
  }

  std::string NpcOf(const std::string& session_id) const {
    std::lock_guard<std::mutex> lock(mutex);
    const auto found = session_npc.find(session_id);
    return found == session_npc.end() ? std::string() : found->second;
  }

  void Remember(const std::string& session_id, const std::string& npc_id) {
    std::lock_guard<std::mutex> lock(mutex);
    if (npc_id.empty()) {
      session_npc.erase(session_id);
    } else {
      session_npc[session_id] = npc_id;
    }
  }

  // The routing key of a Tick: the NPC of its sessions when they all belong to one NPC, else none (the
  // proxy then picks a replica; a fleet client ticks per NPC instead).
  std::string TickKey(const std::vector<TickEntryOptions>& entries) const {
    std::lock_guard<std::mutex> lock(mutex);
    std::string key;
    for (const auto& entry : entries) {
      const auto found = session_npc.find(entry.session_id);
      if (found == session_npc.end() || (!key.empty() && key != found->second)) return std::string();
      key = found->second;
    }
    return key;
  }

  // One unary call: context, routing key, replica noted, status converted.
  template <typename Request, typename Response, typename Stub>
  Status Unary(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
               const Request& request, Response* response, const std::string& npc_id, double deadline_ms) {
    grpc::ClientContext context;
    Prepare(&context, deadline_ms, npc_id);
    const grpc::Status status = (stub->*method)(&context, request, response);
    NoteReplica(context);
    return FromGrpc(status);
  }
};

NpcRuntimeClient::NpcRuntimeClient(const ClientOptions& options) : impl_(new Impl) {
  impl_->options = options;
  // Plaintext channel: the runtime server on loopback / LAN. (TLS: grpc::SslCredentials here.)
  impl_->channel = grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials());
  impl_->runtime = v1::NpcRuntime::NewStub(impl_->channel);
  impl_->agent = v1::NpcAgent::NewStub(impl_->channel);
}

NpcRuntimeClient::~NpcRuntimeClient() = default;

const ClientOptions& NpcRuntimeClient::options() const { return impl_->options; }

std::string NpcRuntimeClient::last_replica() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->last_replica;
}

std::string NpcRuntimeClient::NpcOfSession(const std::string& session_id) const { return impl_->NpcOf(session_id); }

void NpcRuntimeClient::SetSessionNpc(const std::string& session_id, const std::string& npc_id) {
  impl_->Remember(session_id, npc_id);
}

Status NpcRuntimeClient::Handshake(HandshakeInfo* out) {
  if (!out) return MissingOutput("Handshake");
  v1::HandshakeRequest request;
  request.set_protocol_version("1");
  request.set_client_name(impl_->options.client_name);
  v1::HandshakeResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::Handshake, request, &response,
                                     kNoNpc, impl_->options.deadline_ms);
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::ListModels(std::vector<ModelInfo>* out) {
  if (!out) return MissingOutput("ListModels");
  v1::ListModelsResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::ListModels, v1::ListModelsRequest(),
                                     &response, kNoNpc, impl_->options.deadline_ms);
  if (status.ok()) {
    out->assign(static_cast<size_t>(response.models_size()), ModelInfo());
    for (int i = 0; i < response.models_size(); ++i) convert::FromProto(response.models(i), &(*out)[static_cast<size_t>(i)]);
  }
  return status;
}

Status NpcRuntimeClient::OpenSession(const OpenSessionOptions& options, OpenedSession* out) {
  if (!out) return MissingOutput("OpenSession");
  v1::OpenSessionRequest request;
  convert::ToProto(options, &request);
  v1::OpenSessionResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::OpenSession, request, &response,
                                     options.npc_id, impl_->options.deadline_ms);
  if (status.ok()) {
    convert::FromProto(response, out);
    impl_->Remember(out->session_id, options.npc_id);
  }
  return status;
}

Status NpcRuntimeClient::Tick(const std::vector<TickEntryOptions>& entries, TickOutcome* out) {
  if (!out) return MissingOutput("Tick");
  v1::TickRequest request;
  convert::ToProto(entries, &request);
  const bool round_trip = impl_->options.round_trip_budget;
  if (round_trip) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (auto& entry : *request.mutable_entries()) entry.set_budget_ms(impl_->round_trip.ServerBudgetMs(entry.budget_ms()));
  }
  v1::TickResponse response;
  const auto sent = std::chrono::steady_clock::now();
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::Tick, request, &response,
                                     impl_->TickKey(entries), impl_->options.deadline_ms);
  if (status.ok()) {
    if (round_trip) {
      const double rtt_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
      std::lock_guard<std::mutex> lock(impl_->mutex);
      impl_->round_trip.Observe(rtt_ms, response.tick_ms());
    }
    convert::FromProto(response, out);
  }
  return status;
}

double NpcRuntimeClient::round_trip_allowance_ms() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->options.round_trip_budget ? impl_->round_trip.AllowanceMs() : 0.0;
}

Status NpcRuntimeClient::Generate(const GenerateOptions& options,
                                  const std::function<bool(const GenerateChunkInfo&)>& on_chunk) {
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.stream_deadline_ms, impl_->NpcOf(options.session_id));
  v1::GenerateRequest request;
  convert::ToProto(options, &request);
  std::unique_ptr<grpc::ClientReader<v1::GenerateChunk>> reader(impl_->runtime->Generate(&context, request));
  v1::GenerateChunk chunk;
  GenerateChunkInfo info;
  while (reader->Read(&chunk)) {
    convert::FromProto(chunk, &info);
    if (on_chunk && !on_chunk(info)) {
      // Closing the stream early cancels the generation server-side (contract: Generate).
      context.TryCancel();
      reader->Finish();
      impl_->NoteReplica(context);
      return Status{StatusCode::kCancelled, "stopped by the caller"};
    }
    if (info.finished) break;
  }
  const Status status = FromGrpc(reader->Finish());
  impl_->NoteReplica(context);
  return status;
}

Status NpcRuntimeClient::Cancel(const std::string& session_id, bool* was_running) {
  v1::CancelRequest request;
  request.set_session_id(session_id);
  v1::CancelResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::Cancel, request, &response,
                                     impl_->NpcOf(session_id), impl_->options.deadline_ms);
  if (status.ok() && was_running) *was_running = response.was_running();
  return status;
}

Status NpcRuntimeClient::CloseSession(const std::string& session_id, uint32_t* context_tokens) {
  v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  v1::CloseSessionResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::CloseSession, request, &response,
                                     impl_->NpcOf(session_id), impl_->options.deadline_ms);
  if (status.ok() || status.code == StatusCode::kNotFound) impl_->Remember(session_id, std::string());
  if (status.ok() && context_tokens) *context_tokens = response.context_tokens();
  return status;
}

Status NpcRuntimeClient::SaveSession(const std::string& session_id, bool include_kv, SessionSnapshotInfo* out) {
  if (!out) return MissingOutput("SaveSession");
  v1::SaveSessionRequest request;
  request.set_session_id(session_id);
  request.set_include_kv(include_kv);
  v1::SessionSnapshot response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::SaveSession, request, &response,
                                     impl_->NpcOf(session_id), impl_->options.deadline_ms);
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::RestoreSession(const RestoreSessionOptions& options, OpenedSession* out) {
  if (!out) return MissingOutput("RestoreSession");
  if (options.snapshot.empty()) {
    return Status{StatusCode::kInvalidArgument, "RestoreSession: snapshot is empty (pass SaveSession's data)"};
  }
  v1::RestoreSessionRequest request;
  convert::ToProto(options, &request);
  v1::OpenSessionResponse response;
  const Status status = impl_->Unary(impl_->runtime.get(), &v1::NpcRuntime::Stub::RestoreSession, request, &response,
                                     options.npc_id, impl_->options.deadline_ms);
  if (status.ok()) {
    convert::FromProto(response, out);
    impl_->Remember(out->session_id, options.npc_id);
  }
  return status;
}

Status NpcRuntimeClient::RegisterNpc(const RegisterNpcOptions& options, RegisteredNpc* out) {
  if (!out) return MissingOutput("RegisterNpc");
  v1::RegisterNpcRequest request;
  convert::ToProto(options, &request);
  v1::RegisterNpcResponse response;
  const Status status = impl_->Unary(impl_->agent.get(), &v1::NpcAgent::Stub::RegisterNpc, request, &response,
                                     options.npc_id, impl_->options.deadline_ms);
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::UnregisterNpc(const std::string& npc_id, bool forget) {
  v1::UnregisterNpcRequest request;
  request.set_npc_id(npc_id);
  request.set_forget(forget);
  v1::UnregisterNpcResponse response;
  return impl_->Unary(impl_->agent.get(), &v1::NpcAgent::Stub::UnregisterNpc, request, &response, npc_id,
                      impl_->options.deadline_ms);
}

Status NpcRuntimeClient::Step(const StepOptions& options, DecisionInfo* out) {
  if (!out) return MissingOutput("Step");
  v1::StepRequest request;
  convert::ToProto(options, &request);
  v1::Decision response;
  // The server answers within deadline_ms (falling back to the FSM); leave room for the transport.
  const Status status = impl_->Unary(impl_->agent.get(), &v1::NpcAgent::Stub::Step, request, &response, options.npc_id,
                                     std::max(impl_->options.deadline_ms, static_cast<double>(options.deadline_ms) + 1000.0));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::StepStream(const StepOptions& options, const StepStreamCallbacks& callbacks,
                                    CancelToken* cancel) {
  grpc::ClientContext context;
  impl_->Prepare(&context, std::max(impl_->options.stream_deadline_ms, static_cast<double>(options.deadline_ms) + 1000.0),
                 options.npc_id);
  v1::StepRequest request;
  convert::ToProto(options, &request);
  // Detached before `context` goes away (declared after it, destroyed first).
  struct Attachment {
    CancelToken* token;
    ~Attachment() {
      if (token) token->Detach();
    }
  } attachment{cancel};
  if (cancel) cancel->Attach([&context] { context.TryCancel(); });
  const auto cancelled = [cancel] { return cancel && cancel->cancelled(); };

  std::unique_ptr<grpc::ClientReader<v1::StepChunk>> reader(impl_->agent->StepStream(&context, request));
  // Every return below has called Finish: the initial metadata is in by then.
  const auto finish = [&]() {
    const grpc::Status status = reader->Finish();
    impl_->NoteReplica(context);
    return FromGrpc(status);
  };
  StepStreamAssembler assembler(callbacks);
  v1::StepChunk chunk;
  Status protocol;
  while (!cancelled() && reader->Read(&chunk)) {
    if (cancelled()) break;
    protocol = convert::Feed(chunk, &assembler);
    if (!protocol.ok() || assembler.done()) break;
  }
  if (cancelled()) {
    context.TryCancel();
    finish();
    return Status{StatusCode::kCancelled, "StepStream stopped by the caller"};
  }
  if (!protocol.ok()) {
    context.TryCancel();  // stop the server decoding a line nobody reads
    finish();
    return protocol;
  }
  if (assembler.done()) {
    // Nothing is read after done; the server closes the stream right after it (drain to its status).
    if (reader->Read(&chunk)) context.TryCancel();
    finish();
    return Status::Ok();
  }
  const Status status = finish();
  return status.ok() ? assembler.End() : status;
}

Status NpcRuntimeClient::RecallMemories(const RecallOptions& options, std::vector<MemoryInfo>* out) {
  if (!out) return MissingOutput("RecallMemories");
  v1::RecallMemoriesRequest request;
  convert::ToProto(options, &request);
  v1::RecallMemoriesResponse response;
  const Status status = impl_->Unary(impl_->agent.get(), &v1::NpcAgent::Stub::RecallMemories, request, &response,
                                     options.npc_id, impl_->options.deadline_ms);
  if (status.ok()) {
    out->assign(static_cast<size_t>(response.memories_size()), MemoryInfo());
    for (int i = 0; i < response.memories_size(); ++i) convert::FromProto(response.memories(i), &(*out)[static_cast<size_t>(i)]);
  }
  return status;
}

}  // namespace npc
