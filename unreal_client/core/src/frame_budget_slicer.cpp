#include "npc/frame_budget_slicer.h"

#include <algorithm>
#include <cmath>

namespace npc {

bool StepFitsFrame(double spent_ms, double cost_ms, double budget_ms, bool first_in_frame) {
  if (first_in_frame) return true;
  return spent_ms + std::max(0.0, cost_ms) <= budget_ms + kBudgetEpsilonMs;
}

std::vector<std::vector<size_t>> PlanFrames(const std::vector<double>& costs_ms, double budget_ms, uint32_t max_tokens) {
  std::vector<std::vector<size_t>> frames;
  std::vector<size_t> current;
  double spent = 0.0;
  for (size_t step = 0; step < costs_ms.size(); ++step) {
    const bool full = max_tokens != 0 && current.size() >= max_tokens;
    if (full || !StepFitsFrame(spent, costs_ms[step], budget_ms, current.empty())) {
      frames.push_back(current);
      current.clear();
      spent = 0.0;
    }
    current.push_back(step);
    spent += std::max(0.0, costs_ms[step]);
  }
  if (!current.empty()) frames.push_back(current);
  return frames;
}

FrameBudgetSlicer::FrameBudgetSlicer(const SlicerConfig& config) : config_(config) {
  // Clamp malformed settings rather than letting the estimate diverge.
  if (!(config_.ewma_alpha > 0.0)) config_.ewma_alpha = 0.2;
  if (config_.ewma_alpha > 1.0) config_.ewma_alpha = 1.0;
  if (!(config_.sigmas >= 0.0)) config_.sigmas = 0.0;
  if (!(config_.initial_step_ms >= 0.0)) config_.initial_step_ms = 0.0;
}

void FrameBudgetSlicer::BeginFrame(double budget_ms, uint32_t max_tokens) {
  budget_ms_ = std::max(0.0, budget_ms);
  max_tokens_ = max_tokens;
  steps_this_frame_ = 0;
}

double FrameBudgetSlicer::PredictedStepMs() const {
  if (!measured_) return config_.initial_step_ms;
  return mean_ms_ + config_.sigmas * std::sqrt(std::max(var_ms2_, 0.0));
}

bool FrameBudgetSlicer::ShouldStep(double elapsed_ms) const {
  if (max_tokens_ != 0 && steps_this_frame_ >= max_tokens_) return false;
  return StepFitsFrame(elapsed_ms, PredictedStepMs(), budget_ms_, steps_this_frame_ == 0);
}

void FrameBudgetSlicer::RecordStep(double step_ms) {
  double x = std::max(0.0, step_ms);
  if (!measured_) {
    mean_ms_ = x;
    var_ms2_ = (0.1 * x) * (0.1 * x);
    measured_ = true;
  } else {
    if (samples_ >= 3) x = std::min(x, 4.0 * mean_ms_);  // one OS hiccup must not freeze slicing
    const double alpha = config_.ewma_alpha;
    const double delta = x - mean_ms_;
    mean_ms_ += alpha * delta;
    var_ms2_ = (1.0 - alpha) * (var_ms2_ + alpha * delta * delta);
  }
  ++samples_;
  ++steps_this_frame_;
  ++total_steps_;
}

}  // namespace npc
