// The core's gRPC client against a fake npc.v1 server on loopback (grpc++ sync server, port 0), to check
// what the client puts on the wire without a Python server: the fleet routing key (`x-npc-id` metadata) on
// every call that concerns one NPC, none where no single NPC is concerned, the `npcrt-replica` of the last
// response, and SaveSession / RestoreSession bytes. The fake answers from the request alone; what a real
// server does with snapshots is checked by integration_test.cpp against `npcrt serve`.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "npc/npc_client.h"
#include "npc/round_trip_budget.h"
#include "npc/session_book.h"
#include "npc_proto/v1/agent.grpc.pb.h"
#include "npc_proto/v1/runtime.grpc.pb.h"
#include "test_harness.h"

using namespace npc;
namespace v1 = ::npc::v1;

namespace {

const char kNone[] = "<none>";

// What the fake saw of each call: method name and its x-npc-id (kNone when absent).
struct Recorder {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> calls;
  std::string replica = "replica-a";  // sent back as npcrt-replica

  void Record(grpc::ServerContext* context, const char* method) {
    const auto& md = context->client_metadata();
    const auto found = md.find(kRoutingKeyHeader);
    std::lock_guard<std::mutex> lock(mutex);
    calls.emplace_back(method, found == md.end() ? std::string(kNone) : std::string(found->second.data(), found->second.size()));
    context->AddInitialMetadata(kReplicaHeader, replica);
  }
  std::pair<std::string, std::string> Last() {
    std::lock_guard<std::mutex> lock(mutex);
    return calls.empty() ? std::make_pair(std::string(), std::string()) : calls.back();
  }
  void SetReplica(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex);
    replica = name;
  }
};

const std::string kSnapshotMagic("SNAP\0\xff", 6);  // binary on purpose: bytes must survive as bytes

class FakeRuntime final : public v1::NpcRuntime::Service {
 public:
  explicit FakeRuntime(Recorder* recorder) : r_(recorder) {}
  grpc::Status Handshake(grpc::ServerContext* c, const v1::HandshakeRequest*, v1::HandshakeResponse* out) override {
    r_->Record(c, "Handshake");
    out->set_protocol_version("1");
    return grpc::Status::OK;
  }
  grpc::Status ListModels(grpc::ServerContext* c, const v1::ListModelsRequest*, v1::ListModelsResponse*) override {
    r_->Record(c, "ListModels");
    return grpc::Status::OK;
  }
  grpc::Status OpenSession(grpc::ServerContext* c, const v1::OpenSessionRequest* in, v1::OpenSessionResponse* out) override {
    r_->Record(c, "OpenSession");
    out->set_session_id("s-" + (in->npc_id().empty() ? std::string("anon") : in->npc_id()));
    return grpc::Status::OK;
  }
  grpc::Status Tick(grpc::ServerContext* c, const v1::TickRequest* in, v1::TickResponse* out) override {
    r_->Record(c, "Tick");
    for (const auto& e : in->entries()) {
      // "slow": a 20 ms round trip of which the server reports 1 ms (the rest looks like transport)
      if (e.session_id() == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (e.session_id() == "slow") out->set_tick_ms(1.0f);
      auto* result = out->add_results();
      result->set_session_id(e.session_id());
      result->mutable_stats()->set_tick_ms(e.budget_ms());   // echoes the budget this server received
      result->mutable_stats()->set_restore_ms(1.5f);
      result->mutable_stats()->set_restored_from("host");
    }
    return grpc::Status::OK;
  }
  grpc::Status Generate(grpc::ServerContext* c, const v1::GenerateRequest*, grpc::ServerWriter<v1::GenerateChunk>* w) override {
    r_->Record(c, "Generate");
    v1::GenerateChunk chunk;
    chunk.set_text("Halt.");
    chunk.set_finished(true);
    w->Write(chunk);
    return grpc::Status::OK;
  }
  grpc::Status Cancel(grpc::ServerContext* c, const v1::CancelRequest*, v1::CancelResponse*) override {
    r_->Record(c, "Cancel");
    return grpc::Status::OK;
  }
  grpc::Status CloseSession(grpc::ServerContext* c, const v1::CloseSessionRequest* in, v1::CloseSessionResponse*) override {
    r_->Record(c, "CloseSession");
    if (in->session_id() == "s-ghost") return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown session id 's-ghost'");
    return grpc::Status::OK;
  }
  grpc::Status SaveSession(grpc::ServerContext* c, const v1::SaveSessionRequest* in, v1::SessionSnapshot* out) override {
    r_->Record(c, "SaveSession");
    out->set_data(kSnapshotMagic + in->session_id() + (in->include_kv() ? "+kv" : ""));
    out->set_session_id(in->session_id());
    out->set_model("tiny");
    out->set_context_tokens(7);
    return grpc::Status::OK;
  }
  grpc::Status RestoreSession(grpc::ServerContext* c, const v1::RestoreSessionRequest* in, v1::OpenSessionResponse* out) override {
    r_->Record(c, "RestoreSession");
    const std::string& data = in->snapshot().data();
    if (data.compare(0, kSnapshotMagic.size(), kSnapshotMagic) != 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a session snapshot");
    }
    out->set_session_id(in->session_id().empty() ? data.substr(kSnapshotMagic.size()) : in->session_id());
    out->set_prompt_tokens(7);
    return grpc::Status::OK;
  }

 private:
  Recorder* r_;
};

class FakeAgent final : public v1::NpcAgent::Service {
 public:
  explicit FakeAgent(Recorder* recorder) : r_(recorder) {}
  grpc::Status RegisterNpc(grpc::ServerContext* c, const v1::RegisterNpcRequest* in, v1::RegisterNpcResponse* out) override {
    r_->Record(c, "RegisterNpc");
    out->set_npc_id(in->npc_id());
    return grpc::Status::OK;
  }
  grpc::Status UnregisterNpc(grpc::ServerContext* c, const v1::UnregisterNpcRequest*, v1::UnregisterNpcResponse*) override {
    r_->Record(c, "UnregisterNpc");
    return grpc::Status::OK;
  }
  grpc::Status Step(grpc::ServerContext* c, const v1::StepRequest* in, v1::Decision* out) override {
    r_->Record(c, "Step");
    out->set_npc_id(in->npc_id());
    out->set_action("idle");
    return grpc::Status::OK;
  }
  grpc::Status StepStream(grpc::ServerContext* c, const v1::StepRequest* in, grpc::ServerWriter<v1::StepChunk>* w) override {
    r_->Record(c, "StepStream");
    v1::StepChunk action;
    action.mutable_action()->set_npc_id(in->npc_id());
    action.mutable_action()->set_action("idle");
    w->Write(action);
    v1::StepChunk done;
    done.mutable_done()->set_npc_id(in->npc_id());
    done.mutable_done()->set_action("idle");
    w->Write(done);
    return grpc::Status::OK;
  }
  grpc::Status RecallMemories(grpc::ServerContext* c, const v1::RecallMemoriesRequest*, v1::RecallMemoriesResponse*) override {
    r_->Record(c, "RecallMemories");
    return grpc::Status::OK;
  }

 private:
  Recorder* r_;
};

// One fake server for the whole binary (port 0 on loopback).
struct Fake {
  Recorder recorder;
  FakeRuntime runtime{&recorder};
  FakeAgent agent{&recorder};
  std::unique_ptr<grpc::Server> server;
  std::string target;

  Fake() {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&runtime);
    builder.RegisterService(&agent);
    server = builder.BuildAndStart();
    target = "127.0.0.1:" + std::to_string(port);
  }
};

Fake& Server() {
  static Fake fake;
  return fake;
}

ClientOptions Options(bool routing = true) {
  ClientOptions o;
  o.target = Server().target;
  o.deadline_ms = 5000.0;
  o.send_routing_key = routing;
  return o;
}

// The routing key the fake saw on the last call, after checking that call was `method`.
std::string KeyOf(const char* method) {
  const auto last = Server().recorder.Last();
  if (last.first != method) ::npc_test::Fail(__FILE__, __LINE__, "last call was " + last.first + ", wanted " + method);
  return last.second;
}

#define CHECK_OK(expr)                                                                                       \
  do {                                                                                                       \
    const ::npc::Status npc_s_ = (expr);                                                                     \
    if (!npc_s_.ok()) ::npc_test::Fail(__FILE__, __LINE__, std::string(#expr) + " -> " + npc_s_.ToString()); \
  } while (0)

}  // namespace

TEST_CASE("routing: session calls carry the npc id the session was opened with") {
  NpcRuntimeClient client(Options());
  OpenSessionOptions open;
  open.npc_id = "guard-01";
  OpenedSession opened;
  CHECK_OK(client.OpenSession(open, &opened));
  CHECK_EQ(KeyOf("OpenSession"), std::string("guard-01"));
  CHECK_EQ(client.NpcOfSession(opened.session_id), std::string("guard-01"));

  TickOutcome outcome;
  TickEntryOptions entry;
  entry.session_id = opened.session_id;
  CHECK_OK(client.Tick({entry}, &outcome));
  CHECK_EQ(KeyOf("Tick"), std::string("guard-01"));
  CHECK(outcome.results.size() == 1 && outcome.results[0].restored_from == "host");
  CHECK(outcome.results.size() == 1 && outcome.results[0].restore_ms == 1.5f);

  GenerateOptions generate;
  generate.session_id = opened.session_id;
  CHECK_OK(client.Generate(generate, [](const GenerateChunkInfo&) { return true; }));
  CHECK_EQ(KeyOf("Generate"), std::string("guard-01"));

  bool was_running = false;
  CHECK_OK(client.Cancel(opened.session_id, &was_running));
  CHECK_EQ(KeyOf("Cancel"), std::string("guard-01"));

  SessionSnapshotInfo snapshot;
  CHECK_OK(client.SaveSession(opened.session_id, false, &snapshot));
  CHECK_EQ(KeyOf("SaveSession"), std::string("guard-01"));

  CHECK_OK(client.CloseSession(opened.session_id, nullptr));
  CHECK_EQ(KeyOf("CloseSession"), std::string("guard-01"));
  CHECK_EQ(client.NpcOfSession(opened.session_id), std::string());  // forgotten once closed
}

TEST_CASE("routing: NpcAgent calls carry the request's npc id; Handshake and ListModels none") {
  NpcRuntimeClient client(Options());
  RegisterNpcOptions reg;
  reg.npc_id = "merchant-02";
  RegisteredNpc registered;
  CHECK_OK(client.RegisterNpc(reg, &registered));
  CHECK_EQ(KeyOf("RegisterNpc"), std::string("merchant-02"));
  StepOptions step;
  step.npc_id = "merchant-02";
  DecisionInfo decision;
  CHECK_OK(client.Step(step, &decision));
  CHECK_EQ(KeyOf("Step"), std::string("merchant-02"));
  StepStreamCallbacks callbacks;
  CHECK_OK(client.StepStream(step, callbacks));
  CHECK_EQ(KeyOf("StepStream"), std::string("merchant-02"));
  RecallOptions recall;
  recall.npc_id = "merchant-02";
  std::vector<MemoryInfo> memories;
  CHECK_OK(client.RecallMemories(recall, &memories));
  CHECK_EQ(KeyOf("RecallMemories"), std::string("merchant-02"));
  CHECK_OK(client.UnregisterNpc("merchant-02", false));
  CHECK_EQ(KeyOf("UnregisterNpc"), std::string("merchant-02"));

  HandshakeInfo info;
  CHECK_OK(client.Handshake(&info));
  CHECK_EQ(KeyOf("Handshake"), std::string(kNone));
  std::vector<ModelInfo> models;
  CHECK_OK(client.ListModels(&models));
  CHECK_EQ(KeyOf("ListModels"), std::string(kNone));
}

TEST_CASE("tick budgets are round-trip budgets: the measured transport time is taken off them") {
  NpcRuntimeClient client(Options());
  CHECK(client.round_trip_allowance_ms() == 0.0);
  TickOutcome outcome;
  TickEntryOptions slow;
  slow.session_id = "slow";
  slow.budget_ms = 100.0f;
  CHECK_OK(client.Tick({slow}, &outcome));
  CHECK(outcome.results.at(0).tick_ms == 100.0f);   // nothing measured yet: sent as given
  CHECK(client.round_trip_allowance_ms() >= 18.0);                // >= 20 ms round trip - 1 ms server
  TickEntryOptions zero, small;
  zero.session_id = "a";           // budget 0 = the server's default: left alone
  small.session_id = "b";
  small.budget_ms = 4.0f;          // eaten by the transport: a minimal tick, not 0
  CHECK_OK(client.Tick({slow, zero, small}, &outcome));
  CHECK(outcome.results.at(0).tick_ms <= 82.0f);
  CHECK(outcome.results.at(1).tick_ms == 0.0f);
  CHECK(std::fabs(outcome.results.at(2).tick_ms - RoundTripBudget::kMinServerBudgetMs) < 1e-4);

  ClientOptions raw_options = Options();
  raw_options.round_trip_budget = false;
  NpcRuntimeClient raw(raw_options);
  CHECK_OK(raw.Tick({slow}, &outcome));
  CHECK_OK(raw.Tick({slow}, &outcome));
  CHECK(outcome.results.at(0).tick_ms == 100.0f);
  CHECK(raw.round_trip_allowance_ms() == 0.0);
}

TEST_CASE("routing: a Tick of several NPCs carries none; SplitTickByNpc ticks each NPC with its key") {
  NpcRuntimeClient client(Options());
  SessionBook book;
  for (const char* npc_id : {"guard-01", "merchant-02", "smith-03"}) {
    OpenSessionOptions open;
    open.npc_id = npc_id;
    OpenedSession opened;
    CHECK_OK(client.OpenSession(open, &opened));
    book.Add(npc_id, opened.session_id);
  }
  const TickPlan plan = book.BuildTick(2.0f, 0);
  CHECK_EQ(plan.entries.size(), 3u);
  TickOutcome outcome;
  CHECK_OK(client.Tick(plan.entries, &outcome));
  CHECK_EQ(KeyOf("Tick"), std::string(kNone));

  const std::vector<TickPlan> per_npc = SplitTickByNpc(plan);
  CHECK_EQ(per_npc.size(), 3u);
  for (const TickPlan& one : per_npc) {
    CHECK_OK(client.Tick(one.entries, &outcome));
    CHECK_EQ(KeyOf("Tick"), one.npc_ids.at(0));
    CHECK(book.ApplyTick(one, outcome).empty());  // the fake decodes nothing: no events, no errors
  }
  // A session the client never opened (another client object's) is unknown until told.
  TickEntryOptions foreign;
  foreign.session_id = "s-elsewhere";
  CHECK_OK(client.Tick({foreign}, &outcome));
  CHECK_EQ(KeyOf("Tick"), std::string(kNone));
  client.SetSessionNpc("s-elsewhere", "bard-04");
  CHECK_OK(client.Tick({foreign}, &outcome));
  CHECK_EQ(KeyOf("Tick"), std::string("bard-04"));
}

TEST_CASE("routing: send_routing_key = false sends no x-npc-id") {
  NpcRuntimeClient client(Options(false));
  OpenSessionOptions open;
  open.npc_id = "guard-01";
  OpenedSession opened;
  CHECK_OK(client.OpenSession(open, &opened));
  CHECK_EQ(KeyOf("OpenSession"), std::string(kNone));
  StepOptions step;
  step.npc_id = "guard-01";
  DecisionInfo decision;
  CHECK_OK(client.Step(step, &decision));
  CHECK_EQ(KeyOf("Step"), std::string(kNone));
}

TEST_CASE("replica: last_replica names the replica of the latest response, errors included") {
  NpcRuntimeClient client(Options());
  CHECK_EQ(client.last_replica(), std::string());
  Server().recorder.SetReplica("replica-a");
  HandshakeInfo info;
  CHECK_OK(client.Handshake(&info));
  CHECK_EQ(client.last_replica(), std::string("replica-a"));
  Server().recorder.SetReplica("replica-b");
  StepOptions step;
  step.npc_id = "guard-01";
  CHECK_OK(client.StepStream(step, StepStreamCallbacks()));
  CHECK_EQ(client.last_replica(), std::string("replica-b"));
  Server().recorder.SetReplica("replica-c");
  const Status lost = client.CloseSession("s-ghost", nullptr);
  CHECK(lost.code == StatusCode::kNotFound);
  CHECK_EQ(client.last_replica(), std::string("replica-c"));
  Server().recorder.SetReplica("replica-a");
}

TEST_CASE("snapshots: SaveSession bytes restore under a new id, routed to the NPC given") {
  NpcRuntimeClient client(Options());
  OpenSessionOptions open;
  open.npc_id = "guard-01";
  OpenedSession opened;
  CHECK_OK(client.OpenSession(open, &opened));
  SessionSnapshotInfo snapshot;
  CHECK_OK(client.SaveSession(opened.session_id, true, &snapshot));
  const std::string want = kSnapshotMagic + opened.session_id + "+kv";
  CHECK(snapshot.data == std::vector<uint8_t>(want.begin(), want.end()));  // NUL and 0xff kept
  CHECK_EQ(snapshot.session_id, opened.session_id);
  CHECK_EQ(snapshot.model, std::string("tiny"));
  CHECK_EQ(snapshot.context_tokens, 7u);

  RestoreSessionOptions restore;
  restore.snapshot = snapshot.data;
  restore.npc_id = "guard-01";
  restore.session_id = "s-guard-01-loaded";
  OpenedSession restored;
  CHECK_OK(client.RestoreSession(restore, &restored));
  CHECK_EQ(KeyOf("RestoreSession"), std::string("guard-01"));
  CHECK_EQ(restored.session_id, std::string("s-guard-01-loaded"));
  CHECK_EQ(client.NpcOfSession("s-guard-01-loaded"), std::string("guard-01"));

  restore.snapshot = {'n', 'o', 'p', 'e'};
  CHECK(client.RestoreSession(restore, &restored).code == StatusCode::kInvalidArgument);  // the server's answer
  restore.snapshot.clear();
  const size_t calls = Server().recorder.calls.size();
  CHECK(client.RestoreSession(restore, &restored).code == StatusCode::kInvalidArgument);  // refused locally
  CHECK_EQ(Server().recorder.calls.size(), calls);
  CHECK(client.SaveSession(opened.session_id, false, nullptr).code == StatusCode::kInvalidArgument);
}

int main(int argc, char** argv) {
  const int rc = npc_test::RunAll(argc > 1 ? argv[1] : "");
  Server().server->Shutdown();
  return rc;
}
