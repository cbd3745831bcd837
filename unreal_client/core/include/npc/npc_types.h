// Plain C++ mirrors of the npc.v1 wire messages the client uses (no protobuf/gRPC types), so engine
// code (the Unreal module) can include them without gRPC headers. Units follow proto/npc_proto/v1.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace npc {

// gRPC status code numbers (identical to grpc::StatusCode and the contract's error_code fields).
enum class StatusCode : int {
  kOk = 0, kCancelled = 1, kUnknown = 2, kInvalidArgument = 3, kDeadlineExceeded = 4, kNotFound = 5,
  kAlreadyExists = 6, kPermissionDenied = 7, kResourceExhausted = 8, kFailedPrecondition = 9,
  kAborted = 10, kOutOfRange = 11, kUnimplemented = 12, kInternal = 13, kUnavailable = 14,
  kDataLoss = 15, kUnauthenticated = 16,
};

const char* StatusCodeName(StatusCode code);

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;
  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return Status(); }
  std::string ToString() const;
};

// Why a turn finished (npc.v1.FinishReason, same numbers).
enum class FinishReason : int {
  kUnspecified = 0, kLength = 1, kStop = 2, kEos = 3, kCancelled = 4, kEvicted = 5, kContextFull = 6,
  kConstraint = 7, kError = 8,
};

struct HandshakeInfo {
  std::string protocol_version;
  std::string server_version;
  std::vector<std::string> capabilities;
  uint32_t max_tick_entries = 0;
  uint32_t max_sessions = 0;
};

struct ModelInfo {
  std::string name, kind, precision, target;
  uint32_t context_length = 0, vocab_size = 0;
  // A session's output may depend on the others batched with it (int8 MatMulInteger packages).
  bool batch_dependent = false;
};

struct SamplingOptions {
  float temperature = 0.0f;  // 0 = greedy
  uint32_t top_k = 0;
  float top_p = 0.0f;
  float repetition_penalty = 0.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

// Optional constraint: exactly one of the allowed strings, or a JSON object matching a schema.
struct ConstraintOptions {
  std::vector<std::string> allowed;  // non-empty: AllowedSequences
  std::string json_schema;           // non-empty: json_schema (used when `allowed` is empty)
  bool empty() const { return allowed.empty() && json_schema.empty(); }
};

struct OpenSessionOptions {
  std::string model;   // empty = server default
  std::string npc_id;
  std::string prefix;  // persona / system prefix (shared through the prefix cache)
  std::string prompt;
  SamplingOptions sampling;
  uint32_t max_new_tokens = 0;  // 0 = server default
  uint32_t max_context = 0;
  uint32_t idle_timeout_s = 0;
  ConstraintOptions constraint;
  bool apply_chat_template = false;
};

struct OpenedSession {
  std::string session_id;
  uint32_t prompt_tokens = 0;
  uint32_t cached_prefix_tokens = 0;
};

struct TickEntryOptions {
  std::string session_id;
  float budget_ms = 0.0f;   // 0 = server default (2 ms)
  uint32_t max_tokens = 0;  // 0 = only the budget limits
  std::string new_input;    // optional: starts a new turn
  ConstraintOptions constraint;
};

struct TickResultInfo {
  std::string session_id;
  std::vector<uint32_t> token_ids;
  std::string text_delta;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kUnspecified;
  std::string error;        // non-empty when this entry failed
  int32_t error_code = 0;   // gRPC status number of that error
  float tick_ms = 0.0f;
  uint32_t steps = 0, max_batch = 0, pending_prefill_tokens = 0, context_tokens = 0;
  // Tiered KV: the session had been parked out of the server's KV pool and was restored for this tick:
  // how long that took, ms, and from where ("host", "disk", "store"); 0 / empty when it was resident.
  float restore_ms = 0.0f;
  std::string restored_from;
};

struct TickOutcome {
  std::vector<TickResultInfo> results;  // one per entry, same order
  float tick_ms = 0.0f;
};

// A session snapshot (NpcRuntime.SaveSession): opaque bytes bound to the server's model package, for
// save-games or moving a session; restore it with NpcRuntimeClient::RestoreSession.
struct SessionSnapshotInfo {
  std::vector<uint8_t> data;  // the snapshot itself (format: docs/engine.md, "Session snapshots")
  std::string session_id;     // the session it was taken from
  std::string model;
  uint32_t context_tokens = 0;
};

struct RestoreSessionOptions {
  std::vector<uint8_t> snapshot;  // SessionSnapshotInfo::data
  // The NPC the session belongs to: the routing key (x-npc-id) of the call and of the restored session's
  // later calls. Empty = no routing key (a single server does not need one).
  std::string npc_id;
  std::string session_id;  // id of the restored session; empty = the id in the snapshot
};

struct GenerateOptions {
  std::string session_id;
  std::string input;        // empty = continue the queued prompt
  uint32_t max_tokens = 0;  // 0 = the session's max_new_tokens
  ConstraintOptions constraint;
};

struct GenerateChunkInfo {
  std::vector<uint32_t> token_ids;
  std::string text;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kUnspecified;
};

// --- NpcAgent ---------------------------------------------------------------------------------------
struct PersonaInfo {
  std::string name, role, backstory;
  std::vector<std::string> traits;
};

struct RegisterNpcOptions {
  std::string npc_id;
  PersonaInfo persona;
  std::string fsm_name;  // built-in FSM, or
  std::string fsm_yaml;  // FSM text (used when fsm_name is empty)
  std::vector<std::pair<std::string, float>> memories;  // (text, importance 1-10, 0 = runtime judges)
  bool replace = false;
};

struct RegisteredNpc {
  std::string npc_id, state;
  std::vector<std::string> allowed_actions;
};

struct GameEventInfo {
  std::string kind, description;
  float importance = 0.0f;
  bool story_critical = false;
  std::map<std::string, std::string> attributes;
};

struct StepOptions {
  std::string npc_id;
  double game_time_s = 0.0;
  std::map<std::string, double> values;
  std::map<std::string, std::string> tags;
  std::string player_utterance;
  std::vector<GameEventInfo> events;
  float deadline_ms = 0.0f;  // 0 = server default (150 ms)
};

enum class DecisionSource : int { kUnspecified = 0, kFsm = 1, kPolicy = 2, kLocalModel = 3, kCloud = 4, kFallback = 5 };

struct DecisionInfo {
  std::string npc_id, state, action, dialogue, reason;
  std::map<std::string, std::string> arguments;
  bool escalated = false, rejected_action = false;
  float confidence = 0.0f, latency_ms = 0.0f;
  DecisionSource source = DecisionSource::kUnspecified;
  std::vector<std::string> allowed_actions;
  uint32_t memories_written = 0;
};

// --- NpcAgent.StepStream: the action first, then dialogue deltas, then the whole DecisionInfo ---------------
// The decision's action, before any dialogue (npc.v1.ActionChosen); equal to the final decision's action.
struct ActionChosenInfo {
  std::string npc_id, state, action;
  std::map<std::string, std::string> arguments;
  bool escalated = false;
  DecisionSource source = DecisionSource::kUnspecified;
  float confidence = 0.0f;
  std::vector<std::string> allowed_actions;
  float latency_ms = 0.0f;  // server-side, request to this chunk
};

// A piece of the line (npc.v1.DialogueDelta): UTF-8, never a partial character.
struct DialogueDeltaInfo {
  std::string text;
  bool sentence_end = false;
  float latency_ms = 0.0f;
};

// --- NpcAgent.RecallMemories ------------------------------------------------------------------------------
enum class MemoryKind : int { kUnspecified = 0, kObservation = 1, kDialogue = 2, kReflection = 3, kEscalation = 4 };

struct RecallOptions {
  std::string npc_id;
  std::string query;   // empty = most recent first
  uint32_t limit = 0;  // 0 = server default (20); at most 1000
};

struct MemoryInfo {
  std::string text;
  float importance = 0.0f;  // 1-10
  double game_time_s = 0.0;
  MemoryKind kind = MemoryKind::kUnspecified;
  float score = 0.0f;  // retrieval score it was ranked by (0 for an empty query)
};

}  // namespace npc
