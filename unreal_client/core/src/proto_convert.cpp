// Conversions between the plain npc:: types and the generated npc.v1 messages (declared in proto_convert.h).
#include "proto_convert.h"

namespace npc {

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
  out->batch_dependent = in.batch_dependent();
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
  out->restore_ms = in.stats().restore_ms();
  out->restored_from = in.stats().restored_from();
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

void FromProto(const v1::SessionSnapshot& in, SessionSnapshotInfo* out) {
  out->data.assign(in.data().begin(), in.data().end());
  out->session_id = in.session_id();
  out->model = in.model();
  out->context_tokens = in.context_tokens();
}

void ToProto(const RestoreSessionOptions& in, v1::RestoreSessionRequest* out) {
  out->mutable_snapshot()->set_data(in.snapshot.data(), in.snapshot.size());
  out->set_session_id(in.session_id);
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

}  // namespace npc
