"""Hostile input and faults against a real `npcrt serve` (issue 9): what each case sent, what came back, the
limit, the time to answer, the server's RSS before and after, and what a liveness probe on another
connection saw meanwhile (gRPC Health.Check and GET /healthz back to back: p50 / p99 / max, failures).

    .venv/bin/python -m bench.bench_hostile [--out NAME] [--skip-faults]

The cases are the ones tests/hostile/ asserts (tests/helpers/hostile_cases.py), run the same way; the probe
is tests/helpers/liveness.py. Rows:
    idle         the probe alone on the plain server (the floor of the probe's latency in this run)
    load         4 clients (2 Tick loops, 2 chat-completion loops) for a few seconds: the load held
    burst        16 concurrent legal-size (250,000-character) chat completions over the context
    <case>       each hostile request, one at a time, on the server of its kind
    <startup>    packages and flags serve must refuse at startup (exit 2, one line)
    <fault>      SIGKILL during memory writes, SIGTERM under load, provider hanging / hostile / dead
Writes bench/results/NAME.json (default hostile); docs/reliability.md's tables are generated from it by
bench/reliability_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the shared test helpers live under tests/
    sys.path.insert(0, str(ROOT))

from bench.common import print_table, result_metadata, write_json  # noqa: E402
from tests.helpers import fault_scenarios, hostile_cases  # noqa: E402
from tests.helpers.liveness import LivenessProbe  # noqa: E402
from tests.helpers.provider_faults import (agent_metrics, critical_step, dead_url, outcome_count,  # noqa: E402
                                           provider_config, register_guard)
from tests.helpers.serve_process import ServeProcess  # noqa: E402

LOAD_S = 4.0


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _probed(server: ServeProcess, work) -> tuple[object, float, dict, int, int]:
    """Run work() under the liveness probe: (its result, seconds, probe summary, RSS before, after KiB)."""
    rss_before = server.rss_kib()
    with LivenessProbe(server.grpc_target, server.http_url) as probe:
        start = time.monotonic()
        result = work()
        elapsed = time.monotonic() - start
    return result, elapsed, probe.summary(), rss_before, server.rss_kib()


def _row(name: str, finding, sent: str, limit: str, status: str, expected: str, ok: bool, elapsed: float,
         probe: dict | None, rss_before: int | None, rss_after: int | None, detail: str = "", *,
         kind: str = "request") -> dict:
    """One result row; kind: baseline | request | startup | fault (the report's tables)."""
    probe = probe or {}
    return {"case": name, "kind": kind, "finding": finding, "sent": sent, "limit": limit, "status": status,
            "expected": expected, "ok": ok, "time_s": round(elapsed, 3), "detail": detail[:300],
            "rss_before_mib": None if rss_before is None else _mib(rss_before),
            "rss_after_mib": None if rss_after is None else _mib(rss_after),
            "health_p50_ms": probe.get("p50_ms"), "health_p99_ms": probe.get("p99_ms"),
            "health_max_ms": probe.get("max_ms"), "health_failures": probe.get("failures"),
            "health_probes": probe.get("probes")}


def idle_and_load(server: ServeProcess) -> list[dict]:
    rows = []
    _, elapsed, probe, before, after = _probed(server, lambda: time.sleep(2.0))
    rows.append(_row("idle", "-", "nothing (the probe alone)", "-", "-", "-", True, elapsed, probe, before, after,
                     kind="baseline"))
    stop, counts = threading.Event(), {"ticks": 0, "chats": 0, "errors": 0}

    def loop(kind: str) -> None:
        while not stop.is_set():
            try:
                if kind == "ticks":
                    server.tick_once()
                else:
                    assert server.chat().status == 200
                counts[kind] += 1
            except Exception:  # noqa: BLE001 - counted, the load goes on
                counts["errors"] += 1

    def load() -> None:
        threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in ("ticks", "ticks", "chats", "chats")]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_S)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    _, elapsed, probe, before, after = _probed(server, load)
    rows.append(_row("load", "-", f"2 Tick loops + 2 chat loops for {LOAD_S:.0f} s",
                     "-", f"{counts['ticks']} decodes, {counts['chats']} chats, {counts['errors']} errors", "no errors",
                     counts["errors"] == 0, elapsed, probe, before, after, kind="baseline"))
    rows[-1]["throughput_per_s"] = round((counts["ticks"] + counts["chats"]) / elapsed, 1)
    return rows


def burst(server: ServeProcess, clients: int = 16) -> dict:
    """`clients` concurrent 250,000-character chat completions (legal size, over the context): the heavy
    part of each runs on the bounded worker pool, so health keeps answering and the excess is refused."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return hostile_cases.chat_over_context(server).status

    def run() -> list[str]:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(clients)))

    statuses, elapsed, probe, before, after = _probed(server, run)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    ok = set(counts) <= {"HTTP 400", "HTTP 413", "HTTP 429", "HTTP 503"}
    return _row("burst_over_context", "-", f"{clients} concurrent chat completions of 250,000 chars",
                "server.worker_threads + worker_queue", ", ".join(f"{n}x {s}" for s, n in counts.items()),
                "4xx for each, health answering", ok, elapsed, probe, before, after, kind="baseline")


def request_cases(servers: dict[str, ServeProcess]) -> list[dict]:
    rows = []
    for case in hostile_cases.CASES:
        server = servers[case.server]
        try:
            outcome, elapsed, probe, before, after = _probed(server, functools.partial(case.run, server))
            problem = case.problem(outcome)
        except Exception as exc:  # noqa: BLE001 - the server may have died: recorded as such
            outcome, elapsed, probe, before, after = hostile_cases.Outcome(f"client error {type(exc).__name__}",
                                                                           str(exc)), 0.0, None, None, None
            problem = str(exc)
        alive = _alive(server)
        rows.append(_row(case.name, case.finding, case.sent, case.limit, outcome.status, " or ".join(case.expect),
                         problem is None and alive == "", elapsed, probe, before, after,
                         outcome.detail if not alive else f"AFTER: {alive}"))
    return rows


def _alive(server: ServeProcess) -> str:
    """'' when health + a normal decode + a normal chat work, else what failed."""
    try:
        server.check_alive()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return ""


def startup_cases(workdir: Path) -> list[dict]:
    rows = []
    for case in hostile_cases.STARTUP_CASES:
        folder = workdir / case.name
        folder.mkdir()
        start = time.monotonic()
        outcome = case.run(folder)
        problem = case.problem(outcome)
        rows.append(_row(case.name, case.finding, case.sent, case.limit, outcome.status, " or ".join(case.expect),
                         problem is None, time.monotonic() - start, None, None, None, outcome.detail,
                         kind="startup"))
    return rows


def negative_usage(workdir: Path) -> dict:
    from tests.agent.fake_llm import FakeLLM

    negative = {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000}
    with FakeLLM(usage=negative) as fake, ServeProcess(workdir=workdir, provider_url=fake.openai_base_url,
                                                       config=provider_config(cost_per_hour_usd=0.01)) as server:
        register_guard(server, "guard-01")
        _, elapsed, probe, before, after = _probed(server, lambda: [
            critical_step(server, "guard-01", deadline_ms=2000, n=n) for n in range(8)])
        metrics = agent_metrics(server)
        server.stop()
    cost = metrics.get("escalation_cost_usd", 0.0)
    status = f"{fake.calls} of 8 calls made, cost ${cost:.4f}"
    return _row("negative_usage", 4, "provider reports -1,000,000 tokens per call; 8 story-critical steps",
                "$0.01/h budget; usage settled at the reservation", status, "<= 2 calls, cost >= 0",
                fake.calls <= 2 and cost >= 0, elapsed, probe, before, after,
                f"denied_budget={outcome_count(metrics, 'denied_budget'):.0f}")


def _steps(server: ServeProcess, *, deadline_ms: float, count: int) -> list:
    return [critical_step(server, "guard-01", deadline_ms=deadline_ms, n=n) for n in range(count)]


def provider_faults(workdir: Path) -> list[dict]:
    from npc_proto.v1 import agent_pb2 as apb
    from tests.agent.fake_llm import FakeLLM

    rows = []
    plans = [("provider_hanging", "hang", None, 300, {}), ("provider_malformed", "malformed", None, 3000, {}),
             ("provider_forbidden", "forbidden", None, 3000, {}), ("provider_huge", "huge", None, 3000, {}),
             ("provider_dead", None, dead_url(), 1000, {"max_attempts": 1, "breaker_failures": 3,
                                                         "breaker_cooldown_s": 600})]
    for name, mode, url, deadline_ms, esc in plans:
        with contextlib.ExitStack() as stack:
            if mode:
                url = stack.enter_context(FakeLLM(mode=mode, huge_chars=5_000_000)).openai_base_url
            server = stack.enter_context(ServeProcess(workdir=workdir / name, provider_url=url,
                                                      config=provider_config(**esc)))
            register_guard(server, "guard-01")
            decisions, elapsed, probe, before, after = _probed(server, functools.partial(
                _steps, server, deadline_ms=deadline_ms, count=6))
            metrics = agent_metrics(server)
            alive = _alive(server)
            code = server.stop()
        sources = sorted({apb.DecisionSource.Name(d.source).removeprefix("DECISION_SOURCE_").lower()
                          for d in decisions})
        allowed = all(d.action in d.allowed_actions for d in decisions)
        outcomes = {k.split("=")[1].rstrip("}"): int(v) for k, v in metrics.items() if k.startswith("escalations{")
                    and v}
        rows.append(_row(name, "fault", f"6 story-critical steps, deadline {deadline_ms} ms", "allowlist, deadline",
                         f"sources {','.join(sources)}; escalations {outcomes}", "allowed actions, fallback",
                         allowed and not alive and code == 0, elapsed, probe, before, after,
                         f"max dialogue {max(len(d.dialogue) for d in decisions)} chars; "
                         f"slowest step {max(d.latency_ms for d in decisions):.0f} ms (server)", kind="fault"))
    return rows


def process_faults(workdir: Path) -> list[dict]:
    rows = []
    for name, scenario, what in (
            ("sigkill_during_writes", fault_scenarios.sigkill_during_writes,
             "SIGKILL while 3 NPCs write memories; restart on the same --data-dir"),
            ("sigterm_under_load", fault_scenarios.sigterm_under_load,
             "SIGTERM while 3 memory writers, a Tick loop and a chat loop run; restart on the same --data-dir")):
        started: list[ServeProcess] = []

        def start(*, folder: Path = workdir / name, started: list = started, **kwargs) -> ServeProcess:
            server = ServeProcess(workdir=folder, **kwargs).start()
            started.append(server)
            return server

        begin = time.monotonic()
        result = scenario(start, workdir / name / "data")
        for server in started:
            if server.alive():
                server.stop()
            server.cleanup()
        ok = (not result["lost"] and not result["missing_npcs"] and not result["wrong_states"]
              and all(v == "ok" for v in result["integrity"].values()))
        status = (f"{result['acknowledged']} memories acknowledged, {len(result['lost'])} lost; "
                  f"integrity {','.join(result['integrity'].values())}; states restored "
                  f"{len(result['states']) - len(result['wrong_states'])}/{len(result['states'])}")
        if "exit_code" in result:
            ok = ok and result["exit_code"] == 0
            in_flight = "/".join(result["tick_answers"] + result["http_answers"])
            status += f"; exit {result['exit_code']} after {result['stop_s']} s; in flight: {in_flight}"
        rows.append(_row(name, "fault", what, "nothing lost", status, "0 lost, exit 0", ok,
                         time.monotonic() - begin, None, None, None, kind="fault"))
        rows[-1]["lost"] = len(result["lost"]) + len(result["missing_npcs"])
    return rows


COLUMNS = [("case", "case"), ("finding", "#"), ("status", "came back"), ("ok", "ok"), ("time_s", "time s"),
           ("rss_before_mib", "RSS MiB"), ("rss_after_mib", "after"), ("health_p50_ms", "health p50"),
           ("health_p99_ms", "p99"), ("health_failures", "fail")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="hostile")
    parser.add_argument("--skip-faults", action="store_true", help="only the hostile requests")
    args = parser.parse_args(argv)
    meta = result_metadata()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        servers = {kind: ServeProcess(workdir=work / kind, **kwargs).start()
                   for kind, kwargs in hostile_cases.SERVERS.items()}
        try:
            rows += idle_and_load(servers["plain"])
            rows.append(burst(servers["plain"]))
            rows += request_cases(servers)
        finally:
            exits = {kind: (server.stop() if server.alive() else server.proc.returncode)
                     for kind, server in servers.items()}
            tracebacks = {kind: "Traceback" in server.stderr for kind, server in servers.items()}
            for server in servers.values():
                server.cleanup()
        (work / "startup").mkdir()
        rows += startup_cases(work / "startup")
        rows.append(negative_usage(work / "usage"))
        if not args.skip_faults:
            rows += provider_faults(work)
            rows += process_faults(work)
    print_table(rows, COLUMNS, title="npcrt serve under hostile input and faults (issue 9)")
    failed = [r["case"] for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)}/{len(rows)} as they should be"
          + (f"; not: {', '.join(failed)}" if failed else ""))
    path = write_json(args.out, {"rows": rows, "server_exits": exits, "server_tracebacks": tracebacks,
                                 "load_s": LOAD_S}, meta=meta)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
