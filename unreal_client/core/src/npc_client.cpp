#include "npc/npc_client.h"

#include <algorithm>
#include <chrono>
#include <grpcpp/grpcpp.h>

#include "npc_proto/v1/agent.grpc.pb.h"
#include "npc_proto/v1/runtime.grpc.pb.h"
#include "proto_convert.h"

namespace npc {

// ---- conversions -------------------------------------------------------------------------------------
namespace convert {

void ToProto(const SamplingOptions& in, v1::SamplingParams* out) {
  out->set_temperature(in.temperature);
  out->set_top_k(in.top_k);
  out->set_top_p(in.top_p);
  out->set_repetition_penalty(in.repetition_penalty);
  out->set_seed(in.seed);
  for (const auto& s : in.stop) out->add_stop(s);
}

void ToProto(const ConstraintOptions& in, v1::Constraint* out) {
  if (!in.allowed.empty()) {
    for (const auto& s : in.allowed) out->mutable_allowed()->add_sequences(s);
  } else if (!in.json_schema.empty()) {
    out->set_json_schema(in.json_schema);
  }
}

void ToProto(const OpenSessionOptions& in, v1::OpenSessionRequest* out) {
  out->set_model(in.model);
  out->set_npc_id(in.npc_id);
  out->set_prefix(in.prefix);
  out->set_prompt(in.prompt);
  const SamplingOptions defaults;
  if (in.sampling.temperature != defaults.temperature || in.sampling.top_k || in.sampling.top_p != 0.0f ||
      in.sampling.repetition_penalty != 0.0f || in.sampling.seed || !in.sampling.stop.empty()) {
    ToProto(in.sampling, out->mutable_sampling());
  }
  if (in.max_new_tokens || in.max_context || in.idle_timeout_s) {
    out->mutable_limits()->set_max_new_tokens(in.max_new_tokens);
    out->mutable_limits()->set_max_context(in.max_context);
    out->mutable_limits()->set_idle_timeout_s(in.idle_timeout_s);
  }
  if (!in.constraint.empty()) ToProto(in.constraint, out->mutable_constraint());
  out->set_apply_chat_template(in.apply_chat_template);
}

void ToProto(const TickEntryOptions& in, v1::TickEntry* out) {
  out->set_session_id(in.session_id);
  out->set_budget_ms(in.budget_ms);
  out->set_max_tokens(in.max_tokens);
  out->set_new_input(in.new_input);
  if (!in.constraint.empty()) ToProto(in.constraint, out->mutable_constraint());
}

void ToProto(const std::vector<TickEntryOptions>& in, v1::TickRequest* out) {
  for (const auto& entry : in) ToProto(entry, out->add_entries());
}

void ToProto(const GenerateOptions& in, v1::GenerateRequest* out) {
  out->set_session_id(in.session_id);
  out->set_input(in.input);
  out->set_max_tokens(in.max_tokens);
  if (!in.constraint.empty()) ToProto(in.constraint, out->mutable_constraint());
}

void ToProto(const RegisterNpcOptions& in, v1::RegisterNpcRequest* out) {
  out->set_npc_id(in.npc_id);
  auto* persona = out->mutable_persona();
  persona->set_name(in.persona.name);
  persona->set_role(in.persona.role);
  for (const auto& t : in.persona.traits) persona->add_traits(t);
  persona->set_backstory(in.persona.backstory);
  if (!in.fsm_name.empty()) {
    out->set_fsm_name(in.fsm_name);
  } else if (!in.fsm_yaml.empty()) {
    out->set_fsm_yaml(in.fsm_yaml);
  }
  for (const auto& m : in.memories) {
    auto* seed = out->add_memories();
    seed->set_text(m.first);
    seed->set_importance(m.second);
  }
  out->set_replace(in.replace);
}

void ToProto(const StepOptions& in, v1::StepRequest* out) {
  out->set_npc_id(in.npc_id);
  auto* obs = out->mutable_observation();
  obs->set_game_time_s(in.game_time_s);
  for (const auto& kv : in.values) (*obs->mutable_values())[kv.first] = kv.second;
  for (const auto& kv : in.tags) (*obs->mutable_tags())[kv.first] = kv.second;
  obs->set_player_utterance(in.player_utterance);
  for (const auto& e : in.events) {
    auto* ev = out->add_events();
    ev->set_kind(e.kind);
    ev->set_description(e.description);
    ev->set_importance(e.importance);
    ev->set_story_critical(e.story_critical);
    for (const auto& kv : e.attributes) (*ev->mutable_attributes())[kv.first] = kv.second;
  }
  out->set_deadline_ms(in.deadline_ms);
}

void FromProto(const v1::HandshakeResponse& in, HandshakeInfo* out) {
  out->protocol_version = in.protocol_version();
  out->server_version = in.server_version();
  out->capabilities.assign(in.capabilities().begin(), in.capabilities().end());
  out->max_tick_entries = in.max_tick_entries();
  out->max_sessions = in.max_sessions();
}

void FromProto(const v1::ModelInfo& in, ModelInfo* out) {
  out->name = in.name();
  out->kind = in.kind();
  out->precision = in.precision();
  out->target = in.target();
  out->context_length = in.context_length();
  out->vocab_size = in.vocab_size();
}

void FromProto(const v1::OpenSessionResponse& in, OpenedSession* out) {
  out->session_id = in.session_id();
  out->prompt_tokens = in.prompt_tokens();
  out->cached_prefix_tokens = in.cached_prefix_tokens();
}

void FromProto(const v1::TickResult& in, TickResultInfo* out) {
  out->session_id = in.session_id();
  out->token_ids.assign(in.token_ids().begin(), in.token_ids().end());
  out->text_delta = in.text_delta();
  out->finished = in.finished();
  out->finish_reason = static_cast<FinishReason>(in.finish_reason());
  out->error = in.error();
  out->error_code = in.error_code();
  out->tick_ms = in.stats().tick_ms();
  out->steps = in.stats().steps();
  out->max_batch = in.stats().max_batch();
  out->pending_prefill_tokens = in.stats().pending_prefill_tokens();
  out->context_tokens = in.stats().context_tokens();
}

void FromProto(const v1::TickResponse& in, TickOutcome* out) {
  out->results.clear();
  out->results.resize(static_cast<size_t>(in.results_size()));
  for (int i = 0; i < in.results_size(); ++i) FromProto(in.results(i), &out->results[static_cast<size_t>(i)]);
  out->tick_ms = in.tick_ms();
}

void FromProto(const v1::GenerateChunk& in, GenerateChunkInfo* out) {
  out->token_ids.assign(in.token_ids().begin(), in.token_ids().end());
  out->text = in.text();
  out->finished = in.finished();
  out->finish_reason = static_cast<FinishReason>(in.finish_reason());
}

void FromProto(const v1::RegisterNpcResponse& in, RegisteredNpc* out) {
  out->npc_id = in.npc_id();
  out->state = in.state();
  out->allowed_actions.assign(in.allowed_actions().begin(), in.allowed_actions().end());
}

void FromProto(const v1::Decision& in, DecisionInfo* out) {
  out->npc_id = in.npc_id();
  out->state = in.state();
  out->action = in.action();
  out->arguments.clear();
  for (const auto& kv : in.arguments()) out->arguments[kv.first] = kv.second;
  out->dialogue = in.dialogue();
  out->escalated = in.escalated();
  out->reason = in.reason();
  out->confidence = in.confidence();
  out->source = static_cast<DecisionSource>(in.source());
  out->allowed_actions.assign(in.allowed_actions().begin(), in.allowed_actions().end());
  out->latency_ms = in.latency_ms();
  out->memories_written = in.memories_written();
  out->rejected_action = in.rejected_action();
}

void ToProto(const RecallOptions& in, v1::RecallMemoriesRequest* out) {
  out->set_npc_id(in.npc_id);
  out->set_query(in.query);
  out->set_limit(in.limit);
}

void FromProto(const v1::ActionChosen& in, ActionChosenInfo* out) {
  out->npc_id = in.npc_id();
  out->state = in.state();
  out->action = in.action();
  out->arguments.clear();
  for (const auto& kv : in.arguments()) out->arguments[kv.first] = kv.second;
  out->escalated = in.escalated();
  out->source = static_cast<DecisionSource>(in.source());
  out->confidence = in.confidence();
  out->allowed_actions.assign(in.allowed_actions().begin(), in.allowed_actions().end());
  out->latency_ms = in.latency_ms();
}

void FromProto(const v1::DialogueDelta& in, DialogueDeltaInfo* out) {
  out->text = in.text();
  out->sentence_end = in.sentence_end();
  out->latency_ms = in.latency_ms();
}

void FromProto(const v1::Memory& in, MemoryInfo* out) {
  out->text = in.text();
  out->importance = in.importance();
  out->game_time_s = in.game_time_s();
  out->kind = static_cast<MemoryKind>(in.kind());
  out->score = in.score();
}

Status Feed(const v1::StepChunk& chunk, StepStreamAssembler* assembler) {
  switch (chunk.chunk_case()) {
    case v1::StepChunk::kAction: {
      ActionChosenInfo action;
      FromProto(chunk.action(), &action);
      return assembler->Action(action);
    }
    case v1::StepChunk::kDialogue: {
      DialogueDeltaInfo delta;
      FromProto(chunk.dialogue(), &delta);
      return assembler->Dialogue(delta);
    }
    case v1::StepChunk::kDone: {
      DecisionInfo decision;
      FromProto(chunk.done(), &decision);
      return assembler->Done(decision);
    }
    default:
      return Status::Ok();  // a chunk kind from a newer contract: nothing to raise
  }
}

}  // namespace convert

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

}  // namespace

struct NpcRuntimeClient::Impl {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::NpcRuntime::Stub> runtime;
  std::unique_ptr<v1::NpcAgent::Stub> agent;

  // A fresh context per call: deadline + bearer token.
  void Prepare(grpc::ClientContext* context, double deadline_ms) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(deadline_ms * 1000.0)));
    if (!options.bearer_token.empty()) context->AddMetadata("authorization", "Bearer " + options.bearer_token);
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

Status NpcRuntimeClient::Handshake(HandshakeInfo* out) {
  if (!out) return MissingOutput("Handshake");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::HandshakeRequest request;
  request.set_protocol_version("1");
  request.set_client_name(impl_->options.client_name);
  v1::HandshakeResponse response;
  const Status status = FromGrpc(impl_->runtime->Handshake(&context, request, &response));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::ListModels(std::vector<ModelInfo>* out) {
  if (!out) return MissingOutput("ListModels");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::ListModelsResponse response;
  const Status status = FromGrpc(impl_->runtime->ListModels(&context, v1::ListModelsRequest(), &response));
  if (status.ok()) {
    out->assign(static_cast<size_t>(response.models_size()), ModelInfo());
    for (int i = 0; i < response.models_size(); ++i) convert::FromProto(response.models(i), &(*out)[static_cast<size_t>(i)]);
  }
  return status;
}

Status NpcRuntimeClient::OpenSession(const OpenSessionOptions& options, OpenedSession* out) {
  if (!out) return MissingOutput("OpenSession");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::OpenSessionRequest request;
  convert::ToProto(options, &request);
  v1::OpenSessionResponse response;
  const Status status = FromGrpc(impl_->runtime->OpenSession(&context, request, &response));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::Tick(const std::vector<TickEntryOptions>& entries, TickOutcome* out) {
  if (!out) return MissingOutput("Tick");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::TickRequest request;
  convert::ToProto(entries, &request);
  v1::TickResponse response;
  const Status status = FromGrpc(impl_->runtime->Tick(&context, request, &response));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::Generate(const GenerateOptions& options,
                                  const std::function<bool(const GenerateChunkInfo&)>& on_chunk) {
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.stream_deadline_ms);
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
      return Status{StatusCode::kCancelled, "stopped by the caller"};
    }
    if (info.finished) break;
  }
  return FromGrpc(reader->Finish());
}

Status NpcRuntimeClient::Cancel(const std::string& session_id, bool* was_running) {
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::CancelRequest request;
  request.set_session_id(session_id);
  v1::CancelResponse response;
  const Status status = FromGrpc(impl_->runtime->Cancel(&context, request, &response));
  if (status.ok() && was_running) *was_running = response.was_running();
  return status;
}

Status NpcRuntimeClient::CloseSession(const std::string& session_id, uint32_t* context_tokens) {
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  v1::CloseSessionResponse response;
  const Status status = FromGrpc(impl_->runtime->CloseSession(&context, request, &response));
  if (status.ok() && context_tokens) *context_tokens = response.context_tokens();
  return status;
}

Status NpcRuntimeClient::RegisterNpc(const RegisterNpcOptions& options, RegisteredNpc* out) {
  if (!out) return MissingOutput("RegisterNpc");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::RegisterNpcRequest request;
  convert::ToProto(options, &request);
  v1::RegisterNpcResponse response;
  const Status status = FromGrpc(impl_->agent->RegisterNpc(&context, request, &response));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::UnregisterNpc(const std::string& npc_id, bool forget) {
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::UnregisterNpcRequest request;
  request.set_npc_id(npc_id);
  request.set_forget(forget);
  v1::UnregisterNpcResponse response;
  return FromGrpc(impl_->agent->UnregisterNpc(&context, request, &response));
}

Status NpcRuntimeClient::Step(const StepOptions& options, DecisionInfo* out) {
  if (!out) return MissingOutput("Step");
  grpc::ClientContext context;
  // The server answers within deadline_ms (falling back to the FSM); leave room for the transport.
  impl_->Prepare(&context, std::max(impl_->options.deadline_ms, static_cast<double>(options.deadline_ms) + 1000.0));
  v1::StepRequest request;
  convert::ToProto(options, &request);
  v1::Decision response;
  const Status status = FromGrpc(impl_->agent->Step(&context, request, &response));
  if (status.ok()) convert::FromProto(response, out);
  return status;
}

Status NpcRuntimeClient::StepStream(const StepOptions& options, const StepStreamCallbacks& callbacks,
                                    CancelToken* cancel) {
  grpc::ClientContext context;
  impl_->Prepare(&context, std::max(impl_->options.stream_deadline_ms, static_cast<double>(options.deadline_ms) + 1000.0));
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
    reader->Finish();
    return Status{StatusCode::kCancelled, "StepStream stopped by the caller"};
  }
  if (!protocol.ok()) {
    context.TryCancel();  // stop the server decoding a line nobody reads
    reader->Finish();
    return protocol;
  }
  if (assembler.done()) {
    // Nothing is read after done; the server closes the stream right after it (drain to its status).
    if (reader->Read(&chunk)) context.TryCancel();
    reader->Finish();
    return Status::Ok();
  }
  const Status status = FromGrpc(reader->Finish());
  return status.ok() ? assembler.End() : status;
}

Status NpcRuntimeClient::RecallMemories(const RecallOptions& options, std::vector<MemoryInfo>* out) {
  if (!out) return MissingOutput("RecallMemories");
  grpc::ClientContext context;
  impl_->Prepare(&context, impl_->options.deadline_ms);
  v1::RecallMemoriesRequest request;
  convert::ToProto(options, &request);
  v1::RecallMemoriesResponse response;
  const Status status = FromGrpc(impl_->agent->RecallMemories(&context, request, &response));
  if (status.ok()) {
    out->assign(static_cast<size_t>(response.memories_size()), MemoryInfo());
    for (int i = 0; i < response.memories_size(); ++i) convert::FromProto(response.memories(i), &(*out)[static_cast<size_t>(i)]);
  }
  return status;
}

}  // namespace npc
