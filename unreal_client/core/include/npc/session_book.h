// Session bookkeeping for the game side: which NPC owns which server session, what each turn has
// produced so far, and which sessions need work this frame.
//
// Each frame the game builds ONE TickRequest for every NPC that is generating or has a new player line
// (BuildTick), sends it (the client, on a worker thread), then feeds the response back (ApplyTick),
// which yields per-NPC events: text deltas, finished turns, lost sessions. A failed Tick RPC
// (ApplyTickFailure) puts the player lines it carried back in the queue, so nothing typed is lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "npc/npc_types.h"

namespace npc {

enum class SessionState {
  kGenerating,  // a turn is running (prefill or decode): included in every tick
  kIdle,        // the turn finished; waits for new input
  kLost,        // the server no longer knows the session (NOT_FOUND / FAILED_PRECONDITION): reopen it
};

const char* SessionStateName(SessionState state);

struct SessionRecord {
  std::string npc_id;
  std::string session_id;
  SessionState state = SessionState::kGenerating;
  std::deque<std::string> pending_inputs;  // player lines not yet sent
  std::string turn_text;                   // text of the current / last turn so far
  std::vector<uint32_t> turn_tokens;
  FinishReason finish_reason = FinishReason::kUnspecified;
  uint32_t context_tokens = 0;
  uint32_t pending_prefill_tokens = 0;
  uint64_t turns_finished = 0;
  std::string last_error;
};

enum class SessionEventKind { kDelta, kFinished, kLost, kEntryError };

struct SessionEvent {
  SessionEventKind kind = SessionEventKind::kDelta;
  std::string npc_id;
  std::string text;  // kDelta: the new text; kFinished: the whole turn's text; errors: the message
  std::vector<uint32_t> token_ids;
  FinishReason finish_reason = FinishReason::kUnspecified;
  StatusCode code = StatusCode::kOk;
};

struct TickPlan {
  std::vector<TickEntryOptions> entries;
  std::vector<std::string> npc_ids;  // npc of each entry, same order
};

// A fleet client ticks per NPC: one plan per NPC of `plan` (same entry order), so that each Tick carries
// that NPC's routing key and the proxy sends it to the replica holding its session. Apply each sub-plan's
// outcome with ApplyTick(sub_plan, outcome) as usual.
std::vector<TickPlan> SplitTickByNpc(const TickPlan& plan);

class SessionBook {
 public:
  // Registers a session just opened for `npc_id` (its prompt is queued: it starts generating).
  // Replaces any previous record of the NPC. Returns false when npc_id or session_id is empty.
  // A session restored from a snapshot taken between turns starts kIdle (it waits for the next line).
  bool Add(const std::string& npc_id, const std::string& session_id,
           SessionState state = SessionState::kGenerating);
  // Forgets an NPC; returns its session id (to close on the server) or "" when unknown.
  std::string Remove(const std::string& npc_id);

  const SessionRecord* Find(const std::string& npc_id) const;
  const SessionRecord* FindBySession(const std::string& session_id) const;
  size_t size() const { return records_.size(); }
  std::vector<std::string> NpcIds() const;

  // Queues a player line for the NPC's next turn. False when the NPC is unknown or its session lost.
  bool QueueInput(const std::string& npc_id, const std::string& text);

  // Entries for this frame: every generating session, and idle ones with a queued line (one line per
  // tick). At most `max_entries` (0 = no limit); when more want work, a rotating start index shares
  // the frames fairly.
  TickPlan BuildTick(float budget_ms, uint32_t max_tokens, size_t max_entries = 0);

  // Applies the response of the Tick sent for `plan`; returns the events in entry order.
  std::vector<SessionEvent> ApplyTick(const TickPlan& plan, const TickOutcome& outcome);
  // The Tick RPC for `plan` failed as a whole: re-queue its inputs at the front, mark nothing lost.
  void ApplyTickFailure(const TickPlan& plan);

 private:
  SessionRecord* FindMutable(const std::string& npc_id);
  std::map<std::string, SessionRecord> records_;  // by npc id (ordered: deterministic ticks)
  std::map<std::string, std::string> by_session_;  // session id -> npc id
  size_t rotate_ = 0;
};

}  // namespace npc
