"""Fixtures for the hostile-input suite: a real `npcrt serve` process (tests/helpers/serve_process.py) on
OS-chosen loopback ports with a temporary data dir, checked alive after each case and stopped with SIGTERM,
which must end it cleanly (exit 0, no traceback in its log)."""

from __future__ import annotations

import pytest

from tests.helpers.serve_process import ServeProcess

# how much a case may grow the server's resident memory, KiB (the model and arenas are allocated at start;
# one hostile request must not keep hundreds of MiB)
RSS_GROWTH_LIMIT_KIB = 100 * 1024


def assert_clean_exit(server: ServeProcess) -> None:
    code = server.stop()
    log = server.stderr
    assert code == 0, f"npcrt serve exited {code} on SIGTERM:\n{log[-4000:]}"
    assert "Traceback" not in log, f"traceback in the server log:\n{log[-6000:]}"


@pytest.fixture
def serve_factory(tmp_path):
    """serve_factory(token=..., config=..., provider_url=..., data_dir=...) -> a started ServeProcess.
    Every process started is stopped with SIGTERM at the end of the test and must exit cleanly."""
    started: list[ServeProcess] = []

    def start(**kwargs) -> ServeProcess:
        kwargs.setdefault("data_dir", tmp_path / "data")
        kwargs.setdefault("workdir", tmp_path)
        server = ServeProcess(**kwargs).start()
        started.append(server)
        return server

    yield start
    problems = []
    for server in started:
        if not server.alive():
            continue          # killed on purpose by the test (or already checked)
        try:
            assert_clean_exit(server)
        except AssertionError as exc:
            problems.append(str(exc))
        finally:
            server.cleanup()
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def serve(serve_factory) -> ServeProcess:
    """A plain `npcrt serve` (built-in models, no token, local escalation)."""
    return serve_factory()
