#include "npc/session_book.h"

#include <algorithm>

namespace npc {

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kGenerating: return "generating";
    case SessionState::kIdle: return "idle";
    case SessionState::kLost: return "lost";
  }
  return "?";
}

std::vector<TickPlan> SplitTickByNpc(const TickPlan& plan) {
  std::vector<TickPlan> plans;
  std::map<std::string, size_t> index;  // npc id -> its plan
  const size_t n = std::min(plan.entries.size(), plan.npc_ids.size());
  for (size_t i = 0; i < n; ++i) {
    const auto found = index.find(plan.npc_ids[i]);
    size_t at = plans.size();
    if (found == index.end()) {
      index[plan.npc_ids[i]] = at;
      plans.emplace_back();
    } else {
      at = found->second;
    }
    plans[at].entries.push_back(plan.entries[i]);
    plans[at].npc_ids.push_back(plan.npc_ids[i]);
  }
  return plans;
}

bool SessionBook::Add(const std::string& npc_id, const std::string& session_id, SessionState state) {
  if (npc_id.empty() || session_id.empty()) return false;
  Remove(npc_id);
  SessionRecord record;
  record.npc_id = npc_id;
  record.session_id = session_id;
  record.state = state == SessionState::kIdle ? SessionState::kIdle : SessionState::kGenerating;
  records_[npc_id] = record;
  by_session_[session_id] = npc_id;
  return true;
}

std::string SessionBook::Remove(const std::string& npc_id) {
  auto it = records_.find(npc_id);
  if (it == records_.end()) return std::string();
  std::string session_id = it->second.session_id;
  by_session_.erase(session_id);
  records_.erase(it);
  return session_id;
}

const SessionRecord* SessionBook::Find(const std::string& npc_id) const {
  auto it = records_.find(npc_id);
  return it == records_.end() ? nullptr : &it->second;
}

SessionRecord* SessionBook::FindMutable(const std::string& npc_id) {
  auto it = records_.find(npc_id);
  return it == records_.end() ? nullptr : &it->second;
}

const SessionRecord* SessionBook::FindBySession(const std::string& session_id) const {
  auto it = by_session_.find(session_id);
  return it == by_session_.end() ? nullptr : Find(it->second);
}

std::vector<std::string> SessionBook::NpcIds() const {
  std::vector<std::string> ids;
  ids.reserve(records_.size());
  for (const auto& kv : records_) ids.push_back(kv.first);
  return ids;
}

bool SessionBook::QueueInput(const std::string& npc_id, const std::string& text) {
  SessionRecord* record = FindMutable(npc_id);
  if (!record || record->state == SessionState::kLost) return false;
  record->pending_inputs.push_back(text);
  return true;
}

TickPlan SessionBook::BuildTick(float budget_ms, uint32_t max_tokens, size_t max_entries) {
  std::vector<SessionRecord*> wanting;
  for (auto& kv : records_) {
    SessionRecord& r = kv.second;
    const bool wants = r.state == SessionState::kGenerating ||
                       (r.state == SessionState::kIdle && !r.pending_inputs.empty());
    if (wants) wanting.push_back(&r);
  }
  TickPlan plan;
  if (wanting.empty()) return plan;
  const size_t n = wanting.size();
  const size_t take = (max_entries == 0 || max_entries >= n) ? n : max_entries;
  const size_t start = (take < n) ? rotate_ % n : 0;
  if (take < n) rotate_ = (start + take) % n;
  for (size_t i = 0; i < take; ++i) {
    SessionRecord& r = *wanting[(start + i) % n];
    TickEntryOptions entry;
    entry.session_id = r.session_id;
    entry.budget_ms = budget_ms;
    entry.max_tokens = max_tokens;
    // A new line starts a new turn after the current one; send it once the current turn is done so
    // the game sees each reply's text separately.
    if (r.state == SessionState::kIdle && !r.pending_inputs.empty()) {
      entry.new_input = r.pending_inputs.front();
      r.pending_inputs.pop_front();
      r.state = SessionState::kGenerating;
      r.turn_text.clear();
      r.turn_tokens.clear();
      r.finish_reason = FinishReason::kUnspecified;
    }
    plan.entries.push_back(entry);
    plan.npc_ids.push_back(r.npc_id);
  }
  return plan;
}

std::vector<SessionEvent> SessionBook::ApplyTick(const TickPlan& plan, const TickOutcome& outcome) {
  std::vector<SessionEvent> events;
  const size_t n = std::min(plan.entries.size(), outcome.results.size());
  for (size_t i = 0; i < n; ++i) {
    const TickResultInfo& result = outcome.results[i];
    SessionRecord* record = FindMutable(plan.npc_ids[i]);
    // The NPC may have been removed (or reopened) while the tick was in flight: ignore stale results.
    if (!record || record->session_id != plan.entries[i].session_id) continue;
    if (!result.error.empty() || result.error_code != 0) {
      SessionEvent ev;
      ev.npc_id = record->npc_id;
      ev.text = result.error;
      ev.code = static_cast<StatusCode>(result.error_code);
      record->last_error = result.error;
      const bool lost = ev.code == StatusCode::kNotFound || ev.code == StatusCode::kFailedPrecondition;
      if (lost) record->state = SessionState::kLost;
      if (!plan.entries[i].new_input.empty() && !lost) record->pending_inputs.push_front(plan.entries[i].new_input);
      ev.kind = lost ? SessionEventKind::kLost : SessionEventKind::kEntryError;
      events.push_back(ev);
      continue;
    }
    record->context_tokens = result.context_tokens;
    record->pending_prefill_tokens = result.pending_prefill_tokens;
    if (!result.text_delta.empty() || !result.token_ids.empty()) {
      record->turn_text += result.text_delta;
      record->turn_tokens.insert(record->turn_tokens.end(), result.token_ids.begin(), result.token_ids.end());
      SessionEvent ev;
      ev.kind = SessionEventKind::kDelta;
      ev.npc_id = record->npc_id;
      ev.text = result.text_delta;
      ev.token_ids = result.token_ids;
      events.push_back(ev);
    }
    if (result.finished) {
      record->finish_reason = result.finish_reason;
      ++record->turns_finished;
      const bool evicted = result.finish_reason == FinishReason::kEvicted;
      record->state = evicted ? SessionState::kLost : SessionState::kIdle;
      SessionEvent ev;
      ev.kind = evicted ? SessionEventKind::kLost : SessionEventKind::kFinished;
      ev.npc_id = record->npc_id;
      ev.text = record->turn_text;
      ev.token_ids = record->turn_tokens;
      ev.finish_reason = result.finish_reason;
      events.push_back(ev);
    }
  }
  return events;
}

void SessionBook::ApplyTickFailure(const TickPlan& plan) {
  for (size_t i = 0; i < plan.entries.size() && i < plan.npc_ids.size(); ++i) {
    SessionRecord* record = FindMutable(plan.npc_ids[i]);
    if (!record || record->session_id != plan.entries[i].session_id) continue;
    if (!plan.entries[i].new_input.empty()) {
      record->pending_inputs.push_front(plan.entries[i].new_input);
      // The line never reached the server: the previous turn is still the last one.
      if (record->turn_tokens.empty()) record->state = SessionState::kIdle;
    }
  }
}

}  // namespace npc
