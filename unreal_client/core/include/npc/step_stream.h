// NpcAgent.StepStream as events: the shared chunk-to-event rule (clients_test/vectors/README.md, checked
// against stream_vectors.json by the C++, C# and Python tests), and a thread-safe cancel token.
// Pure logic, no gRPC: NpcRuntimeClient::StepStream feeds the assembler from the stream.
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "npc/npc_types.h"

namespace npc {

// Called in stream order on the thread that runs the call: on_action once, first; on_sentence per
// sentence (exact text, leading spaces kept: the sentences concatenate to the decision's dialogue);
// on_done once, last. Unset callbacks are skipped.
struct StepStreamCallbacks {
  std::function<void(const ActionChosenInfo&)> on_action;
  std::function<void(const std::string&)> on_sentence;
  std::function<void(const DecisionInfo&)> on_done;
};

// The rule: the first chunk must be the action; dialogue deltas accumulate until one has sentence_end, and
// the accumulated text is one sentence (an empty one is not raised); done raises what is left as a last
// sentence, then done. Any other order, or an end before done, is INTERNAL "StepStream protocol error: ...".
// (A chunk of an unknown kind is skipped by the caller: it never reaches the assembler.)
class StepStreamAssembler {
 public:
  explicit StepStreamAssembler(StepStreamCallbacks callbacks);

  Status Action(const ActionChosenInfo& action);
  Status Dialogue(const DialogueDeltaInfo& delta);
  Status Done(const DecisionInfo& decision);
  // The stream ended without an RPC error: OK only when done arrived.
  Status End() const;

  bool has_action() const { return has_action_; }
  bool done() const { return done_; }
  // Text received since the last sentence.
  const std::string& pending() const { return pending_; }

 private:
  void FlushSentence();

  StepStreamCallbacks callbacks_;
  std::string pending_;
  bool has_action_ = false;
  bool done_ = false;
};

// Stops a running StepStream from another thread (e.g. the game thread while a worker reads the stream).
// Cancel() is idempotent and never blocks: it cancels the RPC (the server stops decoding), the reading
// thread sees it before its next chunk, raises nothing more and returns CANCELLED. A callback already
// running on that thread finishes (filter late events on the receiving side if that matters). One token
// per call: a cancelled token stays cancelled.
class CancelToken {
 public:
  void Cancel();
  bool cancelled() const;

  // Used by the client while a call runs: `on_cancel` (non-blocking, e.g. grpc::ClientContext::TryCancel)
  // runs at once if already cancelled, else from Cancel(), until Detach() returns.
  void Attach(std::function<void()> on_cancel);
  void Detach();

 private:
  mutable std::mutex mutex_;
  bool cancelled_ = false;
  std::function<void()> on_cancel_;
};

}  // namespace npc
