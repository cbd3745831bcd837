// Blocking gRPC client for the npc.v1 NpcRuntime and NpcAgent services.
//
// One channel per client; every call has a deadline; errors come back as npc::Status with the gRPC
// code the server chose (NOT_FOUND for an unknown session, INVALID_ARGUMENT for bad fields...).
// Calls block: an engine runs them on a worker thread (the Unreal subsystem uses UE::Tasks) and keeps
// at most one Tick in flight per frame. Thread-safe: a gRPC channel/stub may be shared by threads.
//
// Fleet (docs/deploy.md): every call that concerns one NPC carries gRPC metadata `x-npc-id: <npc id>`, the
// key a proxy (nginx `hash $http_x_npc_id consistent`, Envoy ring hash) routes on, so an NPC's calls reach
// the replica that holds its session. Session calls (Tick, Generate, Cancel, CloseSession, SaveSession) use
// the npc id the session was opened / restored with (the client keeps a session -> npc map). A Tick whose
// entries belong to several NPCs carries no routing key (the proxy picks any replica): a fleet client ticks
// per NPC (SplitTickByNpc in session_book.h). Handshake and ListModels carry none. Every server response
// names its replica in the `npcrt-replica` metadata: last_replica().

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "npc/npc_types.h"
#include "npc/step_stream.h"

namespace npc {

struct ClientOptions {
  // "host:port", e.g. "127.0.0.1:50051".
  std::string target = "127.0.0.1:50051";
  // Bearer token sent as "authorization: Bearer <token>"; empty = none.
  std::string bearer_token;
  // Deadline of unary calls, milliseconds.
  double deadline_ms = 5000.0;
  // Deadline of a whole Generate or StepStream stream, milliseconds.
  double stream_deadline_ms = 60000.0;
  // Name reported in Handshake.
  std::string client_name = "unreal npc-client/0.1";
  // Send the routing key (`x-npc-id` metadata) on calls that concern one NPC. Off: nothing is added.
  bool send_routing_key = true;
  // Tick budgets are round-trip budgets: each entry's budget_ms is sent minus this client's measured transport
  // time (round_trip_budget.h), so the answer is back within the frame's budget. Off: budgets sent as given.
  bool round_trip_budget = true;
};

// The metadata keys of a fleet (runtime/npc_runtime/serving/replica.py).
constexpr const char kRoutingKeyHeader[] = "x-npc-id";
constexpr const char kReplicaHeader[] = "npcrt-replica";

class NpcRuntimeClient {
 public:
  explicit NpcRuntimeClient(const ClientOptions& options);
  ~NpcRuntimeClient();
  NpcRuntimeClient(const NpcRuntimeClient&) = delete;
  NpcRuntimeClient& operator=(const NpcRuntimeClient&) = delete;

  const ClientOptions& options() const;

  // --- NpcRuntime ---
  Status Handshake(HandshakeInfo* out);
  Status ListModels(std::vector<ModelInfo>* out);
  Status OpenSession(const OpenSessionOptions& options, OpenedSession* out);
  // One call per frame for every session the game cares about. With options().round_trip_budget the budgets
  // are round-trip budgets (the client's measured transport time is taken off them; see round_trip_allowance_ms).
  Status Tick(const std::vector<TickEntryOptions>& entries, TickOutcome* out);
  // Milliseconds currently taken off each Tick budget (0 before the first Tick answer, or when turned off).
  double round_trip_allowance_ms() const;
  // Streams one turn; `on_chunk` returns false to stop early (closes the stream = cancels the turn).
  Status Generate(const GenerateOptions& options, const std::function<bool(const GenerateChunkInfo&)>& on_chunk);
  Status Cancel(const std::string& session_id, bool* was_running);
  Status CloseSession(const std::string& session_id, uint32_t* context_tokens);
  // A snapshot of the session (it stays open) for a save-game or another replica: tokens, sampling and RNG
  // state, limits, and with `include_kv` its KV cache (large: no re-prefill at restore). A turn decoding
  // under a constraint is FAILED_PRECONDITION: snapshot after the turn ends.
  Status SaveSession(const std::string& session_id, bool include_kv, SessionSnapshotInfo* out);
  // Re-creates a session from SaveSession's bytes, on this server or another running the same model
  // package; greedy decoding continues with the tokens the saved session would have produced. Corrupt or
  // foreign bytes: INVALID_ARGUMENT; another model: FAILED_PRECONDITION; the id in use: ALREADY_EXISTS.
  // The restored session is finished when the saved one was (start its next turn with new input).
  Status RestoreSession(const RestoreSessionOptions& options, OpenedSession* out);

  // --- NpcAgent ---
  Status RegisterNpc(const RegisterNpcOptions& options, RegisteredNpc* out);
  Status UnregisterNpc(const std::string& npc_id, bool forget);
  Status Step(const StepOptions& options, DecisionInfo* out);
  // One step whose answer streams (NpcAgent.StepStream): callbacks.on_action as soon as the action is chosen,
  // on_sentence per sentence of the line as it is decoded, on_done with the whole decision; all on the
  // calling thread, in order (run it on a worker). Returns OK after on_done; the server's status when the
  // call fails (NOT_FOUND for an unknown NPC, before any callback); INTERNAL on a protocol error;
  // CANCELLED when `cancel` (optional) was cancelled, which also stops the decoding on the server.
  Status StepStream(const StepOptions& options, const StepStreamCallbacks& callbacks, CancelToken* cancel = nullptr);
  // An NPC's memories, best first by the agent's own retrieval score (empty query: most recent first).
  Status RecallMemories(const RecallOptions& options, std::vector<MemoryInfo>* out);

  // --- fleet ---
  // `npcrt-replica` of the latest response this client received (any call, any thread); "" before the
  // first, or from a server that sends none. For logs: which replica answered.
  std::string last_replica() const;
  // The npc id sent as routing key for a session: learnt from OpenSession / RestoreSession, forgotten when
  // CloseSession succeeds or answers NOT_FOUND; "" = unknown (no routing key).
  std::string NpcOfSession(const std::string& session_id) const;
  // Tells the client which NPC a session belongs to (a session opened by another client object).
  void SetSessionNpc(const std::string& session_id, const std::string& npc_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace npc
