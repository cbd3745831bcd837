// Unit tests of the engine-agnostic core: slicer traces, session bookkeeping, JSON reader, manifest
// parsing, the fixed-capacity KV state, the StepStream event rule and its cancel token. Prints "N passed, M failed" last.
#include <cmath>
#include <string>
#include <vector>

#include "npc/fixed_kv_cache.h"
#include "npc/frame_budget_slicer.h"
#include "npc/mini_json.h"
#include "npc/model_manifest.h"
#include "npc/round_trip_budget.h"
#include "npc/session_book.h"
#include "npc/step_stream.h"
#include "test_harness.h"

using namespace npc;

namespace {

// Runs one frame against a list of step costs; returns how many steps ran.
uint32_t RunFrame(FrameBudgetSlicer& slicer, double budget_ms, uint32_t max_tokens, const std::vector<double>& costs,
                  size_t* next_cost) {
  slicer.BeginFrame(budget_ms, max_tokens);
  double elapsed = 0.0;
  while (*next_cost < costs.size() && slicer.ShouldStep(elapsed)) {
    const double cost = costs[(*next_cost)++];
    elapsed += cost;
    slicer.RecordStep(cost);
  }
  return slicer.StepsThisFrame();
}

}  // namespace

// ---- round-trip budget ---------------------------------------------------------------------------------

TEST_CASE("round trip: the allowance follows the transport time, budgets shrink by it") {
  RoundTripBudget budget;
  CHECK(budget.AllowanceMs() == 0.0);
  CHECK(budget.ServerBudgetMs(8.0f) == 8.0f);
  budget.Observe(5.5, 5.0);  // 0.5 ms outside the server
  CHECK(std::fabs(budget.AllowanceMs() - 0.5) < 1e-9);
  CHECK(std::fabs(budget.ServerBudgetMs(8.0f) - 7.5f) < 1e-6);
  for (int i = 0; i < 100; ++i) budget.Observe(3.0, 2.0);  // settles on 1 ms, the deviation decays
  CHECK(std::fabs(budget.AllowanceMs() - 1.0) < 0.01);
  budget.Observe(std::nan(""), 1.0);  // ignored
  budget.Observe(1.0, 5.0);           // server time past the round trip: 0 outside
  CHECK(budget.AllowanceMs() < 1.2);
  CHECK(budget.ServerBudgetMs(0.0f) == 0.0f);  // the server's default stays the default
  CHECK(budget.ServerBudgetMs(0.5f) == RoundTripBudget::kMinServerBudgetMs);
}

// ---- slicer --------------------------------------------------------------------------------------------

namespace {
SlicerConfig PlainEwma(double alpha) {  // sigmas 0: prediction = EWMA mean
  SlicerConfig config;
  config.ewma_alpha = alpha;
  config.sigmas = 0.0;
  return config;
}
}  // namespace

TEST_CASE("slicer: first frame measures, then stops before exceeding the budget") {
  FrameBudgetSlicer slicer(PlainEwma(0.5));
  std::vector<double> costs(20, 1.0);
  size_t next = 0;
  // No estimate: the first step runs; then 1 ms predicted: 1+1+1 <= 3, a 4th would be 4 > 3.
  CHECK_EQ(RunFrame(slicer, 3.0, 0, costs, &next), 3u);
  CHECK_NEAR(slicer.PredictedStepMs(), 1.0, 1e-12);
}

TEST_CASE("slicer: never more than max_tokens") {
  FrameBudgetSlicer slicer;
  std::vector<double> costs(20, 0.1);
  size_t next = 0;
  CHECK_EQ(RunFrame(slicer, 100.0, 4, costs, &next), 4u);
  CHECK_EQ(RunFrame(slicer, 100.0, 1, costs, &next), 1u);
  CHECK_EQ(slicer.TotalSteps(), 5u);
}

TEST_CASE("slicer: EWMA mean and variance, as the server's cost model") {
  FrameBudgetSlicer slicer;  // alpha 0.2, sigmas 2
  slicer.BeginFrame(1000.0, 0);
  slicer.RecordStep(4.0);  // mean 4, var (0.4)^2 = 0.16
  CHECK_NEAR(slicer.MeanStepMs(), 4.0, 1e-12);
  CHECK_NEAR(slicer.VarianceMs2(), 0.16, 1e-12);
  CHECK_NEAR(slicer.PredictedStepMs(), 4.0 + 2.0 * 0.4, 1e-12);
  slicer.RecordStep(9.0);  // delta 5: mean 5, var 0.8 * (0.16 + 0.2 * 25) = 4.128
  CHECK_NEAR(slicer.MeanStepMs(), 5.0, 1e-12);
  CHECK_NEAR(slicer.VarianceMs2(), 4.128, 1e-12);
  CHECK_NEAR(slicer.PredictedStepMs(), 5.0 + 2.0 * std::sqrt(4.128), 1e-12);
}

TEST_CASE("slicer: outliers are clipped at 4x the mean from the 4th sample") {
  FrameBudgetSlicer slicer(PlainEwma(0.5));
  slicer.BeginFrame(1000.0, 0);
  for (int i = 0; i < 3; ++i) slicer.RecordStep(1.0);
  slicer.RecordStep(100.0);  // clipped to 4: mean 1 + 0.5 * 3 = 2.5
  CHECK_NEAR(slicer.MeanStepMs(), 2.5, 1e-12);
}

TEST_CASE("slicer: a slow step shrinks the next frame's work") {
  FrameBudgetSlicer slicer(PlainEwma(0.5));
  std::vector<double> costs = {1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0};
  size_t next = 0;
  // Frame 1: 1, 1, then predicted 1 -> 2+1 <= 4 so the 9 ms step runs (it could not be known).
  CHECK_EQ(RunFrame(slicer, 4.0, 0, costs, &next), 3u);
  CHECK_NEAR(slicer.PredictedStepMs(), 5.0, 1e-12);  // 0.5*9 + 0.5*1
  // Frame 2: the first step always runs (1 ms: mean 3), then 1 + 3 > 3.5 stops the frame.
  CHECK_EQ(RunFrame(slicer, 3.5, 0, costs, &next), 1u);
  CHECK_NEAR(slicer.PredictedStepMs(), 3.0, 1e-12);
}

TEST_CASE("slicer: the first step of a frame always runs, even past the budget") {
  SlicerConfig config = PlainEwma(0.5);
  config.initial_step_ms = 5.0;
  FrameBudgetSlicer slicer(config);
  slicer.BeginFrame(2.0, 0);
  CHECK(slicer.ShouldStep(0.0));  // first in frame
  slicer.RecordStep(3.0);
  CHECK(!slicer.ShouldStep(3.0));  // 3 + 3 > 2
  std::vector<double> costs(4, 3.0);
  size_t next = 0;
  CHECK_EQ(RunFrame(slicer, 2.0, 0, costs, &next), 1u);
}

TEST_CASE("slicer: malformed settings are clamped; a zero budget still makes progress") {
  SlicerConfig config;
  config.ewma_alpha = -3.0;
  config.sigmas = -1.0;
  FrameBudgetSlicer slicer(config);
  std::vector<double> costs(3, 0.5);
  size_t next = 0;
  CHECK_EQ(RunFrame(slicer, -1.0, 0, costs, &next), 1u);
  CHECK_NEAR(slicer.PredictedStepMs(), 0.5, 1e-12);
}

TEST_CASE("slicer: PlanFrames applies the frame rule and the token cap") {
  const std::vector<double> costs = {0.5, 0.5, 0.5, 0.5, 0.5};
  const auto frames = PlanFrames(costs, 1.0, 0);
  CHECK_EQ(frames.size(), 3u);
  CHECK_EQ(frames[0], (std::vector<size_t>{0, 1}));
  const auto capped = PlanFrames(costs, 100.0, 2);
  CHECK_EQ(capped.size(), 3u);
  CHECK_EQ(capped[2], (std::vector<size_t>{4}));
  CHECK(PlanFrames({}, 1.0).empty());
}

// ---- session book --------------------------------------------------------------------------------------

TEST_CASE("book: a new session ticks until its turn finishes, then idles") {
  SessionBook book;
  CHECK(book.Add("guard", "s1"));
  CHECK(!book.Add("", "s2"));
  TickPlan plan = book.BuildTick(2.0f, 4);
  CHECK_EQ(plan.entries.size(), 1u);
  CHECK_EQ(plan.entries[0].session_id, std::string("s1"));
  CHECK_NEAR(plan.entries[0].budget_ms, 2.0, 1e-6);
  CHECK_EQ(plan.entries[0].max_tokens, 4u);

  TickOutcome out;
  out.results.resize(1);
  out.results[0].session_id = "s1";
  out.results[0].token_ids = {5, 6};
  out.results[0].text_delta = "Hal";
  std::vector<SessionEvent> events = book.ApplyTick(plan, out);
  CHECK_EQ(events.size(), 1u);
  CHECK(events[0].kind == SessionEventKind::kDelta);
  CHECK_EQ(events[0].text, std::string("Hal"));

  out.results[0].token_ids = {7};
  out.results[0].text_delta = "t!";
  out.results[0].finished = true;
  out.results[0].finish_reason = FinishReason::kEos;
  events = book.ApplyTick(book.BuildTick(2.0f, 4), out);
  CHECK_EQ(events.size(), 2u);
  CHECK(events[1].kind == SessionEventKind::kFinished);
  CHECK_EQ(events[1].text, std::string("Halt!"));
  CHECK_EQ(events[1].token_ids.size(), 3u);
  CHECK(book.Find("guard")->state == SessionState::kIdle);
  CHECK(book.BuildTick(2.0f, 4).entries.empty());  // idle, nothing queued: not ticked
}

TEST_CASE("book: a queued line starts the next turn, once") {
  SessionBook book;
  book.Add("merchant", "s9");
  TickOutcome done;
  done.results.resize(1);
  done.results[0].finished = true;
  done.results[0].finish_reason = FinishReason::kLength;
  book.ApplyTick(book.BuildTick(1.0f, 0), done);
  CHECK(book.QueueInput("merchant", "How much for the apples?"));
  CHECK(!book.QueueInput("nobody", "hi"));
  TickPlan plan = book.BuildTick(1.0f, 0);
  CHECK_EQ(plan.entries.size(), 1u);
  CHECK_EQ(plan.entries[0].new_input, std::string("How much for the apples?"));
  CHECK(book.Find("merchant")->state == SessionState::kGenerating);
  CHECK(book.BuildTick(1.0f, 0).entries[0].new_input.empty());  // sent once
}

TEST_CASE("book: a session restored between turns starts idle and waits for its next line") {
  SessionBook book;
  CHECK(book.Add("guard", "s-loaded", SessionState::kIdle));
  CHECK(book.Find("guard")->state == SessionState::kIdle);
  CHECK(book.BuildTick(2.0f, 0).entries.empty());  // a finished session ticked without input is refused
  CHECK(book.QueueInput("guard", "Remember me?"));
  TickPlan plan = book.BuildTick(2.0f, 0);
  CHECK_EQ(plan.entries.size(), 1u);
  CHECK_EQ(plan.entries[0].session_id, std::string("s-loaded"));
  CHECK_EQ(plan.entries[0].new_input, std::string("Remember me?"));
}

TEST_CASE("book: SplitTickByNpc makes one plan per NPC, in entry order") {
  SessionBook book;
  book.Add("b", "sb");
  book.Add("a", "sa");
  book.Add("c", "sc");
  const TickPlan plan = book.BuildTick(2.0f, 3);
  const std::vector<TickPlan> plans = SplitTickByNpc(plan);
  CHECK_EQ(plans.size(), 3u);
  for (size_t i = 0; i < plans.size() && i < plan.entries.size(); ++i) {
    CHECK_EQ(plans[i].entries.size(), 1u);
    CHECK_EQ(plans[i].npc_ids[0], plan.npc_ids[i]);
    CHECK_EQ(plans[i].entries[0].session_id, plan.entries[i].session_id);
    CHECK_EQ(plans[i].entries[0].max_tokens, 3u);
  }
  // Hand-built plans may hold several entries of one NPC: they stay together, in order.
  TickPlan mixed;
  for (const char* npc : {"x", "y", "x"}) {
    TickEntryOptions entry;
    entry.session_id = std::string("s") + npc + std::to_string(mixed.entries.size());
    mixed.entries.push_back(entry);
    mixed.npc_ids.push_back(npc);
  }
  const std::vector<TickPlan> grouped = SplitTickByNpc(mixed);
  CHECK_EQ(grouped.size(), 2u);
  CHECK_EQ(grouped[0].entries.size(), 2u);
  CHECK_EQ(grouped[0].entries[1].session_id, std::string("sx2"));
  CHECK(SplitTickByNpc(TickPlan()).empty());
}

TEST_CASE("book: a failed Tick RPC re-queues the line it carried") {
  SessionBook book;
  book.Add("a", "sa");
  TickOutcome done;
  done.results.resize(1);
  done.results[0].finished = true;
  book.ApplyTick(book.BuildTick(1.0f, 0), done);
  book.QueueInput("a", "hello");
  TickPlan plan = book.BuildTick(1.0f, 0);
  book.ApplyTickFailure(plan);
  CHECK_EQ(book.Find("a")->pending_inputs.size(), 1u);
  CHECK(book.Find("a")->state == SessionState::kIdle);
  CHECK_EQ(book.BuildTick(1.0f, 0).entries[0].new_input, std::string("hello"));
}

TEST_CASE("book: NOT_FOUND marks the session lost; other entries are unaffected") {
  SessionBook book;
  book.Add("a", "sa");
  book.Add("b", "sb");
  TickPlan plan = book.BuildTick(2.0f, 0);
  CHECK_EQ(plan.entries.size(), 2u);
  TickOutcome out;
  out.results.resize(2);
  out.results[0].error = "unknown session 'sa'";
  out.results[0].error_code = 5;
  out.results[1].text_delta = "ok";
  std::vector<SessionEvent> events = book.ApplyTick(plan, out);
  CHECK_EQ(events.size(), 2u);
  CHECK(events[0].kind == SessionEventKind::kLost);
  CHECK(events[0].code == StatusCode::kNotFound);
  CHECK(book.Find("a")->state == SessionState::kLost);
  CHECK(!book.QueueInput("a", "x"));
  CHECK(book.Find("b")->state == SessionState::kGenerating);
  CHECK_EQ(book.BuildTick(2.0f, 0).entries.size(), 1u);
}

TEST_CASE("book: results of a removed or reopened NPC are ignored") {
  SessionBook book;
  book.Add("a", "old");
  TickPlan plan = book.BuildTick(2.0f, 0);
  book.Add("a", "new");  // reopened while the tick was in flight
  TickOutcome out;
  out.results.resize(1);
  out.results[0].text_delta = "stale";
  CHECK(book.ApplyTick(plan, out).empty());
  CHECK(book.FindBySession("old") == nullptr);
  CHECK(book.FindBySession("new") != nullptr);
  CHECK_EQ(book.Remove("a"), std::string("new"));
  CHECK_EQ(book.Remove("a"), std::string(""));
}

TEST_CASE("book: max_entries rotates fairly over the NPCs that want work") {
  SessionBook book;
  for (const char* id : {"a", "b", "c"}) book.Add(id, std::string("s-") + id);
  std::vector<std::string> seen;
  for (int frame = 0; frame < 3; ++frame) {
    TickPlan plan = book.BuildTick(1.0f, 0, 2);
    CHECK_EQ(plan.entries.size(), 2u);
    for (const auto& id : plan.npc_ids) seen.push_back(id);
  }
  // 6 slots over 3 NPCs: each one exactly twice.
  for (const char* id : {"a", "b", "c"}) {
    int count = 0;
    for (const auto& s : seen) count += s == id;
    CHECK_EQ(count, 2);
  }
}

TEST_CASE("book: eviction is reported as a lost session") {
  SessionBook book;
  book.Add("a", "sa");
  TickOutcome out;
  out.results.resize(1);
  out.results[0].finished = true;
  out.results[0].finish_reason = FinishReason::kEvicted;
  std::vector<SessionEvent> events = book.ApplyTick(book.BuildTick(1.0f, 0), out);
  CHECK_EQ(events.size(), 1u);
  CHECK(events[0].kind == SessionEventKind::kLost);
  CHECK(book.Find("a")->state == SessionState::kLost);
}

// ---- JSON ----------------------------------------------------------------------------------------------

TEST_CASE("json: objects, arrays, escapes, numbers") {
  json::Value v;
  std::string error;
  CHECK(json::Parse(R"({"a": [1, -2.5e1, true, null], "s": "\u00e9\ud83d\ude00\n", "big": 18446744073709551615})",
                    &v, &error));
  CHECK_EQ(v["a"].size(), 4u);
  CHECK_EQ(v["a"][0].as_int(), 1);
  CHECK_NEAR(v["a"][1].as_double(), -25.0, 1e-12);
  CHECK(v["a"][2].as_bool());
  CHECK(v["a"][3].is_null());
  CHECK_EQ(v["s"].as_string(), std::string("\xc3\xa9\xf0\x9f\x98\x80\n"));
  CHECK_EQ(v["big"].as_uint(), 18446744073709551615ull);
  CHECK(v["missing"]["deeper"].is_null());
}

TEST_CASE("json: errors name the line and column") {
  json::Value v;
  std::string error;
  CHECK(!json::Parse("{\n  \"a\": [1, 2,]\n}", &v, &error));
  CHECK(error.find("line 2") != std::string::npos);
  CHECK(!json::Parse("[1] x", &v, &error));
  CHECK(!json::Parse("\"unterminated", &v, &error));
}

// ---- manifest + fixed-capacity KV ----------------------------------------------------------------------

namespace {

const char* kManifest = R"({
  "format_version": 1, "kind": "causal-lm", "name": "tiny", "target": "portable", "precision": "fp32", "opset": 15,
  "files": {"model.onnx": "0000000000000000000000000000000000000000000000000000000000000000",
            "model.fixed.onnx": "0000000000000000000000000000000000000000000000000000000000000001",
            "tokenizer.json": "0000000000000000000000000000000000000000000000000000000000000002"},
  "inputs": [{"name": "input_ids"}, {"name": "attention_mask"}, {"name": "past_key_values.0.key"},
             {"name": "past_key_values.0.value"}, {"name": "past_key_values.1.key"}, {"name": "past_key_values.1.value"}],
  "outputs": [{"name": "logits"}, {"name": "present.0.key"}, {"name": "present.0.value"}, {"name": "present.1.key"},
              {"name": "present.1.value"}],
  "architecture": {"family": "llama", "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "head_dim": 4,
                   "hidden_size": 16, "vocab_size": 10, "context_length": 8},
  "kv_cache": {"layout": "growing", "capacity": 8, "dtype": "float32"},
  "special_tokens": {"bos": 1, "eos": [2], "pad": 0},
  "variants": {"fixed-capacity": {"file": "model.fixed.onnx", "layout": "fixed-capacity", "capacity": 6,
    "inputs": [
      {"name": "input_ids", "dtype": "int64", "shape": [1, 1]},
      {"name": "attention_mask", "dtype": "int64", "shape": [1, 7]},
      {"name": "position_ids", "dtype": "int64", "shape": [1, 1]},
      {"name": "past_key_values.0.key", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "past_key_values.0.value", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "past_key_values.1.key", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "past_key_values.1.value", "dtype": "float32", "shape": [1, 2, 6, 4]}],
    "outputs": [
      {"name": "logits", "dtype": "float32", "shape": [1, 1, 10]},
      {"name": "present.0.key", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "present.0.value", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "present.1.key", "dtype": "float32", "shape": [1, 2, 6, 4]},
      {"name": "present.1.value", "dtype": "float32", "shape": [1, 2, 6, 4]}]}}
})";

bool LoadTiny(ModelManifest* m, std::string* error) {
  json::Value root;
  return json::Parse(kManifest, &root, error) && ParseManifest(root, m, error);
}

}  // namespace

TEST_CASE("manifest: architecture, special tokens and the fixed variant") {
  ModelManifest m;
  std::string error;
  CHECK(LoadTiny(&m, &error));
  CHECK_EQ(m.num_layers, 2u);
  CHECK_EQ(m.vocab_size, 10u);
  CHECK_EQ(m.bos, 1);
  CHECK_EQ(m.eos.size(), 1u);
  CHECK(m.fixed.present);
  CHECK_EQ(m.fixed.capacity, 6u);
  CHECK_EQ(m.fixed.inputs.size(), 7u);
  CHECK(m.fixed.inputs[3].IsStatic());
  CHECK_EQ(m.fixed.inputs[3].Volume(), 48u);
}

TEST_CASE("manifest: wrong format_version names the field") {
  json::Value root;
  std::string error;
  CHECK(json::Parse(R"({"format_version": 2})", &root, &error));
  ModelManifest m;
  CHECK(!ParseManifest(root, &m, &error));
  CHECK(error.find("format_version") != std::string::npos);
}

TEST_CASE("manifest: file names stay inside the package") {
  CHECK(FileNameProblem("model.onnx").empty());
  CHECK(FileNameProblem("sub/x.bin").empty());
  for (const char* bad : {"../../secret.txt", "/etc/hostname", "a//b", "./x", "a/..", "C:/x", "a\\b", "", "manifest.json"}) {
    CHECK(!FileNameProblem(bad).empty());
  }
  std::string full, error;
  CHECK(ResolveInside("/tmp/npc-pkg", "sub/model.onnx", &full, &error));
  CHECK(full.find("npc-pkg") != std::string::npos);
  CHECK(!ResolveInside("/tmp/npc-pkg", "../secret.txt", &full, &error));
}

TEST_CASE("fixed kv: static shapes, mask selects the live slots, ping-pong swap") {
  ModelManifest m;
  std::string error;
  CHECK(LoadTiny(&m, &error));
  FixedKvCache kv;
  CHECK(kv.Init(m, &error));
  std::vector<TensorBuffer> in = kv.Inputs();
  CHECK_EQ(in.size(), 7u);
  CHECK_EQ(in[1].name, std::string("attention_mask"));
  CHECK_EQ(in[1].shape, (std::vector<uint64_t>{1, 7}));
  CHECK_EQ(in[1].bytes(), 7u * 8u);
  CHECK_EQ(in[3].bytes(), 48u * 4u);
  CHECK_EQ(kv.MaskValues(), (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1}));

  void* past0 = kv.Inputs()[3].data();
  void* present0 = kv.Outputs()[1].data();
  CHECK(past0 != present0);
  CHECK(kv.PrepareStep(1));
  kv.CommitStep();
  CHECK_EQ(kv.position(), 1u);
  CHECK_EQ(kv.MaskValues(), (std::vector<int64_t>{1, 0, 0, 0, 0, 0, 1}));
  CHECK(kv.Inputs()[3].data() == present0);  // present became past, no copy
  CHECK(kv.Outputs()[1].data() == past0);

  for (int i = 0; i < 5; ++i) {
    CHECK(kv.PrepareStep(3));
    kv.CommitStep();
  }
  CHECK(kv.full());
  CHECK(!kv.PrepareStep(3));
  kv.Reset();
  CHECK_EQ(kv.position(), 0u);
  CHECK_EQ(kv.MaskValues(), (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1}));
}

TEST_CASE("fixed kv: position_ids carries the slot, argmax reads logits") {
  ModelManifest m;
  std::string error;
  CHECK(LoadTiny(&m, &error));
  FixedKvCache kv;
  CHECK(kv.Init(m, &error));
  kv.PrepareStep(7);
  kv.CommitStep();
  kv.PrepareStep(8);
  std::vector<TensorBuffer> in = kv.Inputs();
  CHECK_EQ(*static_cast<int64_t*>(in[0].data()), 8);  // input_ids
  CHECK_EQ(*static_cast<int64_t*>(in[2].data()), 1);  // position_ids
  float* logits = static_cast<float*>(kv.Outputs()[0].data());
  logits[6] = 3.0f;
  CHECK_EQ(kv.ArgMax(), 6);
}

TEST_CASE("fixed kv: a package without the variant is refused with a hint") {
  ModelManifest m;
  std::string error;
  CHECK(LoadTiny(&m, &error));
  m.fixed.present = false;
  FixedKvCache kv;
  CHECK(!kv.Init(m, &error));
  CHECK(error.find("portable") != std::string::npos);
}

// ---- StepStream -----------------------------------------------------------------------------------------

namespace {
struct Recorder {
  std::vector<std::string> events;
  StepStreamCallbacks Callbacks() {
    StepStreamCallbacks c;
    c.on_action = [this](const ActionChosenInfo& a) { events.push_back("action " + a.action); };
    c.on_sentence = [this](const std::string& s) { events.push_back("sentence [" + s + "]"); };
    c.on_done = [this](const DecisionInfo& d) { events.push_back("done " + d.dialogue); };
    return c;
  }
};

DialogueDeltaInfo Delta(const std::string& text, bool end) {
  DialogueDeltaInfo d;
  d.text = text;
  d.sentence_end = end;
  return d;
}
}  // namespace

TEST_CASE("step stream: deltas accumulate into sentences, the rest is raised at done") {
  Recorder r;
  StepStreamAssembler a(r.Callbacks());
  ActionChosenInfo action;
  action.action = "warn";
  CHECK(a.Action(action).ok());
  CHECK(a.Dialogue(Delta("Halt", false)).ok());
  CHECK_EQ(a.pending(), std::string("Halt"));
  CHECK(a.Dialogue(Delta("!", true)).ok());
  CHECK(a.Dialogue(Delta("", true)).ok());  // nothing buffered: no empty sentence
  CHECK(a.Dialogue(Delta(" Go", false)).ok());
  CHECK(!a.End().ok());
  DecisionInfo done;
  done.dialogue = "Halt! Go";
  CHECK(a.Done(done).ok());
  CHECK(a.done());
  CHECK(a.End().ok());
  const std::vector<std::string> want = {"action warn", "sentence [Halt!]", "sentence [ Go]", "done Halt! Go"};
  CHECK(r.events == want);
}

TEST_CASE("step stream: out-of-order chunks are INTERNAL errors naming the chunk") {
  Recorder r;
  StepStreamAssembler a(r.Callbacks());
  Status s = a.Dialogue(Delta("Hi", true));
  CHECK(s.code == StatusCode::kInternal);
  CHECK(s.message.find("dialogue chunk before the action") != std::string::npos);
  CHECK(a.Done(DecisionInfo()).code == StatusCode::kInternal);
  CHECK(a.End().message.find("before the action") != std::string::npos);
  CHECK(a.Action(ActionChosenInfo()).ok());
  s = a.Action(ActionChosenInfo());
  CHECK(s.message.find("second action") != std::string::npos);
  CHECK(a.Done(DecisionInfo()).ok());
  CHECK(a.Dialogue(Delta("late", true)).message.find("after done") != std::string::npos);
  CHECK_EQ(r.events.size(), 2u);  // the action and done only
}

TEST_CASE("cancel token: cancels the attached call once, late attachments at once, nothing after detach") {
  CancelToken token;
  int calls = 0;
  token.Attach([&calls] { ++calls; });
  CHECK(!token.cancelled());
  token.Cancel();
  token.Cancel();
  CHECK(token.cancelled());
  CHECK_EQ(calls, 2);  // TryCancel is idempotent; the token does not need to count
  token.Detach();
  token.Cancel();
  CHECK_EQ(calls, 2);
  int late = 0;
  token.Attach([&late] { ++late; });  // a call that starts after Cancel is cancelled at once
  CHECK_EQ(late, 1);
  token.Detach();
}

int main(int argc, char** argv) { return npc_test::RunAll(argc > 1 ? argv[1] : ""); }
