// Checks the shared client vectors (clients_test/vectors, written by make_vectors.py) from C++:
//  * wire_vectors.json: every message's hex parses with the generated C++ protobuf code and re-serializes
//    (deterministic) to the same bytes; the messages the client writes (TickRequest, OpenSessionRequest,
//    StepRequest, RegisterNpcRequest) are rebuilt from their JSON through the client's own conversion
//    code and must serialize to the same bytes; the messages it reads (TickResponse, GenerateChunk,
//    HandshakeResponse, Decision) decode to the JSON's values;
//  * budget_vectors.json: the frame rule (PlanFrames) and the slicer give the recorded frames;
//  * stream_vectors.json: StepStream chunks, fed through the client's own conversion and StepStreamAssembler,
//    give the recorded action / sentence / done / error events.
// Usage: npc_vector_tests VECTORS_DIR [filter]. Prints "N passed, M failed" last.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "npc/bpe_tokenizer.h"
#include "npc/frame_budget_slicer.h"
#include "npc/mini_json.h"
#include "npc/model_manifest.h"
#include "npc/step_stream.h"
#include "proto_convert.h"
#include "test_harness.h"

using namespace npc;
namespace pb = google::protobuf;

namespace {

std::string g_dir;

const json::Value& Load(const std::string& name) {
  static std::map<std::string, json::Value> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  json::Value root;
  std::string error;
  if (!json::ParseFile(g_dir + "/" + name, &root, &error)) {
    ::npc_test::Fail(__FILE__, __LINE__, error);
  }
  return cache[name] = root;
}

std::string ToHex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// Same bytes as Python's SerializeToString(deterministic=True).
std::string Deterministic(const pb::Message& message) {
  std::string out;
  {
    pb::io::StringOutputStream stream(&out);
    pb::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

const json::Value* FindMessage(const std::string& type) {
  for (const json::Value& m : Load("wire_vectors.json")["messages"].items()) {
    if (m["type"].as_string() == type) return &m;
  }
  ::npc_test::Fail(__FILE__, __LINE__, "wire_vectors.json has no " + type);
  return nullptr;
}

// uint64 fields come as JSON strings from MessageToDict.
uint64_t U64(const json::Value& v) {
  return v.is_string() ? std::strtoull(v.as_string().c_str(), nullptr, 10) : v.as_uint();
}

std::vector<std::string> Strings(const json::Value& v) {
  std::vector<std::string> out;
  for (const json::Value& s : v.items()) out.push_back(s.as_string());
  return out;
}

ConstraintOptions ConstraintFrom(const json::Value& c) {
  ConstraintOptions out;
  out.allowed = Strings(c["allowed"]["sequences"]);
  out.json_schema = c["json_schema"].as_string();
  return out;
}

template <class Msg>
void CheckBuiltEquals(const std::string& type, const Msg& built) {
  const json::Value* m = FindMessage(type);
  if (!m) return;
  const std::string want = (*m)["hex"].as_string();
  const std::string got = ToHex(Deterministic(built));
  if (got != want) ::npc_test::Fail(__FILE__, __LINE__, type + ": built " + got + "\n      want  " + want);
}

template <class Msg>
bool Decode(const std::string& type, Msg* out) {
  const json::Value* m = FindMessage(type);
  return m && out->ParseFromString(FromHex((*m)["hex"].as_string()));
}

}  // namespace

// ---- wire: round trip every message ------------------------------------------------------------------------

TEST_CASE("wire: every vector parses and re-serializes to the same bytes") {
  const json::Value& messages = Load("wire_vectors.json")["messages"];
  CHECK(messages.size() >= 8u);
  for (const json::Value& m : messages.items()) {
    const std::string package = m["package"].is_string() ? m["package"].as_string() : std::string("npc.v1");
    const std::string full_name = package + "." + m["type"].as_string();
    const pb::Descriptor* descriptor = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
    if (!descriptor) {
      ::npc_test::Fail(__FILE__, __LINE__, "no generated C++ type " + full_name);
      continue;
    }
    std::unique_ptr<pb::Message> message(pb::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
    const std::string bytes = FromHex(m["hex"].as_string());
    if (!message->ParseFromString(bytes)) {
      ::npc_test::Fail(__FILE__, __LINE__, full_name + ": hex does not parse");
      continue;
    }
    if (ToHex(Deterministic(*message)) != m["hex"].as_string()) {
      ::npc_test::Fail(__FILE__, __LINE__, full_name + ": re-serialized bytes differ");
    }
  }
}

// ---- wire: what the client writes ------------------------------------------------------------------------------

TEST_CASE("wire: TickRequest built by the client matches") {
  const json::Value* m = FindMessage("TickRequest");
  if (!m) return;
  std::vector<TickEntryOptions> entries;
  for (const json::Value& e : (*m)["json"]["entries"].items()) {
    TickEntryOptions t;
    t.session_id = e["session_id"].as_string();
    t.budget_ms = static_cast<float>(e["budget_ms"].as_double());
    t.max_tokens = static_cast<uint32_t>(e["max_tokens"].as_uint());
    t.new_input = e["new_input"].as_string();
    t.constraint = ConstraintFrom(e["constraint"]);
    entries.push_back(t);
  }
  v1::TickRequest built;
  convert::ToProto(entries, &built);
  CheckBuiltEquals("TickRequest", built);
}

TEST_CASE("wire: OpenSessionRequest built by the client matches") {
  const json::Value* m = FindMessage("OpenSessionRequest");
  if (!m) return;
  const json::Value& j = (*m)["json"];
  OpenSessionOptions o;
  o.model = j["model"].as_string();
  o.npc_id = j["npc_id"].as_string();
  o.prefix = j["prefix"].as_string();
  o.prompt = j["prompt"].as_string();
  const json::Value& s = j["sampling"];
  o.sampling.temperature = static_cast<float>(s["temperature"].as_double());
  o.sampling.top_k = static_cast<uint32_t>(s["top_k"].as_uint());
  o.sampling.top_p = static_cast<float>(s["top_p"].as_double());
  o.sampling.repetition_penalty = static_cast<float>(s["repetition_penalty"].as_double());
  o.sampling.seed = U64(s["seed"]);
  o.sampling.stop = Strings(s["stop"]);
  o.max_new_tokens = static_cast<uint32_t>(j["limits"]["max_new_tokens"].as_uint());
  o.max_context = static_cast<uint32_t>(j["limits"]["max_context"].as_uint());
  o.idle_timeout_s = static_cast<uint32_t>(j["limits"]["idle_timeout_s"].as_uint());
  o.constraint = ConstraintFrom(j["constraint"]);
  o.apply_chat_template = j["apply_chat_template"].as_bool();
  v1::OpenSessionRequest built;
  convert::ToProto(o, &built);
  CheckBuiltEquals("OpenSessionRequest", built);
}

TEST_CASE("wire: StepRequest built by the client matches") {
  const json::Value* m = FindMessage("StepRequest");
  if (!m) return;
  const json::Value& j = (*m)["json"];
  StepOptions o;
  o.npc_id = j["npc_id"].as_string();
  const json::Value& obs = j["observation"];
  o.game_time_s = obs["game_time_s"].as_double();
  for (const auto& kv : obs["values"].members()) o.values[kv.first] = kv.second.as_double();
  for (const auto& kv : obs["tags"].members()) o.tags[kv.first] = kv.second.as_string();
  o.player_utterance = obs["player_utterance"].as_string();
  for (const json::Value& e : j["events"].items()) {
    GameEventInfo ev;
    ev.kind = e["kind"].as_string();
    ev.description = e["description"].as_string();
    ev.importance = static_cast<float>(e["importance"].as_double());
    ev.story_critical = e["story_critical"].as_bool();
    for (const auto& kv : e["attributes"].members()) ev.attributes[kv.first] = kv.second.as_string();
    o.events.push_back(ev);
  }
  o.deadline_ms = static_cast<float>(j["deadline_ms"].as_double());
  v1::StepRequest built;
  convert::ToProto(o, &built);
  CheckBuiltEquals("StepRequest", built);
}

TEST_CASE("wire: RegisterNpcRequest (inside PlayRequest) built by the client matches") {
  const json::Value* m = FindMessage("PlayRequest");
  if (!m) return;
  const json::Value& j = (*m)["json"];
  v1::PlayRequest built;
  built.set_seq(U64(j["seq"]));
  for (const json::Value& r : j["register"].items()) {
    RegisterNpcOptions o;
    o.npc_id = r["npc_id"].as_string();
    o.persona.name = r["persona"]["name"].as_string();
    o.persona.role = r["persona"]["role"].as_string();
    o.persona.traits = Strings(r["persona"]["traits"]);
    o.persona.backstory = r["persona"]["backstory"].as_string();
    o.fsm_name = r["fsm_name"].as_string();
    o.fsm_yaml = r["fsm_yaml"].as_string();
    for (const json::Value& mem : r["memories"].items()) {
      o.memories.emplace_back(mem["text"].as_string(), static_cast<float>(mem["importance"].as_double()));
    }
    o.replace = r["replace"].as_bool();
    convert::ToProto(o, built.add_register_());
  }
  CHECK(j["steps"].size() == 0u);  // steps would need StepRequest, covered above
  CheckBuiltEquals("PlayRequest", built);
}

// ---- wire: what the client reads -------------------------------------------------------------------------------

TEST_CASE("wire: TickResponse decodes to the recorded values") {
  v1::TickResponse msg;
  CHECK(Decode("TickResponse", &msg));
  TickOutcome out;
  convert::FromProto(msg, &out);
  const json::Value& j = (*FindMessage("TickResponse"))["json"];
  CHECK_EQ(out.results.size(), j["results"].size());
  CHECK_NEAR(out.tick_ms, j["tick_ms"].as_double(), 1e-6);
  for (size_t i = 0; i < out.results.size() && i < j["results"].size(); ++i) {
    const json::Value& r = j["results"][i];
    const TickResultInfo& got = out.results[i];
    CHECK_EQ(got.session_id, r["session_id"].as_string());
    std::vector<uint32_t> ids;
    for (const json::Value& id : r["token_ids"].items()) ids.push_back(static_cast<uint32_t>(id.as_uint()));
    CHECK(got.token_ids == ids);
    CHECK_EQ(got.text_delta, r["text_delta"].as_string());
    CHECK_EQ(got.finished, r["finished"].as_bool());
    CHECK_EQ(got.error, r["error"].as_string());
    CHECK_EQ(got.error_code, static_cast<int32_t>(r["error_code"].as_int()));
    CHECK_EQ(got.context_tokens, static_cast<uint32_t>(r["stats"]["context_tokens"].as_uint()));
    CHECK_EQ(got.steps, static_cast<uint32_t>(r["stats"]["steps"].as_uint()));
    const bool error_reason = r["finish_reason"].as_string() == "FINISH_REASON_ERROR";
    CHECK_EQ(got.finish_reason == FinishReason::kError, error_reason);
  }
}

TEST_CASE("wire: GenerateChunk, HandshakeResponse and Decision decode to the recorded values") {
  v1::GenerateChunk chunk;
  CHECK(Decode("GenerateChunk", &chunk));
  GenerateChunkInfo c;
  convert::FromProto(chunk, &c);
  const json::Value& cj = (*FindMessage("GenerateChunk"))["json"];
  CHECK_EQ(c.text, cj["text"].as_string());
  CHECK_EQ(c.token_ids.size(), cj["token_ids"].size());
  CHECK(c.finished);
  CHECK(c.finish_reason == FinishReason::kEos);

  v1::HandshakeResponse hs;
  CHECK(Decode("HandshakeResponse", &hs));
  HandshakeInfo h;
  convert::FromProto(hs, &h);
  const json::Value& hj = (*FindMessage("HandshakeResponse"))["json"];
  CHECK_EQ(h.protocol_version, hj["protocol_version"].as_string());
  CHECK(h.capabilities == Strings(hj["capabilities"]));
  CHECK_EQ(h.max_tick_entries, static_cast<uint32_t>(hj["max_tick_entries"].as_uint()));
  CHECK_EQ(h.max_sessions, static_cast<uint32_t>(hj["max_sessions"].as_uint()));

  v1::Decision dm;
  CHECK(Decode("Decision", &dm));
  DecisionInfo d;
  convert::FromProto(dm, &d);
  const json::Value& dj = (*FindMessage("Decision"))["json"];
  CHECK_EQ(d.action, dj["action"].as_string());
  CHECK_EQ(d.dialogue, dj["dialogue"].as_string());
  CHECK_EQ(d.arguments["target"], dj["arguments"]["target"].as_string());
  CHECK(d.allowed_actions == Strings(dj["allowed_actions"]));
  CHECK_NEAR(d.confidence, dj["confidence"].as_double(), 1e-6);
  CHECK(d.source == DecisionSource::kCloud);
  CHECK(d.escalated);
}

TEST_CASE("wire: RecallMemories request built by the client matches, the response decodes") {
  const json::Value* m = FindMessage("RecallMemoriesRequest");
  if (!m) return;
  RecallOptions o;
  o.npc_id = (*m)["json"]["npc_id"].as_string();
  o.query = (*m)["json"]["query"].as_string();
  o.limit = static_cast<uint32_t>((*m)["json"]["limit"].as_uint());
  v1::RecallMemoriesRequest built;
  convert::ToProto(o, &built);
  CheckBuiltEquals("RecallMemoriesRequest", built);

  v1::RecallMemoriesResponse response;
  CHECK(Decode("RecallMemoriesResponse", &response));
  const json::Value& j = (*FindMessage("RecallMemoriesResponse"))["json"]["memories"];
  CHECK_EQ(static_cast<size_t>(response.memories_size()), j.size());
  for (int i = 0; i < response.memories_size() && static_cast<size_t>(i) < j.size(); ++i) {
    MemoryInfo got;
    convert::FromProto(response.memories(i), &got);
    const json::Value& want = j[static_cast<size_t>(i)];
    CHECK_EQ(got.text, want["text"].as_string());
    CHECK_NEAR(got.importance, want["importance"].as_double(), 1e-6);
    CHECK_NEAR(got.game_time_s, want["game_time_s"].as_double(), 1e-9);
    CHECK_NEAR(got.score, want["score"].as_double(), 1e-6);
    const std::string kind = want["kind"].as_string();
    CHECK((kind == "MEMORY_KIND_OBSERVATION" && got.kind == MemoryKind::kObservation) ||
          (kind == "MEMORY_KIND_REFLECTION" && got.kind == MemoryKind::kReflection));
  }
}

// ---- StepStream events ----------------------------------------------------------------------------------------

namespace {

// One line per event, the same shape for the vector's JSON and for what the assembler raised.
std::string DescribeAction(const std::string& npc_id, const std::string& state, const std::string& action,
                           const std::map<std::string, std::string>& arguments) {
  std::string args;
  for (const auto& kv : arguments) args += (args.empty() ? "" : ",") + kv.first + "=" + kv.second;
  return "action " + npc_id + " " + state + " " + action + " {" + args + "}";
}

std::string DescribeEvent(const json::Value& e) {
  const std::string kind = e["event"].as_string();
  if (kind == "action") {
    std::map<std::string, std::string> arguments;
    for (const auto& kv : e["arguments"].members()) arguments[kv.first] = kv.second.as_string();
    return DescribeAction(e["npc_id"].as_string(), e["state"].as_string(), e["action"].as_string(), arguments);
  }
  if (kind == "sentence") return "sentence [" + e["text"].as_string() + "]";
  if (kind == "done") return "done " + e["action"].as_string() + " [" + e["dialogue"].as_string() + "]";
  return kind;
}

}  // namespace

TEST_CASE("stream: every recorded chunk sequence gives the recorded events") {
  const json::Value& cases = Load("stream_vectors.json")["cases"];
  CHECK(cases.size() >= 6u);
  for (const json::Value& c : cases.items()) {
    std::vector<std::string> got;
    StepStreamCallbacks callbacks;
    callbacks.on_action = [&](const ActionChosenInfo& a) { got.push_back(DescribeAction(a.npc_id, a.state, a.action, a.arguments)); };
    callbacks.on_sentence = [&](const std::string& s) { got.push_back("sentence [" + s + "]"); };
    callbacks.on_done = [&](const DecisionInfo& d) { got.push_back("done " + d.action + " [" + d.dialogue + "]"); };
    StepStreamAssembler assembler(callbacks);
    Status status;
    for (const json::Value& recorded : c["chunks"].items()) {
      v1::StepChunk chunk;
      const std::string hex = recorded["hex"].as_string();
      if (!chunk.ParseFromString(FromHex(hex)) || ToHex(Deterministic(chunk)) != hex) {
        ::npc_test::Fail(__FILE__, __LINE__, c["name"].as_string() + ": chunk does not round-trip: " + hex);
      }
      status = convert::Feed(chunk, &assembler);
      if (!status.ok() || assembler.done()) break;
    }
    if (status.ok()) status = assembler.End();
    if (!status.ok()) {
      CHECK(status.code == StatusCode::kInternal);
      got.push_back("error");
    }
    std::vector<std::string> want;
    for (const json::Value& e : c["events"].items()) want.push_back(DescribeEvent(e));
    if (got != want) {
      std::string detail = c["name"].as_string() + ":";
      for (const std::string& g : got) detail += "\n      got  " + g;
      for (const std::string& w : want) detail += "\n      want " + w;
      ::npc_test::Fail(__FILE__, __LINE__, detail);
    }
  }
}

TEST_CASE("stream: the action chunk converts every field") {
  const json::Value& first = Load("stream_vectors.json")["cases"][size_t{0}]["chunks"][size_t{0}];
  v1::StepChunk chunk;
  CHECK(chunk.ParseFromString(FromHex(first["hex"].as_string())));
  CHECK(chunk.has_action());
  ActionChosenInfo a;
  convert::FromProto(chunk.action(), &a);
  const json::Value& j = first["json"]["action"];
  CHECK_EQ(a.action, j["action"].as_string());
  CHECK(a.allowed_actions == Strings(j["allowed_actions"]));
  CHECK_NEAR(a.confidence, j["confidence"].as_double(), 1e-6);
  CHECK_NEAR(a.latency_ms, j["latency_ms"].as_double(), 1e-6);
  CHECK(a.source == DecisionSource::kLocalModel);
  CHECK(!a.escalated);
}

// ---- tokenizer ----------------------------------------------------------------------------------------------

TEST_CASE("tokenizer: encode and decode give the recorded ids and text") {
  const json::Value& v = Load("tokenizer_vectors.json");
  BpeTokenizer tok;
  std::string error;
  // "tokenizer" is repo-relative; the vectors dir is clients_test/vectors.
  const std::string path = g_dir + "/../../" + v["tokenizer"].as_string();
  if (!tok.LoadFromFile(path, &error)) {
    ::npc_test::Fail(__FILE__, __LINE__, error);
    return;
  }
  CHECK_EQ(tok.vocab_size(), static_cast<size_t>(v["vocab_size"].as_uint()));
  for (const auto& kv : v["special_ids"].members()) CHECK_EQ(tok.TokenId(kv.first), kv.second.as_int());
  CHECK(v["cases"].size() >= 5u);
  for (const json::Value& c : v["cases"].items()) {
    std::vector<int64_t> want;
    for (const json::Value& id : c["ids"].items()) want.push_back(id.as_int());
    const std::vector<int64_t> got = tok.Encode(c["text"].as_string());
    if (got != want) {
      std::string g;
      for (int64_t id : got) g += std::to_string(id) + " ";
      ::npc_test::Fail(__FILE__, __LINE__, "encode(" + c["text"].as_string() + ") = " + g);
    }
    if (tok.Decode(want, false) != c["decoded"].as_string()) {
      ::npc_test::Fail(__FILE__, __LINE__, "decode: " + tok.Decode(want, false) + " != " + c["decoded"].as_string());
    }
    if (tok.Decode(want, true) != c["decoded_skip_special"].as_string()) {
      ::npc_test::Fail(__FILE__, __LINE__, "decode skip: " + tok.Decode(want, true));
    }
  }
}

// ---- budget slicing ---------------------------------------------------------------------------------------------

TEST_CASE("budget: PlanFrames reproduces every recorded trace") {
  const json::Value& cases = Load("budget_vectors.json")["cases"];
  CHECK(cases.size() >= 5u);
  for (const json::Value& c : cases.items()) {
    std::vector<double> costs;
    for (const json::Value& x : c["costs_ms"].items()) costs.push_back(x.as_double());
    std::vector<std::vector<size_t>> want;
    for (const json::Value& f : c["frames"].items()) {
      std::vector<size_t> frame;
      for (const json::Value& s : f.items()) frame.push_back(static_cast<size_t>(s.as_uint()));
      want.push_back(frame);
    }
    if (PlanFrames(costs, c["budget_ms"].as_double()) != want) {
      ::npc_test::Fail(__FILE__, __LINE__, "trace differs: " + c["name"].as_string());
    }
  }
}

TEST_CASE("budget: the live slicer, fed exact costs, gives the recorded frames") {
  // alpha 1, sigmas 0: the prediction is the cost just measured, which is exact whenever the next step
  // costs the same as the last one; a frame's first step always runs. Cases whose costs change between
  // consecutive steps inside a frame need an oracle, which PlanFrames covers above.
  const json::Value& cases = Load("budget_vectors.json")["cases"];
  int checked = 0;
  for (const json::Value& c : cases.items()) {
    std::vector<double> costs;
    for (const json::Value& x : c["costs_ms"].items()) costs.push_back(x.as_double());
    bool uniform = true;
    for (double x : costs) uniform &= x == costs.front();
    if (!uniform || costs.empty()) continue;
    SlicerConfig config;
    config.ewma_alpha = 1.0;
    config.sigmas = 0.0;
    config.initial_step_ms = costs.front();
    FrameBudgetSlicer slicer(config);
    std::vector<std::vector<size_t>> got;
    size_t next = 0;
    while (next < costs.size()) {
      slicer.BeginFrame(c["budget_ms"].as_double(), 0);
      std::vector<size_t> frame;
      double spent = 0.0;
      while (next < costs.size() && slicer.ShouldStep(spent)) {
        frame.push_back(next);
        spent += costs[next];
        slicer.RecordStep(costs[next]);
        ++next;
      }
      got.push_back(frame);
    }
    if (got != PlanFrames(costs, c["budget_ms"].as_double())) {
      ::npc_test::Fail(__FILE__, __LINE__, "slicer trace differs: " + c["name"].as_string());
    }
    ++checked;
  }
  CHECK(checked >= 2);
}

TEST_CASE("manifest: every vector gives the recorded outcome, rule and field") {
  const json::Value& vectors = Load("manifest_vectors.json");
  size_t count = 0;
  for (const json::Value& c : vectors["cases"].items()) {
    const json::Value& expect = c["expect"];
    std::string got;
    json::Value root;
    std::string parse_error;
    if (!json::Parse(c["text"].as_string(), &root, &parse_error)) {
      got = "json ";
    } else {
      ModelManifest m;
      ManifestError error;
      got = ParseManifest(root, &m, &error) ? "ok" : error.rule + " " + error.field;
    }
    std::string want = expect["ok"].as_bool() ? "ok" : expect["rule"].as_string() + " " + expect["field"].as_string();
    if (got != want) ::npc_test::Fail(__FILE__, __LINE__, c["name"].as_string() + ": got '" + got + "', want '" + want + "'");
    ++count;
  }
  CHECK(count >= 60);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s VECTORS_DIR [filter]\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  return npc_test::RunAll(argc > 2 ? argv[2] : "");
}
