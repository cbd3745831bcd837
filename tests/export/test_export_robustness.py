"""Exporting on a real machine: thread settings, progress without a terminal, signals and leftovers,
file modes, and the CLI's closing line."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npc_export import ExportError, export_model
from npc_export.errors import ExportInterrupted, InvalidOptions
from npc_export.progress import Stages
from npc_export.threads import DEFAULT_THREADS, available_cores, ort_session_options, torch_threads

from .conftest import FAST_VALIDATION


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[path.relative_to(root).as_posix()] = stat.S_IMODE(path.stat().st_mode)
    return out


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


# ---- threads ------------------------------------------------------------------------------------------

def test_default_threads_leave_room_for_a_neighbour():
    assert 1 <= DEFAULT_THREADS <= 4
    assert DEFAULT_THREADS <= max(1, available_cores() // 2)


def test_ort_sessions_are_bounded_and_do_not_spin():
    opts = ort_session_options(2)
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(InvalidOptions, match="positive whole number"):
        ort_session_options(0)


def test_the_exporters_sessions_use_those_settings(tmp_path):
    """Every ONNX Runtime session of the exporter goes through runner.make_session (self-check, policy check)."""
    from npc_export.builtin.policy import PolicyNet, policy_spec
    from npc_export.policy import export_policy
    from npc_export.runner import make_session

    pkg = export_policy(tmp_path / "pol", module=PolicyNet(), meta=policy_spec((8, 8)), progress=False).out_dir
    for session, threads in ((make_session(pkg / "model.onnx"), DEFAULT_THREADS),
                             (make_session(pkg / "model.onnx", threads=1), 1)):
        opts = session.get_session_options()
        assert opts.intra_op_num_threads == threads
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_torch_threads_are_bounded_for_the_block_and_restored():
    import torch

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_thread_count_is_a_clear_error(tmp_path, tiny_models, bad):
    with pytest.raises(InvalidOptions, match="threads must be a positive whole number"):
        export_model(tiny_models("llama"), tmp_path / "pkg", threads=bad, progress=False)
    assert not (tmp_path / "pkg").exists()


# ---- progress -----------------------------------------------------------------------------------------

def test_progress_without_a_terminal_is_one_line_per_stage(tmp_path, tiny_models, capsys):
    export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", context_length=16,
                 validation=FAST_VALIDATION, progress=True)
    err = capsys.readouterr().err.strip().splitlines()   # pytest's stderr is not a terminal
    assert len(err) == 4, err
    labels = ["load PyTorch model", "build portable graph, fp32", "self-check vs PyTorch", "write package"]
    for i, (line, label) in enumerate(zip(err, labels), start=1):
        assert re.fullmatch(rf"npcrt export: \S+ portable/fp32 \[{i}/4\] {re.escape(label)}.* \.\.\. \d+\.\d s", line), line


def test_progress_off_prints_nothing(tmp_path, tiny_models, capsys):
    export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", context_length=16,
                 validation=FAST_VALIDATION, progress=False)
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_terminal_keeps_moving_during_a_long_stage():
    stream = _Terminal()
    stages = Stages([("a", "first"), ("b", "slow stage")], enabled=True, desc="demo", stream=stream)
    try:
        stages.run("a", lambda: None)
        before = stream.getvalue().count("slow stage")
        stages.run("b", time.sleep, 1.3)
        # redrawn by the ticker while the stage ran (its clock moves), not only when it ended
        assert stream.getvalue().count("slow stage") >= before + 2
    finally:
        stages.close()
    assert stages.mode == "bar" and set(stages.timings) == {"a", "b"} and stages.timings["b"] >= 1.2


# ---- signals and leftovers ----------------------------------------------------------------------------

def _sending(sig):
    def build(*args, **kwargs):
        os.kill(os.getpid(), sig)
        time.sleep(10)  # the handler raises here, as soon as the signal arrives
        raise AssertionError("the signal did not interrupt the export")

    return build


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_signal_removes_the_partial_package_and_restores_handlers(tmp_path, tiny_models, monkeypatch, sig):
    from npc_export import portable_profile

    monkeypatch.setattr(portable_profile, "build_portable", _sending(sig))
    before = signal.getsignal(sig)
    out = tmp_path / "out"
    with pytest.raises(ExportInterrupted) as caught:
        export_model(tiny_models("llama"), out / "pkg", target="portable", progress=False)
    assert caught.value.signum == sig and caught.value.exit_code == 128 + sig
    assert list(out.iterdir()) == []
    assert signal.getsignal(sig) is before


def test_ignored_signal_stays_ignored(tmp_path, tiny_models, monkeypatch):
    """`nohup npcrt export ...` ignores SIGHUP; the exporter must not start dying on it."""
    from npc_export import portable_profile

    real = portable_profile.build_portable

    def build(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGHUP)
        return real(*args, **kwargs)

    monkeypatch.setattr(portable_profile, "build_portable", build)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        result = export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", context_length=16,
                              validate=False, progress=False)
        assert (result.out_dir / "manifest.json").is_file()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_cli_exit_code_follows_the_signal(tmp_path, tiny_models, monkeypatch, capsys):
    from npc_export import portable_profile
    from npc_runtime.cli import main

    monkeypatch.setattr(portable_profile, "build_portable", _sending(signal.SIGHUP))
    code = main(["export", "--model", str(tiny_models("llama")), "--out", str(tmp_path / "pkg"), "--target",
                 "portable"])
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGHUP
    assert "interrupted by SIGHUP; nothing was written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_to_a_running_npcrt_export_leaves_nothing(tmp_path, tiny_models):
    out = tmp_path / "out"
    out.mkdir()
    code = "import sys; from npc_runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "export", "--model", str(tiny_models("llama")),
                             "--out", str(out / "pkg"), "--target", "portable"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("pkg.tmp-*")):   # mid-export: the staging folder exists
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_stale_temp_folders_of_a_killed_export_are_removed(tmp_path, tiny_models):
    out = tmp_path / "out"
    stale = out / "pkg.tmp-0123abcd"
    stale.mkdir(parents=True)
    (stale / "model.onnx.data").write_bytes(b"x" * 100)
    old = out / "pkg.old-89abcdef"
    old.mkdir()
    unrelated = out / "other.tmp-0123abcd"
    unrelated.mkdir()
    result = export_model(tiny_models("llama"), out / "pkg", target="portable", context_length=16, validate=False,
                          progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["other.tmp-0123abcd", "pkg"]
    assert any(str(stale) in note and "removed" in note for note in result.notes)
    assert any(str(old) in note for note in result.notes)


def test_temp_folder_of_a_running_export_is_left_and_reported(tmp_path, tiny_models):
    out = tmp_path / "out"
    live = out / "pkg.tmp-feedf00d"
    live.mkdir(parents=True)
    # another process holds the lock a running export holds on its staging folder
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(live)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = export_model(tiny_models("llama"), out / "pkg", target="portable", context_length=16,
                              validate=False, progress=False)
        assert live.is_dir() and (out / "pkg" / "manifest.json").is_file()
        assert any(str(live) in note and "another export" in note for note in result.notes)
    finally:
        holder.communicate(input="")


def test_cli_reports_what_it_cleaned(tmp_path, tiny_models, capsys):
    from npc_runtime.cli import main

    (tmp_path / "pkg.tmp-0123abcd").mkdir()
    code = main(["export", "--model", str(tiny_models("llama")), "--out", str(tmp_path / "pkg"), "--target",
                 "portable", "--context", "16", "--no-validate"])
    err = capsys.readouterr().err
    assert code == 0 and f"removed {tmp_path / 'pkg.tmp-0123abcd'}" in err


# ---- file modes ---------------------------------------------------------------------------------------

def test_quantized_package_files_are_world_readable(tmp_path, tiny_models, umask):
    umask(0o022)
    result = export_model(tiny_models("llama"), tmp_path / "pkg", precision="int4", validation=FAST_VALIDATION,
                          progress=False)
    modes = _modes(result.out_dir)
    assert "model.onnx.data" in modes   # the quantizer writes this one 0600
    assert modes.pop(".") == 0o755
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}


def test_file_mode_can_be_asked_for_and_the_umask_applies(tmp_path, tiny_models, umask):
    umask(0o022)
    result = export_model(tiny_models("llama"), tmp_path / "a", target="portable", context_length=16,
                          validate=False, progress=False, file_mode=0o640)
    modes = _modes(result.out_dir)
    assert modes.pop(".") == 0o750 and set(modes.values()) == {0o640}
    umask(0o077)   # a private umask keeps the package private
    result = export_model(tiny_models("llama"), tmp_path / "b", target="portable", context_length=16,
                          validate=False, progress=False)
    modes = _modes(result.out_dir)
    assert modes.pop(".") == 0o700 and set(modes.values()) == {0o600}


def test_bad_file_mode(tmp_path, tiny_models, capsys):
    from npc_runtime.cli import main

    with pytest.raises(ExportError, match="file mode"):
        export_model(tiny_models("llama"), tmp_path / "pkg", file_mode=0o200, progress=False)
    with pytest.raises(SystemExit):
        main(["export", "--model", str(tiny_models("llama")), "--out", str(tmp_path / "pkg"), "--file-mode", "9z"])
    assert "octal mode" in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()


def test_cli_file_mode(tmp_path, tiny_models, capsys, umask):
    from npc_runtime.cli import main

    umask(0o022)
    code = main(["export", "--model", str(tiny_models("llama")), "--out", str(tmp_path / "pkg"), "--target",
                 "portable", "--context", "16", "--no-validate", "--file-mode", "600", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["ok"]
    modes = _modes(tmp_path / "pkg")
    assert modes.pop(".") == 0o700 and set(modes.values()) == {0o600}


# ---- the closing line ---------------------------------------------------------------------------------

def test_human_size():
    from npc_export.cli_export import human_size

    assert [human_size(n) for n in (0, 999, 32_196, 3_400_000, 18_700_000, 2_500_000_000)] == \
        ["0 B", "999 B", "32.2 kB", "3.4 MB", "18.7 MB", "2.5 GB"]


def test_policy_export_says_what_its_self_check_found(tmp_path, capsys):
    from npc_runtime.cli import main

    code = main(["export", "--model", "builtin:npc-policy", "--out", str(tmp_path / "pol")])
    out = capsys.readouterr().out
    assert code == 0
    assert "not validated" not in out and "0.0 MB" not in out
    assert re.search(r"\(ort/fp32, \d+\.\d kB\); self-check: max \|diff\| vs PyTorch \S+, action agreement 1\.000, "
                     r"passed$", out.strip()), out


def test_no_validate_says_so(tmp_path, tiny_models, capsys):
    from npc_runtime.cli import main

    code = main(["export", "--model", str(tiny_models("llama")), "--out", str(tmp_path / "pkg"), "--target",
                 "portable", "--context", "16", "--no-validate"])
    assert code == 0 and "self-check: not run (--no-validate)" in capsys.readouterr().out


def test_a_signal_whose_exception_a_finalizer_swallowed_still_stops_the_commit(tmp_path):
    """The signal handler raises in the main thread wherever it is; inside a `__del__` Python only prints
    "Exception ignored" and goes on (seen in CI: regex's Group.__del__). The commit must still not happen."""
    import signal as signals

    from npc_export import interrupt
    from npc_export.errors import ExportInterrupted
    from npc_export.package import PackageWriter

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signals.SIGTERM)   # the handler runs here, its exception is swallowed

    out = tmp_path / "pkg"
    with interrupt.interruptible():
        with pytest.raises(ExportInterrupted):
            with PackageWriter(out) as writer:
                (writer.dir / "model.onnx").write_bytes(b"x")
                Finalized()   # collected at once: SIGTERM arrives inside __del__
                writer.commit({"name": "x"})
    assert not out.exists() and not list(tmp_path.glob("pkg.tmp-*"))
