// Live check of the fleet and save-game parts of the C++ client against a real `npcrt serve` (started by
// run_integration.py with --replica NAME, passed here in NPC_EXPECT_REPLICA): SaveSession (with and
// without the KV cache) and RestoreSession under new ids, then every copy and the original ticked with
// the same player line produce the same greedy tokens; the server's `npcrt-replica` metadata is read back;
// damaged bytes and a taken id are refused with the contract's codes.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "npc/npc_client.h"
#include "npc/session_book.h"
#include "test_harness.h"

using namespace npc;

namespace {

std::string g_target;
constexpr float kBudgetMs = 50.0f;
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

#define CHECK_OK(expr)                                                                                       \
  do {                                                                                                       \
    const ::npc::Status npc_s_ = (expr);                                                                     \
    if (!npc_s_.ok()) ::npc_test::Fail(__FILE__, __LINE__, std::string(#expr) + " -> " + npc_s_.ToString()); \
  } while (0)

// Ticks until every session of the book is idle, each NPC in its own Tick (as a fleet client does);
// returns the finished turns by npc id.
std::vector<SessionEvent> DriveUntilIdle(SessionBook& book) {
  std::vector<SessionEvent> finished;
  for (int frame = 0; frame < kMaxFrames; ++frame) {
    const TickPlan plan = book.BuildTick(kBudgetMs, 0);
    if (plan.entries.empty()) break;
    for (const TickPlan& one : SplitTickByNpc(plan)) {
      TickOutcome outcome;
      const Status status = Client().Tick(one.entries, &outcome);
      if (!status.ok()) {
        book.ApplyTickFailure(one);
        ::npc_test::Fail(__FILE__, __LINE__, "Tick -> " + status.ToString());
        return finished;
      }
      for (const SessionEvent& ev : book.ApplyTick(one, outcome)) {
        if (ev.kind == SessionEventKind::kFinished) finished.push_back(ev);
        if (ev.kind == SessionEventKind::kLost || ev.kind == SessionEventKind::kEntryError) {
          ::npc_test::Fail(__FILE__, __LINE__, "session of " + ev.npc_id + ": " + ev.text);
        }
      }
    }
  }
  return finished;
}

const SessionEvent* TurnOf(const std::vector<SessionEvent>& turns, const std::string& npc_id) {
  for (const SessionEvent& ev : turns) {
    if (ev.npc_id == npc_id) return &ev;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("snapshots: save, restore under new ids, tick all: the same greedy tokens; npcrt-replica read back") {
  OpenSessionOptions open;
  open.npc_id = "saver-01";
  open.prefix = "The ferryman leans on his pole.";
  open.prompt = " \"The river keeps its own counsel,\" he says.";
  open.max_new_tokens = 10;
  OpenedSession opened;
  CHECK_OK(Client().OpenSession(open, &opened));
  SessionBook book;
  book.Add("saver-01", opened.session_id);
  CHECK_EQ(DriveUntilIdle(book).size(), 1u);  // the first turn ends: a save-game point

  SessionSnapshotInfo with_kv, plain;
  CHECK_OK(Client().SaveSession(opened.session_id, true, &with_kv));
  CHECK_OK(Client().SaveSession(opened.session_id, false, &plain));
  CHECK_EQ(with_kv.session_id, opened.session_id);
  CHECK(with_kv.context_tokens > 0);
  CHECK_EQ(plain.context_tokens, with_kv.context_tokens);
  CHECK(with_kv.data.size() > plain.data.size());  // the KV cache rides along
  std::printf("     snapshot of %u tokens: %zu bytes with KV, %zu without\n", with_kv.context_tokens,
              with_kv.data.size(), plain.data.size());

  // A save-game is loaded under new ids (the original still runs here): one copy per snapshot kind.
  const std::vector<std::pair<std::string, const SessionSnapshotInfo*>> copies = {{"loaded-kv", &with_kv},
                                                                                   {"loaded-plain", &plain}};
  for (const auto& copy : copies) {
    RestoreSessionOptions restore;
    restore.snapshot = copy.second->data;
    restore.npc_id = copy.first;
    restore.session_id = opened.session_id + "-" + copy.first;
    OpenedSession restored;
    CHECK_OK(Client().RestoreSession(restore, &restored));
    CHECK_EQ(restored.session_id, restore.session_id);
    CHECK_EQ(Client().NpcOfSession(restored.session_id), copy.first);
    CHECK(book.Add(copy.first, restored.session_id, SessionState::kIdle));
  }
  for (const std::string& npc_id : book.NpcIds()) CHECK(book.QueueInput(npc_id, " Will you take me across?"));
  const std::vector<SessionEvent> turns = DriveUntilIdle(book);
  CHECK_EQ(turns.size(), 3u);
  const SessionEvent* original = TurnOf(turns, "saver-01");
  CHECK(original != nullptr && !original->token_ids.empty());
  for (const auto& copy : copies) {
    const SessionEvent* restored = TurnOf(turns, copy.first);
    CHECK(restored != nullptr);
    if (original && restored) {
      CHECK(restored->token_ids == original->token_ids);
      CHECK_EQ(restored->text, original->text);
    }
  }
  if (original) std::printf("     %zu greedy tokens after the restore: \"%s\"\n", original->token_ids.size(), original->text.c_str());

  const char* expected = std::getenv("NPC_EXPECT_REPLICA");
  CHECK(!Client().last_replica().empty());
  if (expected) CHECK_EQ(Client().last_replica(), std::string(expected));
  std::printf("     answered by replica '%s'\n", Client().last_replica().c_str());

  // Damaged bytes, and an id already in use.
  RestoreSessionOptions bad;
  bad.snapshot = plain.data;
  bad.snapshot[bad.snapshot.size() / 2] ^= 0x5a;
  bad.npc_id = "saver-01";
  OpenedSession refused;
  CHECK(Client().RestoreSession(bad, &refused).code == StatusCode::kInvalidArgument);
  bad.snapshot = plain.data;
  bad.session_id = opened.session_id;
  CHECK(Client().RestoreSession(bad, &refused).code == StatusCode::kAlreadyExists);

  for (const std::string& npc_id : book.NpcIds()) CHECK_OK(Client().CloseSession(book.Remove(npc_id), nullptr));
}

TEST_CASE("snapshots: seeded sampling goes on from the saved RNG state (snapshot with KV)") {
  // Greedy output of the tiny random model can repeat one token; sampled output shows the state carried over.
  OpenSessionOptions open;
  open.npc_id = "seeded-01";
  open.prompt = "The bard tunes her lute.";
  open.sampling.temperature = 1.0f;
  open.sampling.seed = 1234;
  open.max_new_tokens = 12;
  OpenedSession opened;
  CHECK_OK(Client().OpenSession(open, &opened));
  SessionBook book;
  book.Add("seeded-01", opened.session_id);
  CHECK_EQ(DriveUntilIdle(book).size(), 1u);
  SessionSnapshotInfo snapshot;
  CHECK_OK(Client().SaveSession(opened.session_id, true, &snapshot));
  RestoreSessionOptions restore;
  restore.snapshot = snapshot.data;
  restore.npc_id = "seeded-copy";
  restore.session_id = opened.session_id + "-copy";
  OpenedSession restored;
  CHECK_OK(Client().RestoreSession(restore, &restored));
  CHECK(book.Add("seeded-copy", restored.session_id, SessionState::kIdle));
  for (const std::string& npc_id : book.NpcIds()) CHECK(book.QueueInput(npc_id, " Play us a song."));
  const std::vector<SessionEvent> turns = DriveUntilIdle(book);
  const SessionEvent* original = TurnOf(turns, "seeded-01");
  const SessionEvent* copy = TurnOf(turns, "seeded-copy");
  CHECK(original != nullptr && copy != nullptr);
  if (original && copy) {
    CHECK(!original->token_ids.empty());
    CHECK(copy->token_ids == original->token_ids);
    size_t distinct = 0;
    for (size_t i = 0; i < original->token_ids.size(); ++i) {
      distinct += (i == 0 || original->token_ids[i] != original->token_ids[i - 1]) ? 1 : 0;
    }
    std::printf("     %zu sampled tokens (%zu runs) identical after the restore\n", original->token_ids.size(), distinct);
  }
  for (const std::string& npc_id : book.NpcIds()) CHECK_OK(Client().CloseSession(book.Remove(npc_id), nullptr));
}

TEST_CASE("routing: a server ignores the key; a client with it off works the same") {
  ClientOptions options;
  options.target = g_target;
  options.deadline_ms = 20000.0;
  options.send_routing_key = false;
  NpcRuntimeClient plain(options);
  RegisterNpcOptions reg;
  reg.npc_id = "unrouted-01";
  reg.persona.name = "Ada";
  reg.persona.role = "villager";
  reg.fsm_name = "villager";
  reg.replace = true;
  RegisteredNpc registered;
  CHECK_OK(plain.RegisterNpc(reg, &registered));
  StepOptions step;
  step.npc_id = "unrouted-01";
  step.deadline_ms = 5000.0f;
  DecisionInfo decision;
  CHECK_OK(plain.Step(step, &decision));
  CHECK(!decision.action.empty());
  CHECK(!plain.last_replica().empty());
  CHECK_OK(plain.UnregisterNpc("unrouted-01", true));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT [PORTABLE_PACKAGE_DIR] [filter]\n", argv[0]);
    return 2;
  }
  g_target = argv[1];
  return npc_test::RunAll(argc > 3 ? argv[3] : "");
}
