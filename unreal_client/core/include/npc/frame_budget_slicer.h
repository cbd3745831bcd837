// Frame-budget slicer: decides, before each decode step, whether one more step fits in this frame.
//
// Same algorithm as the Unity client and the Python server's Tick (runtime/npc_runtime/sessions/
// cost_model.py, one batch size):
//   * the cost of the next step is predicted from measured step costs with an exponentially weighted
//     moving average of the mean and the variance: the first measurement sets mean = x and
//     var = (0.1 x)^2; later ones (clipped at 4x the mean from the 4th on, so one OS hiccup cannot
//     freeze slicing) do delta = x - mean; mean += alpha delta; var = (1 - alpha)(var + alpha delta^2);
//   * prediction = mean + sigmas * sqrt(var) (initial_step_ms before anything was measured);
//   * the shared frame rule (clients_test/vectors/budget_vectors.json, same in C#, C++ and Python): a
//     frame's first step always runs (progress is guaranteed, even past a tiny budget); a later step
//     runs only when spent + cost <= budget (+1e-9), i.e. stop *before* the budget would be exceeded;
//     with measured costs, `cost` is the prediction;
//   * never more than max_tokens steps in one frame (0 = no token limit, only the budget).
// Times are milliseconds. Pure logic, no clock: the caller measures and reports each step's cost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace npc {

// Tolerance of the budget comparison, milliseconds (costs in the vectors are exact binary fractions).
constexpr double kBudgetEpsilonMs = 1e-9;

// The shared frame rule for one step: `first_in_frame` always fits, otherwise spent + cost <= budget.
bool StepFitsFrame(double spent_ms, double cost_ms, double budget_ms, bool first_in_frame);

// Applies the rule to known per-step costs: the step indices of each frame (at most `max_tokens` per
// frame, 0 = no limit). Reference planner, checked against the shared vectors.
std::vector<std::vector<size_t>> PlanFrames(const std::vector<double>& costs_ms, double budget_ms, uint32_t max_tokens = 0);

struct SlicerConfig {
  // EWMA weight of the newest measurement, (0, 1] (server default 0.2).
  double ewma_alpha = 0.2;
  // Safety margin: standard deviations added to the mean (server default 2).
  double sigmas = 2.0;
  // Predicted step cost before anything was measured, milliseconds. 0 lets the first step of a fresh
  // slicer always run (there is nothing to predict from yet).
  double initial_step_ms = 0.0;
};

class FrameBudgetSlicer {
 public:
  explicit FrameBudgetSlicer(const SlicerConfig& config = SlicerConfig());

  // Starts a frame with `budget_ms` of wall time and at most `max_tokens` steps (0 = unlimited).
  void BeginFrame(double budget_ms, uint32_t max_tokens);

  // True when one more step may run now, `elapsed_ms` after the frame began.
  bool ShouldStep(double elapsed_ms) const;

  // Reports the measured cost of the step that just ran; updates the prediction and the step count.
  void RecordStep(double step_ms);

  // Predicted cost of the next step, milliseconds.
  double PredictedStepMs() const;
  double MeanStepMs() const { return mean_ms_; }
  double VarianceMs2() const { return var_ms2_; }
  // Steps recorded since BeginFrame.
  uint32_t StepsThisFrame() const { return steps_this_frame_; }
  // Steps recorded over the slicer's life.
  uint64_t TotalSteps() const { return total_steps_; }
  bool HasMeasurement() const { return measured_; }

 private:
  SlicerConfig config_;
  double mean_ms_ = 0.0;
  double var_ms2_ = 0.0;
  uint64_t samples_ = 0;
  bool measured_ = false;
  double budget_ms_ = 0.0;
  uint32_t max_tokens_ = 0;
  uint32_t steps_this_frame_ = 0;
  uint64_t total_steps_ = 0;
};

}  // namespace npc
