"""Issue 9's findings reproduced end to end against a real `npcrt serve` process: each hostile request gets
the clear refusal it should (the status, with a message), a liveness probe from another client keeps
answering meanwhile, the server's memory does not keep the request's weight, and afterwards health, a normal
gRPC decode and a normal HTTP chat completion still work. The cases themselves are in
tests/helpers/hostile_cases.py, shared with bench/bench_hostile.py."""

from __future__ import annotations

import pytest

from tests.helpers.hostile_cases import CASES, SERVERS, STARTUP_CASES, Case
from tests.helpers.liveness import LivenessProbe
from tests.helpers.provider_faults import (agent_metrics, critical_step, outcome_count, provider_config,
                                           register_guard)
from tests.helpers.serve_process import ServeProcess

from .conftest import RSS_GROWTH_LIMIT_KIB, assert_clean_exit

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server per kind the cases need, shared by the module's cases (each case checks it alive after);
    SIGTERM at the end must stop each cleanly."""
    started: dict[str, ServeProcess] = {}

    def get(kind: str) -> ServeProcess:
        if kind not in started:
            workdir = tmp_path_factory.mktemp(f"serve-{kind}")
            started[kind] = ServeProcess(workdir=workdir, data_dir=workdir / "data", **SERVERS[kind]).start()
        return started[kind]

    yield get
    problems = []
    for server in started.values():
        try:
            if server.alive():
                assert_clean_exit(server)
        except AssertionError as exc:
            problems.append(str(exc))
        finally:
            server.cleanup()
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.finding}-{c.name}")
def test_hostile_request(case: Case, servers):
    server = servers(case.server)
    server.check_alive()
    rss_before = server.rss_kib()
    with LivenessProbe(server.grpc_target, server.http_url) as probe:
        outcome = case.run(server)
    rss_after = server.rss_kib()
    assert server.alive(), f"{case.name} killed the server ({server.proc.returncode}):\n{server.stderr[-4000:]}"
    problem = case.problem(outcome)
    assert problem is None, problem
    assert not probe.failures, (f"{case.name}: the liveness probe failed {len(probe.failures)} time(s) while it "
                                f"ran: {probe.failures[:5]}")
    assert rss_after - rss_before <= RSS_GROWTH_LIMIT_KIB, (
        f"{case.name}: RSS grew {(rss_after - rss_before) / 1024:.0f} MiB ({rss_before // 1024} -> "
        f"{rss_after // 1024} MiB), limit {RSS_GROWTH_LIMIT_KIB // 1024} MiB")
    server.check_alive()
    assert "Traceback" not in server.stderr, f"{case.name}: traceback in the server log:\n{server.stderr[-4000:]}"


@pytest.mark.parametrize("case", STARTUP_CASES, ids=lambda c: f"{c.finding}-{c.name}")
def test_refused_at_startup(case, tmp_path):
    """A package that reaches outside its folder or leaves a loaded file unhashed, or an empty token: serve
    refuses with one line and exit 2, and never reads (or prints the hash of) a file outside the package."""
    outcome = case.run(tmp_path)
    problem = case.problem(outcome)
    assert problem is None, problem
    secret = tmp_path / "secret.txt"
    if secret.exists():
        from tests.helpers.hostile_cases import _sha256

        printed = outcome.extra.get("stderr", "") + outcome.extra.get("stdout", "")
        assert _sha256(secret) not in printed, "serve printed the sha256 of a file outside the package"


def test_negative_provider_usage_cannot_break_the_budget(serve_factory, tmp_path):
    """Finding 4: an endpoint that reports -1,000,000 tokens per call. Usage is settled at the reservation,
    so a $0.01/h budget stops the calls after about one, and the recorded cost never goes below zero."""
    from tests.agent.fake_llm import FakeLLM

    negative = {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000}
    with FakeLLM(usage=negative) as fake:
        server = serve_factory(provider_url=fake.openai_base_url,
                               config=provider_config(cost_per_hour_usd=0.01))
        register_guard(server, "guard-01")
        decisions = [critical_step(server, "guard-01", deadline_ms=2000, n=i) for i in range(8)]
        metrics = agent_metrics(server)
    assert all(d.action in d.allowed_actions for d in decisions)
    assert fake.calls <= 2, f"{fake.calls} provider calls went through a $0.01/h budget"
    assert outcome_count(metrics, "denied_budget") >= 6, metrics
    assert metrics.get("escalation_cost_usd", 0.0) >= 0.0, metrics
    assert all(metrics.get(f"escalation_tokens{{direction={d}}}", 0.0) >= 0 for d in ("input", "output")), metrics
    server.check_alive()
