// npc_tick_client: served Tick round trips timed with the game's own C++ client (npc::NpcRuntimeClient).
//
//   npc_tick_client --target 127.0.0.1:PORT --sessions N --mode tokens|budget --ticks K
//                   [--budget-ms B] [--tokens T] [--noop K2] [--budget-counted server|round-trip]
//   npc_tick_client --features      (prints {"round_trip_budget": true|false}: what this npc_core offers)
//
// Opens N sessions (the prompts of bench/bench_serving_paths.py), then
//   tokens: ticks every session with max_tokens=1 (budget 10000 ms) until each got T tokens (prefill in the
//           first ticks, as the Python bench does); --ticks is unused.
//   budget: prefills (max_tokens=1 until every session produced a token), then K ticks of all sessions with
//           budget_ms=B and no token cap; a finished session is closed and replaced between ticks (not timed).
// then K2 Handshake calls (an RPC without engine work: the client + transport floor). Per tick: the round
// trip at the client (steady_clock around Tick), the server handler's time (TickResponse.tick_ms) and the
// engine's (the max of the results' stats.tick_ms). Prints one JSON object on stdout:
//   {"rtt_ms": [...], "handler_ms": [...], "engine_ms": [...], "tokens": n, "seconds": s, "noop_ms": [...]}
// and "budget_counted". --budget-counted: "server" (default) sends budgets as given, as the Python client does;
// "round-trip" lets the client take its measured transport time off them first (ClientOptions::round_trip_budget,
// the game's default where npc_core has it).
// Errors: one line on stderr, exit 1 (2 for bad arguments).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npc/npc_client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string target;
  int sessions = 1;
  std::string mode;
  int ticks = 0;
  double budget_ms = 8.0;
  int tokens = 16;
  int noop = 0;
  bool round_trip = false;
};

// Whether this npc_core's ClientOptions has round_trip_budget (newer cores), so the tool builds against both.
template <typename T, typename = void>
struct HasRoundTripBudget : std::false_type {};
template <typename T>
struct HasRoundTripBudget<T, std::void_t<decltype(std::declval<T&>().round_trip_budget)>> : std::true_type {};
constexpr bool kRoundTripBudget = HasRoundTripBudget<npc::ClientOptions>::value;

// Budgets counted as asked: set explicitly, so a core whose default changes does not change what is measured.
template <typename T>
void SetRoundTripBudget(T& options, bool on) {
  if constexpr (HasRoundTripBudget<T>::value) options.round_trip_budget = on;
}

struct Record {
  std::vector<double> rtt_ms, handler_ms, engine_ms, noop_ms;
  long tokens = 0;
  double seconds = 0.0;
};

// A failure the run cannot go on from: main prints it and exits 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void Check(const npc::Status& status, const std::string& what) {
  if (!status.ok()) throw Failure(what + " failed: " + status.ToString());
}

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr,
               "npc_tick_client: %s\nusage: npc_tick_client --target HOST:PORT --sessions N --mode tokens|budget "
               "--ticks K [--budget-ms B] [--tokens T] [--noop K2] [--budget-counted server|round-trip]\n"
               "       npc_tick_client --features\n",
               problem.c_str());
  std::exit(2);
}

int PositiveInt(const std::string& flag, const char* text, int minimum) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < minimum || value > 1000000)
    Usage(flag + " wants an integer >= " + std::to_string(minimum) + ", got '" + text + "'");
  return static_cast<int>(value);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--features") {
      std::printf("{\"round_trip_budget\": %s}\n", kRoundTripBudget ? "true" : "false");
      std::exit(0);
    }
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--target") a.target = value;
    else if (flag == "--sessions") a.sessions = PositiveInt(flag, value, 1);
    else if (flag == "--mode") a.mode = value;
    else if (flag == "--ticks") a.ticks = PositiveInt(flag, value, 0);
    else if (flag == "--tokens") a.tokens = PositiveInt(flag, value, 1);
    else if (flag == "--noop") a.noop = PositiveInt(flag, value, 0);
    else if (flag == "--budget-counted") {
      if (std::strcmp(value, "server") != 0 && std::strcmp(value, "round-trip") != 0)
        Usage(std::string("--budget-counted must be server or round-trip, got '") + value + "'");
      a.round_trip = std::strcmp(value, "round-trip") == 0;
      if (a.round_trip && !kRoundTripBudget) Usage("--budget-counted round-trip: this npc_core has no round-trip budgets");
    }
    else if (flag == "--budget-ms") {
      char* end = nullptr;
      a.budget_ms = std::strtod(value, &end);
      if (*end != '\0' || !(a.budget_ms > 0.0)) Usage(std::string("--budget-ms wants a number > 0, got '") + value + "'");
    } else Usage("unknown argument '" + flag + "'");
  }
  if (a.target.empty()) Usage("--target is required");
  if (a.mode != "tokens" && a.mode != "budget") Usage("--mode must be tokens or budget, got '" + a.mode + "'");
  if (a.mode == "budget" && a.ticks < 1) Usage("--mode budget needs --ticks >= 1");
  return a;
}

std::string Prompt(int i) {  // bench_serving_paths.prompt(i)
  return "Player " + std::to_string(i) + ": good morning, what news from the northern gate?";
}

std::string Open(npc::NpcRuntimeClient& client, int i) {
  npc::OpenSessionOptions options;
  options.prompt = Prompt(i);
  npc::OpenedSession opened;
  Check(client.OpenSession(options, &opened), "OpenSession");
  return opened.session_id;
}

void CloseAll(npc::NpcRuntimeClient& client, const std::vector<std::string>& sids) {
  for (const auto& sid : sids) Check(client.CloseSession(sid, nullptr), "CloseSession");
}

// One timed Tick: round trip, handler and engine time appended to `rec`; entry errors are failures.
npc::TickOutcome TimedTick(npc::NpcRuntimeClient& client, const std::vector<npc::TickEntryOptions>& entries,
                           Record* rec) {
  npc::TickOutcome out;
  const auto t0 = Clock::now();
  const npc::Status status = client.Tick(entries, &out);
  const double rtt = MsSince(t0);
  Check(status, "Tick");
  double engine = 0.0;
  for (const auto& r : out.results) {
    if (!r.error.empty()) throw Failure("a Tick entry failed (session " + r.session_id + "): " + r.error);
    engine = std::max(engine, static_cast<double>(r.tick_ms));
  }
  rec->rtt_ms.push_back(rtt);
  rec->handler_ms.push_back(out.tick_ms);
  rec->engine_ms.push_back(engine);
  return out;
}

npc::TickEntryOptions Entry(const std::string& sid, float budget_ms, uint32_t max_tokens) {
  npc::TickEntryOptions e;
  e.session_id = sid;
  e.budget_ms = budget_ms;
  e.max_tokens = max_tokens;
  return e;
}

void RunTokens(npc::NpcRuntimeClient& client, const Args& a, Record* rec) {
  std::vector<std::string> sids;
  for (int i = 0; i < a.sessions; ++i) sids.push_back(Open(client, i));
  std::vector<int> got(sids.size(), 0);
  const auto t0 = Clock::now();
  for (;;) {
    std::vector<npc::TickEntryOptions> entries;
    std::vector<size_t> which;
    for (size_t k = 0; k < sids.size(); ++k)
      if (got[k] < a.tokens) {
        entries.push_back(Entry(sids[k], 10000.0f, 1));
        which.push_back(k);
      }
    if (entries.empty()) break;
    const npc::TickOutcome out = TimedTick(client, entries, rec);
    for (size_t j = 0; j < out.results.size() && j < which.size(); ++j) {
      got[which[j]] += static_cast<int>(out.results[j].token_ids.size());
      rec->tokens += static_cast<long>(out.results[j].token_ids.size());
    }
  }
  rec->seconds = MsSince(t0) / 1000.0;
  CloseAll(client, sids);
}

void RunBudget(npc::NpcRuntimeClient& client, const Args& a, Record* rec) {
  std::vector<std::string> sids;
  for (int i = 0; i < a.sessions; ++i) sids.push_back(Open(client, i));
  // prefill first (steady state is what a game sees frame after frame)
  std::vector<bool> waiting(sids.size(), true);
  for (int left = a.sessions; left > 0;) {
    std::vector<npc::TickEntryOptions> entries;
    std::vector<size_t> which;
    for (size_t k = 0; k < sids.size(); ++k)
      if (waiting[k]) {
        entries.push_back(Entry(sids[k], 10000.0f, 1));
        which.push_back(k);
      }
    npc::TickOutcome out;
    Check(client.Tick(entries, &out), "Tick (prefill)");
    for (size_t j = 0; j < out.results.size() && j < which.size(); ++j)
      if (!out.results[j].token_ids.empty() && waiting[which[j]]) {
        waiting[which[j]] = false;
        --left;
      }
  }
  int opened = a.sessions;
  const auto t0 = Clock::now();
  double untimed_ms = 0.0;
  for (int t = 0; t < a.ticks; ++t) {
    std::vector<npc::TickEntryOptions> entries;
    for (const auto& sid : sids) entries.push_back(Entry(sid, static_cast<float>(a.budget_ms), 0));
    const npc::TickOutcome out = TimedTick(client, entries, rec);
    const auto replace0 = Clock::now();
    for (size_t k = 0; k < out.results.size() && k < sids.size(); ++k) {
      rec->tokens += static_cast<long>(out.results[k].token_ids.size());
      if (out.results[k].finished) {  // context full: a fresh session takes its place (its prefill is ticked too)
        Check(client.CloseSession(sids[k], nullptr), "CloseSession");
        sids[k] = Open(client, opened++);
      }
    }
    untimed_ms += MsSince(replace0);
  }
  rec->seconds = (MsSince(t0) - untimed_ms) / 1000.0;
  CloseAll(client, sids);
}

void RunNoop(npc::NpcRuntimeClient& client, int calls, Record* rec) {
  for (int i = 0; i < calls; ++i) {
    npc::HandshakeInfo info;
    const auto t0 = Clock::now();
    const npc::Status status = client.Handshake(&info);
    const double rtt = MsSince(t0);
    Check(status, "Handshake");
    rec->noop_ms.push_back(rtt);
  }
}

void PrintList(const char* key, const std::vector<double>& values, bool last = false) {
  std::printf("\"%s\": [", key);
  for (size_t i = 0; i < values.size(); ++i) std::printf(i ? ", %.4f" : "%.4f", values[i]);
  std::printf("]%s", last ? "" : ", ");
}

void PrintJson(const Record& rec, bool round_trip) {
  std::printf("{\"budget_counted\": \"%s\", ", round_trip ? "round-trip" : "server");
  PrintList("rtt_ms", rec.rtt_ms);
  PrintList("handler_ms", rec.handler_ms);
  PrintList("engine_ms", rec.engine_ms);
  std::printf("\"tokens\": %ld, \"seconds\": %.6f, ", rec.tokens, rec.seconds);
  PrintList("noop_ms", rec.noop_ms, true);
  std::printf("}\n");
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  npc::ClientOptions options;
  options.target = args.target;
  options.deadline_ms = 60000.0;  // a 64-session prefill tick on a loaded 2-core machine takes a while
  options.client_name = "npc_tick_client (bench/cpp)";
  SetRoundTripBudget(options, args.round_trip);
  try {
    npc::NpcRuntimeClient client(options);
    npc::HandshakeInfo info;
    Check(client.Handshake(&info), "Handshake (connecting to " + args.target + ")");  // connects; untimed
    if (info.max_sessions && static_cast<int>(info.max_sessions) < args.sessions)
      throw Failure("the server allows " + std::to_string(info.max_sessions) + " sessions, --sessions asks " +
                    std::to_string(args.sessions));
    Record rec;
    if (args.mode == "tokens") RunTokens(client, args, &rec);
    else RunBudget(client, args, &rec);
    RunNoop(client, args.noop, &rec);
    PrintJson(rec, args.round_trip);
  } catch (const Failure& e) {
    std::fprintf(stderr, "npc_tick_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
