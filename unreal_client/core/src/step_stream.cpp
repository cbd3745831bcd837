#include "npc/step_stream.h"

#include <utility>

namespace npc {

namespace {
Status Violation(const std::string& what) {
  return Status{StatusCode::kInternal, "StepStream protocol error: " + what +
                                           " (expected one action, dialogue deltas, then done; see agent.proto)"};
}
}  // namespace

StepStreamAssembler::StepStreamAssembler(StepStreamCallbacks callbacks) : callbacks_(std::move(callbacks)) {}

Status StepStreamAssembler::Action(const ActionChosenInfo& action) {
  if (done_) return Violation("a chunk after done");
  if (has_action_) return Violation("a second action chunk");
  has_action_ = true;
  if (callbacks_.on_action) callbacks_.on_action(action);
  return Status::Ok();
}

Status StepStreamAssembler::Dialogue(const DialogueDeltaInfo& delta) {
  if (done_) return Violation("a chunk after done");
  if (!has_action_) return Violation("a dialogue chunk before the action");
  pending_ += delta.text;
  if (delta.sentence_end) FlushSentence();
  return Status::Ok();
}

Status StepStreamAssembler::Done(const DecisionInfo& decision) {
  if (done_) return Violation("a chunk after done");
  if (!has_action_) return Violation("the done chunk before the action");
  FlushSentence();  // a line whose end the server did not mark
  done_ = true;
  if (callbacks_.on_done) callbacks_.on_done(decision);
  return Status::Ok();
}

Status StepStreamAssembler::End() const {
  if (done_) return Status::Ok();
  return Violation(has_action_ ? "the stream ended before done" : "the stream ended before the action");
}

void StepStreamAssembler::FlushSentence() {
  if (pending_.empty()) return;
  std::string sentence;
  sentence.swap(pending_);
  if (callbacks_.on_sentence) callbacks_.on_sentence(sentence);
}

void CancelToken::Cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_ = true;
  // Under the lock: Detach() cannot return (and the call's context go away) while this runs.
  if (on_cancel_) on_cancel_();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancelled_;
}

void CancelToken::Attach(std::function<void()> on_cancel) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_cancel_ = std::move(on_cancel);
  if (cancelled_ && on_cancel_) on_cancel_();
}

void CancelToken::Detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  on_cancel_ = nullptr;
}

}  // namespace npc
