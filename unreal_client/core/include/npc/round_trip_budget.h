// A frame's Tick budget is a round-trip budget: the game has `budget_ms` from sending the Tick to reading its
// answer, while the server's TickEntry.budget_ms counts from when the server receives the call. RoundTripBudget
// keeps a running estimate of the part the server cannot see (this client's encode/decode and the network:
// round trip - TickResponse.tick_ms; mean + 2 deviations, so most ticks fit) and takes it off each budget
// before sending. NpcRuntimeClient::Tick does this when ClientOptions::round_trip_budget is on (default).
// Same rule as the Unity client (unity_client/Runtime/Net/RoundTripBudget.cs). Not thread-safe on its own.
#pragma once

namespace npc {

class RoundTripBudget {
 public:
  // The smallest budget sent: a budget eaten by the transport still asks for a minimal tick (the server's
  // starvation guard decides), never for the server default that 0 would mean.
  static constexpr float kMinServerBudgetMs = 0.05f;
  // Weight of the newest observation in the running mean and deviation.
  static constexpr double kWeight = 0.1;

  // Milliseconds taken off every budget: 0 until the first answer is observed.
  double AllowanceMs() const { return seeded_ ? mean_ + 2.0 * deviation_ : 0.0; }
  // One Tick's round trip and the server's own time for it (TickResponse.tick_ms), milliseconds.
  void Observe(double round_trip_ms, double server_ms);
  // The budget to send for a frame budget; 0 (the server's default) and negatives are returned unchanged.
  float ServerBudgetMs(float frame_budget_ms) const;

 private:
  double mean_ = 0.0, deviation_ = 0.0;
  bool seeded_ = false;
};

}  // namespace npc
