// Integration test: the core's C++ gRPC client against a live Python server (started by
// run_integration.py, which passes "host:port"). Handshake, models, sessions driven by frame-budgeted
// Ticks through the SessionBook, streaming Generate, cancel/close, and the status codes of bad input;
// NpcAgent: register/step, StepStream (event order, cancel) and RecallMemories.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "npc/bpe_tokenizer.h"
#include "npc/fixed_kv_cache.h"
#include "npc/model_manifest.h"
#include "npc/npc_client.h"
#include "npc/session_book.h"
#include "test_harness.h"

using namespace npc;

namespace {

std::string g_target;
std::string g_portable;  // a `portable` package exported from the same model (the local brain's input)
constexpr float kBudgetMs = 50.0f;  // per-entry server budget of a frame's Tick
constexpr int kMaxFrames = 3000;

NpcRuntimeClient& Client() {
  static ClientOptions options = [] {
    ClientOptions o;
    o.target = g_target;
    o.deadline_ms = 20000.0;
    return o;
  }();
  static NpcRuntimeClient client(options);
  return client;
}

#define CHECK_OK(expr)                                                                             \
  do {                                                                                             \
    const ::npc::Status npc_s_ = (expr);                                                           \
    if (!npc_s_.ok()) ::npc_test::Fail(__FILE__, __LINE__, std::string(#expr) + " -> " + npc_s_.ToString()); \
  } while (0)

#define CHECK_CODE(expr, want)                                                                     \
  do {                                                                                             \
    const ::npc::Status npc_s_ = (expr);                                                           \
    if (npc_s_.code != (want))                                                                     \
      ::npc_test::Fail(__FILE__, __LINE__, std::string(#expr) + " -> " + npc_s_.ToString() +       \
                                               " (wanted " + ::npc::StatusCodeName(want) + ")");   \
    else                                                                                           \
      std::printf("     %s -> %s\n", #want, npc_s_.message.c_str());                               \
  } while (0)

OpenSessionOptions GreedyPrompt(const std::string& npc_id, uint32_t max_new_tokens) {
  OpenSessionOptions o;
  o.npc_id = npc_id;
  o.prefix = "The blacksmith wipes the soot from his hands.";
  o.prompt = " \"Steel does not lie,\" he says.";
  o.max_new_tokens = max_new_tokens;
  return o;
}

// Registers a guard with one seed memory on the server (replacing an earlier one of that id).
void RegisterGuard(const std::string& npc_id) {
  RegisterNpcOptions reg;
  reg.npc_id = npc_id;
  reg.persona.name = "Bram";
  reg.persona.role = "guard";
  reg.fsm_name = "guard";
  reg.memories.emplace_back("The merchant owes the guard three coins.", 6.0f);
  reg.replace = true;
  RegisteredNpc registered;
  CHECK_OK(Client().RegisterNpc(reg, &registered));
}

StepOptions Greeting(const std::string& npc_id) {
  StepOptions step;
  step.npc_id = npc_id;
  step.game_time_s = 5.0;
  step.values["player_distance"] = 2.0;
  step.player_utterance = "Hello there, guard. Any news?";
  step.deadline_ms = 5000.0f;
  return step;
}

// What a StepStream raised, in order, with when (ms since the call started).
struct StreamLog {
  std::vector<std::string> kinds;  // "action", "sentence", "done"
  ActionChosenInfo action;
  std::vector<std::string> sentences;
  DecisionInfo done;
  double action_ms = -1.0, first_sentence_ms = -1.0, done_ms = -1.0;
};

StepStreamCallbacks Record(StreamLog* log, std::chrono::steady_clock::time_point start) {
  const auto since = [start] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  StepStreamCallbacks c;
  c.on_action = [log, since](const ActionChosenInfo& a) {
    log->kinds.push_back("action");
    log->action = a;
    log->action_ms = since();
  };
  c.on_sentence = [log, since](const std::string& s) {
    log->kinds.push_back("sentence");
    log->sentences.push_back(s);
    if (log->first_sentence_ms < 0) log->first_sentence_ms = since();
  };
  c.on_done = [log, since](const DecisionInfo& d) {
    log->kinds.push_back("done");
    log->done = d;
    log->done_ms = since();
  };
  return c;
}

// Ticks the book until every session is idle (or `max_frames`), as a game loop would, one Tick per
// frame for all sessions. Returns the finished events.
std::vector<SessionEvent> DriveUntilIdle(SessionBook& book, float budget_ms, uint32_t max_tokens, int max_frames,
                                         uint32_t* max_tokens_seen, int* frames) {
  std::vector<SessionEvent> finished;
  for (*frames = 0; *frames < max_frames; ++*frames) {
    TickPlan plan = book.BuildTick(budget_ms, max_tokens);
    if (plan.entries.empty()) break;
    TickOutcome outcome;
    const Status status = Client().Tick(plan.entries, &outcome);
    if (!status.ok()) {
      book.ApplyTickFailure(plan);
      ::npc_test::Fail(__FILE__, __LINE__, "Tick -> " + status.ToString());
      break;
    }
    for (const TickResultInfo& r : outcome.results) {
      if (r.token_ids.size() > *max_tokens_seen) *max_tokens_seen = static_cast<uint32_t>(r.token_ids.size());
    }
    for (const SessionEvent& ev : book.ApplyTick(plan, outcome)) {
      if (ev.kind == SessionEventKind::kFinished) finished.push_back(ev);
      if (ev.kind == SessionEventKind::kLost || ev.kind == SessionEventKind::kEntryError) {
        ::npc_test::Fail(__FILE__, __LINE__, "session " + ev.npc_id + ": " + ev.text);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // "next frame"
  }
  return finished;
}

}  // namespace

TEST_CASE("handshake: protocol 1 and the tick/generate capabilities") {
  HandshakeInfo info;
  CHECK_OK(Client().Handshake(&info));
  CHECK_EQ(info.protocol_version, std::string("1"));
  bool tick = false, generate = false;
  for (const auto& c : info.capabilities) {
    tick |= c == "tick";
    generate |= c == "generate";
  }
  CHECK(tick);
  CHECK(generate);
  CHECK(info.max_tick_entries > 0);
  std::printf("     server %s, %zu capabilities, max_tick_entries %u\n", info.server_version.c_str(),
              info.capabilities.size(), info.max_tick_entries);
}

TEST_CASE("list models: the served package") {
  std::vector<ModelInfo> models;
  CHECK_OK(Client().ListModels(&models));
  CHECK(!models.empty());
  if (!models.empty()) {
    CHECK_EQ(models[0].kind, std::string("causal-lm"));
    CHECK(models[0].context_length > 0);
    CHECK(models[0].vocab_size > 0);
  }
}

TEST_CASE("tick: two NPCs in one Tick per frame, budget + max_tokens respected, turns finish") {
  SessionBook book;
  for (const char* npc_id : {"guard-01", "merchant-02"}) {
    OpenedSession opened;
    CHECK_OK(Client().OpenSession(GreedyPrompt(npc_id, 12), &opened));
    CHECK(!opened.session_id.empty());
    CHECK(opened.prompt_tokens > 0);
    CHECK(book.Add(npc_id, opened.session_id));
  }
  uint32_t max_seen = 0;
  int frames = 0;
  // A roomy budget: the server keeps its budget strictly (no step whose predicted cost exceeds it), so a
  // tiny one on a loaded CI machine could legitimately make no progress; max_tokens is what is checked.
  std::vector<SessionEvent> finished = DriveUntilIdle(book, kBudgetMs, 3, kMaxFrames, &max_seen, &frames);
  CHECK_EQ(finished.size(), 2u);
  CHECK(max_seen <= 3u);  // never more than max_tokens per entry per tick
  CHECK(frames >= 4);     // 12 tokens at <= 3 per tick: at least 4 frames
  for (const SessionEvent& ev : finished) {
    CHECK(ev.token_ids.size() <= 12u);
    CHECK(ev.finish_reason == FinishReason::kLength || ev.finish_reason == FinishReason::kEos);
  }
  // Same prompt, greedy: both NPCs said the same thing, batched together.
  if (finished.size() == 2) CHECK(finished[0].token_ids == finished[1].token_ids);
  std::printf("     %d frames, %zu tokens: \"%s\"\n", frames, finished.empty() ? 0 : finished[0].token_ids.size(),
              finished.empty() ? "" : finished[0].text.c_str());

  // A new player line starts a second turn on the same session (no re-prefill of the history).
  CHECK(book.QueueInput("guard-01", " Who goes there?"));
  finished = DriveUntilIdle(book, kBudgetMs, 0, kMaxFrames, &max_seen, &frames);
  CHECK_EQ(finished.size(), 1u);
  CHECK_EQ(book.Find("guard-01")->turns_finished, 2u);

  for (const std::string& npc_id : book.NpcIds()) {
    uint32_t context_tokens = 0;
    CHECK_OK(Client().CloseSession(book.Remove(npc_id), &context_tokens));
    CHECK(context_tokens > 0);
  }
}

TEST_CASE("generate: streams a turn; the greedy tokens equal the ticked ones") {
  OpenedSession a, b;
  CHECK_OK(Client().OpenSession(GreedyPrompt("gen-a", 8), &a));
  CHECK_OK(Client().OpenSession(GreedyPrompt("gen-b", 8), &b));

  std::vector<uint32_t> streamed;
  std::string text;
  int chunks = 0;
  bool saw_finished = false;
  GenerateOptions g;
  g.session_id = a.session_id;
  CHECK_OK(Client().Generate(g, [&](const GenerateChunkInfo& chunk) {
    ++chunks;
    streamed.insert(streamed.end(), chunk.token_ids.begin(), chunk.token_ids.end());
    text += chunk.text;
    saw_finished |= chunk.finished;
    return true;
  }));
  CHECK(saw_finished);
  CHECK(!streamed.empty());
  CHECK(streamed.size() <= 8u);

  SessionBook book;
  book.Add("gen-b", b.session_id);
  uint32_t max_seen = 0;
  int frames = 0;
  std::vector<SessionEvent> finished = DriveUntilIdle(book, kBudgetMs, 0, kMaxFrames, &max_seen, &frames);
  CHECK_EQ(finished.size(), 1u);
  if (!finished.empty()) {
    CHECK(finished[0].token_ids == streamed);
    CHECK_EQ(finished[0].text, text);
  }
  std::printf("     %d chunks, %zu tokens\n", chunks, streamed.size());
  CHECK_OK(Client().CloseSession(a.session_id, nullptr));
  CHECK_OK(Client().CloseSession(b.session_id, nullptr));
}

TEST_CASE("generate: stopping the stream early cancels the turn; the session stays usable") {
  OpenedSession s;
  CHECK_OK(Client().OpenSession(GreedyPrompt("gen-stop", 200), &s));
  GenerateOptions g;
  g.session_id = s.session_id;
  int chunks = 0;
  bool last_finished = false;
  // The client stops after the first chunk. A chunk carries every token decoded since the last write, so on a
  // fast machine the whole turn can come as one (finished) chunk: then the call ends OK, else CANCELLED.
  const Status st = Client().Generate(g, [&](const GenerateChunkInfo& c) {
    ++chunks;
    last_finished = c.finished;
    return false;
  });
  CHECK_EQ(chunks, 1);
  CHECK(st.code == StatusCode::kCancelled || (st.ok() && last_finished));
  // The session is still open: a new turn streams again.
  g.input = " And then?";
  g.max_tokens = 3;
  std::vector<uint32_t> tokens;
  CHECK_OK(Client().Generate(g, [&](const GenerateChunkInfo& c) {
    tokens.insert(tokens.end(), c.token_ids.begin(), c.token_ids.end());
    return true;
  }));
  CHECK(!tokens.empty());
  CHECK(tokens.size() <= 3u);
  bool was_running = true;
  CHECK_OK(Client().Cancel(s.session_id, &was_running));  // nothing running now
  CHECK(!was_running);
  CHECK_OK(Client().CloseSession(s.session_id, nullptr));
}

TEST_CASE("status: unknown session is NOT_FOUND (per Tick entry, and for Generate/Cancel/Close)") {
  OpenedSession live;
  CHECK_OK(Client().OpenSession(GreedyPrompt("live", 4), &live));
  std::vector<TickEntryOptions> entries(2);
  entries[0].session_id = "no-such-session";
  entries[0].budget_ms = 2.0f;
  entries[1].session_id = live.session_id;
  entries[1].budget_ms = 20.0f;
  TickOutcome outcome;
  CHECK_OK(Client().Tick(entries, &outcome));
  CHECK_EQ(outcome.results.size(), 2u);
  if (outcome.results.size() == 2) {
    CHECK_EQ(outcome.results[0].error_code, 5);
    CHECK(!outcome.results[0].error.empty());
    CHECK_EQ(outcome.results[1].error_code, 0);  // the other entry is unaffected
    std::printf("     entry error: %s\n", outcome.results[0].error.c_str());
  }
  GenerateOptions g;
  g.session_id = "no-such-session";
  CHECK_CODE(Client().Generate(g, [](const GenerateChunkInfo&) { return true; }), StatusCode::kNotFound);
  CHECK_CODE(Client().Cancel("no-such-session", nullptr), StatusCode::kNotFound);
  CHECK_CODE(Client().CloseSession("no-such-session", nullptr), StatusCode::kNotFound);
  CHECK_OK(Client().CloseSession(live.session_id, nullptr));
  CHECK_CODE(Client().CloseSession(live.session_id, nullptr), StatusCode::kNotFound);  // closed = unknown
}

TEST_CASE("status: bad parameters are INVALID_ARGUMENT, an unknown model NOT_FOUND") {
  OpenedSession out;
  OpenSessionOptions hot = GreedyPrompt("hot", 4);
  hot.sampling.temperature = 9.0f;  // range [0, 5]
  CHECK_CODE(Client().OpenSession(hot, &out), StatusCode::kInvalidArgument);
  OpenSessionOptions penalty = GreedyPrompt("pen", 4);
  penalty.sampling.repetition_penalty = 7.0f;  // range [0, 3]
  CHECK_CODE(Client().OpenSession(penalty, &out), StatusCode::kInvalidArgument);
  OpenSessionOptions model = GreedyPrompt("nomodel", 4);
  model.model = "no-such-model";
  CHECK_CODE(Client().OpenSession(model, &out), StatusCode::kNotFound);

  // A negative budget: the server names the field (whole call or that entry).
  OpenedSession live;
  CHECK_OK(Client().OpenSession(GreedyPrompt("budget", 4), &live));
  std::vector<TickEntryOptions> entries(1);
  entries[0].session_id = live.session_id;
  entries[0].budget_ms = -1.0f;
  TickOutcome outcome;
  const Status st = Client().Tick(entries, &outcome);
  const bool rejected = st.code == StatusCode::kInvalidArgument ||
                        (st.ok() && outcome.results.size() == 1 && outcome.results[0].error_code == 3);
  CHECK(rejected);
  std::printf("     negative budget -> %s %s\n", st.ToString().c_str(),
              outcome.results.empty() ? "" : outcome.results[0].error.c_str());
  CHECK_OK(Client().CloseSession(live.session_id, nullptr));
}

TEST_CASE("agent: register, step, unregister when the server offers NpcAgent") {
  HandshakeInfo info;
  CHECK_OK(Client().Handshake(&info));
  bool agent = false;
  for (const auto& c : info.capabilities) agent |= c == "agent";
  StepOptions ghost;
  ghost.npc_id = "no-such-npc";
  DecisionInfo decision;
  const Status unknown = Client().Step(ghost, &decision);
  if (!agent) {
    // Not served by this server build: the client reports it cleanly.
    CHECK(unknown.code == StatusCode::kUnimplemented || unknown.code == StatusCode::kNotFound);
    std::printf("     NpcAgent not offered by this server (%s)\n", unknown.ToString().c_str());
    return;
  }
  CHECK(unknown.code == StatusCode::kNotFound);
  RegisterNpcOptions reg;
  reg.npc_id = "guard-int";
  reg.persona.name = "Bram";
  reg.persona.role = "guard";
  reg.fsm_name = "guard";
  reg.replace = true;
  RegisteredNpc registered;
  CHECK_OK(Client().RegisterNpc(reg, &registered));
  CHECK(!registered.allowed_actions.empty());
  StepOptions step;
  step.npc_id = "guard-int";
  step.game_time_s = 1.0;
  step.values["player_distance"] = 3.0;
  step.player_utterance = "Hello there.";
  step.deadline_ms = 2000.0f;
  CHECK_OK(Client().Step(step, &decision));
  bool allowed = false;
  for (const auto& a : decision.allowed_actions) allowed |= a == decision.action;
  CHECK(allowed);  // the action is always one the FSM allows
  std::printf("     state %s, action %s (%s)\n", decision.state.c_str(), decision.action.c_str(), decision.reason.c_str());
  CHECK_OK(Client().UnregisterNpc("guard-int", true));
}

TEST_CASE("agent stream: the action first, then sentences, then done; the sentences are the whole line") {
  RegisterGuard("guard-stream");
  StreamLog log;
  const auto start = std::chrono::steady_clock::now();
  CHECK_OK(Client().StepStream(Greeting("guard-stream"), Record(&log, start)));
  CHECK(log.kinds.size() >= 2u);
  if (log.kinds.size() < 2u) return;
  CHECK_EQ(log.kinds.front(), std::string("action"));
  CHECK_EQ(log.kinds.back(), std::string("done"));
  for (size_t i = 1; i + 1 < log.kinds.size(); ++i) CHECK_EQ(log.kinds[i], std::string("sentence"));
  CHECK_EQ(log.done.action, log.action.action);  // the action is final: never retracted
  CHECK(log.done.arguments == log.action.arguments);
  CHECK_EQ(log.done.npc_id, std::string("guard-stream"));
  std::string joined;
  for (const std::string& s : log.sentences) joined += s;
  CHECK_EQ(joined, log.done.dialogue);
  bool allowed = false;
  for (const auto& a : log.action.allowed_actions) allowed |= a == log.action.action;
  CHECK(allowed);
  CHECK(log.action_ms <= log.done_ms);
  std::printf("     action %s after %.1f ms (server %.1f ms); %zu sentences, first after %.1f ms; done after %.1f ms\n",
              log.action.action.c_str(), log.action_ms, log.action.latency_ms, log.sentences.size(),
              log.first_sentence_ms, log.done_ms);
  std::printf("     line: \"%s\"\n", log.done.dialogue.c_str());
  CHECK_OK(Client().UnregisterNpc("guard-stream", true));
}

TEST_CASE("agent stream: unknown NPC is NOT_FOUND before any callback; a cancelled stream stops") {
  StreamLog log;
  const auto start = std::chrono::steady_clock::now();
  CHECK_CODE(Client().StepStream(Greeting("no-such-npc"), Record(&log, start)), StatusCode::kNotFound);
  CHECK(log.kinds.empty());

  RegisterGuard("guard-cancel");
  // Cancelled from the action callback: nothing more is raised and the call says CANCELLED.
  CancelToken token;
  StepStreamCallbacks callbacks = Record(&log, start);
  const auto on_action = callbacks.on_action;
  callbacks.on_action = [&token, on_action](const ActionChosenInfo& a) {
    on_action(a);
    token.Cancel();
  };
  CHECK_CODE(Client().StepStream(Greeting("guard-cancel"), callbacks, &token), StatusCode::kCancelled);
  CHECK(log.kinds == std::vector<std::string>{"action"});

  // Cancelled from another thread before the call starts: no callback at all.
  CancelToken early;
  std::thread([&early] { early.Cancel(); }).join();
  StreamLog none;
  CHECK_CODE(Client().StepStream(Greeting("guard-cancel"), Record(&none, start), &early), StatusCode::kCancelled);
  CHECK(none.kinds.empty());

  // The NPC is still usable: a whole streamed step runs.
  StreamLog again;
  CHECK_OK(Client().StepStream(Greeting("guard-cancel"), Record(&again, start)));
  CHECK(!again.kinds.empty() && again.kinds.back() == "done");
  CHECK_OK(Client().UnregisterNpc("guard-cancel", true));
}

TEST_CASE("agent memory: RecallMemories returns the seed and what the steps wrote; NOT_FOUND when unknown") {
  RegisterGuard("guard-memory");
  DecisionInfo decision;
  CHECK_OK(Client().Step(Greeting("guard-memory"), &decision));
  RecallOptions recent;
  recent.npc_id = "guard-memory";
  std::vector<MemoryInfo> memories;
  CHECK_OK(Client().RecallMemories(recent, &memories));
  CHECK(!memories.empty());
  bool seed = false;
  for (const MemoryInfo& m : memories) {
    seed |= m.text.find("three coins") != std::string::npos;
    CHECK(m.kind != MemoryKind::kUnspecified);
    CHECK(m.importance >= 0.0f && m.importance <= 10.0f);
  }
  CHECK(seed);
  RecallOptions query;
  query.npc_id = "guard-memory";
  query.query = "coins the merchant owes";
  query.limit = 1;
  std::vector<MemoryInfo> best;
  CHECK_OK(Client().RecallMemories(query, &best));
  CHECK_EQ(best.size(), 1u);
  std::printf("     %zu memories; best for \"%s\": \"%s\" (score %.3f, kind %d)\n", memories.size(),
              query.query.c_str(), best.empty() ? "" : best[0].text.c_str(), best.empty() ? 0.0 : best[0].score,
              best.empty() ? 0 : static_cast<int>(best[0].kind));
  RecallOptions ghost;
  ghost.npc_id = "no-such-npc";
  CHECK_CODE(Client().RecallMemories(ghost, &memories), StatusCode::kNotFound);
  CHECK_OK(Client().UnregisterNpc("guard-memory", true));
}

TEST_CASE("status: an unreachable server is UNAVAILABLE or DEADLINE_EXCEEDED, not a crash") {
  ClientOptions options;
  options.target = "127.0.0.1:1";  // nothing listens on port 1
  options.deadline_ms = 500.0;
  NpcRuntimeClient offline(options);
  HandshakeInfo info;
  const Status st = offline.Handshake(&info);
  CHECK(st.code == StatusCode::kUnavailable || st.code == StatusCode::kDeadlineExceeded);
}

TEST_CASE("local brain input: the exporter's portable package loads as the NNE brain reads it") {
  if (g_portable.empty()) {
    ::npc_test::Fail(__FILE__, __LINE__, "no portable package given");
    return;
  }
  ModelManifest manifest;
  std::string error;
  CHECK(LoadManifest(g_portable, &manifest, &error));
  CHECK(manifest.fixed.present);
  FixedKvCache kv;
  CHECK(kv.Init(manifest, &error));
  if (!error.empty()) std::printf("     %s\n", error.c_str());
  CHECK(kv.capacity() > 0);
  std::vector<TensorBuffer> inputs = kv.Inputs();
  CHECK_EQ(inputs.size(), manifest.fixed.inputs.size());
  for (const TensorBuffer& b : inputs) CHECK(b.bytes() > 0);
  BpeTokenizer tokenizer;
  CHECK(tokenizer.LoadFromFile(g_portable + "/tokenizer.json", &error));
  const std::string line = "Steel does not lie.";
  const std::vector<int64_t> ids = tokenizer.Encode(line);
  CHECK(!ids.empty());
  CHECK_EQ(tokenizer.Decode(ids, true), line);
  // The server tokenizes the same text the same way: its prompt_tokens count matches.
  OpenSessionOptions o;
  o.npc_id = "tok";
  o.prompt = line;
  o.max_new_tokens = 1;
  OpenedSession opened;
  CHECK_OK(Client().OpenSession(o, &opened));
  CHECK(opened.prompt_tokens == ids.size() || opened.prompt_tokens == ids.size() + 1);  // + BOS
  std::printf("     capacity %u, %zu inputs, %zu prompt ids (server: %u)\n", kv.capacity(), inputs.size(), ids.size(),
              opened.prompt_tokens);
  CHECK_OK(Client().CloseSession(opened.session_id, nullptr));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT [PORTABLE_PACKAGE_DIR] [filter]\n", argv[0]);
    return 2;
  }
  g_target = argv[1];
  g_portable = argc > 2 ? argv[2] : "";
  return npc_test::RunAll(argc > 3 ? argv[3] : "");
}
