#include "npc/round_trip_budget.h"

#include <algorithm>
#include <cmath>

namespace npc {

void RoundTripBudget::Observe(double round_trip_ms, double server_ms) {
  if (!std::isfinite(round_trip_ms) || !std::isfinite(server_ms) || round_trip_ms < 0.0) return;
  const double outside = std::max(0.0, round_trip_ms - std::max(0.0, server_ms));
  if (!seeded_) {
    mean_ = outside;
    deviation_ = 0.0;
    seeded_ = true;
    return;
  }
  const double delta = outside - mean_;
  mean_ += kWeight * delta;
  deviation_ += kWeight * (std::fabs(delta) - deviation_);
}

float RoundTripBudget::ServerBudgetMs(float frame_budget_ms) const {
  if (!(frame_budget_ms > 0.0f)) return frame_budget_ms;
  return std::max(kMinServerBudgetMs, static_cast<float>(frame_budget_ms - AllowanceMs()));
}

}  // namespace npc
