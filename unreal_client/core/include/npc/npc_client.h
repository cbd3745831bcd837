// Blocking gRPC client for the npc.v1 NpcRuntime and NpcAgent services.
//
// One channel per client; every call has a deadline; errors come back as npc::Status with the gRPC
// code the server chose (NOT_FOUND for an unknown session, INVALID_ARGUMENT for bad fields...).
// Calls block: an engine runs them on a worker thread (the Unreal subsystem uses UE::Tasks) and keeps
// at most one Tick in flight per frame. Thread-safe: a gRPC channel/stub may be shared by threads.
#pragma once

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
};

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
  // One call per frame for every session the game cares about.
  Status Tick(const std::vector<TickEntryOptions>& entries, TickOutcome* out);
  // Streams one turn; `on_chunk` returns false to stop early (closes the stream = cancels the turn).
  Status Generate(const GenerateOptions& options, const std::function<bool(const GenerateChunkInfo&)>& on_chunk);
  Status Cancel(const std::string& session_id, bool* was_running);
  Status CloseSession(const std::string& session_id, uint32_t* context_tokens);

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace npc
