"""The hostile inputs of issue 9, each as one case run end to end against a real `npcrt serve` process
(tests/helpers/serve_process.py): what is sent, the limit that should stop it, and the answers that are
right. tests/hostile/test_cases.py asserts them; bench/bench_hostile.py measures them (time, memory, what
other clients saw meanwhile) for docs/reliability.md.

A case's `run(server)` returns an Outcome whose `status` is what came back in one word: "HTTP 413",
"INVALID_ARGUMENT", "OK"... The sizes are the issue's, scaled down where size only adds time (a 10 MB body
rather than 90 MB) but kept past every limit, so an unfixed server shows the problem."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.helpers import raw_http
from tests.helpers.serve_process import ServeProcess


@dataclass
class Outcome:
    status: str
    detail: str = ""                    # the error message (or what was observed), shortened
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    finding: int                        # the numbered finding of issue 9
    sent: str                           # what is sent, in words
    limit: str                          # what should stop it
    expect: tuple[str, ...]             # the statuses that are right
    run: Callable[[ServeProcess], Outcome]
    server: str = "plain"               # plain | token (see SERVERS)
    names: str = ""                     # what the error message must name (the field or the limit)

    def problem(self, outcome: Outcome) -> str | None:
        """Why `outcome` is wrong, or None."""
        if outcome.status not in self.expect:
            return f"{self.name}: got {outcome.status} ({outcome.detail[:300]!r}), expected {' or '.join(self.expect)}"
        if outcome.status != "OK" and not outcome.detail.strip():
            return f"{self.name}: {outcome.status} without a message naming what to fix"
        if self.names.lower() not in outcome.detail.lower():
            return f"{self.name}: the message does not name {self.names!r}: {outcome.detail[:300]!r}"
        return None


TOKEN = "hostile-test-token"
# the keyword arguments of ServeProcess for each kind of server the cases need
SERVERS: dict[str, dict] = {"plain": {}, "token": {"token": TOKEN}}


def _short(text: str | bytes, n: int = 400) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else text[:n] + "..."


def _http_error(reply) -> Outcome:
    if reply.status is None:
        return Outcome("connection closed", reply.error, {"sent_bytes": reply.sent_bytes})
    try:
        message = json.loads(reply.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = _short(reply.body)
    return Outcome(f"HTTP {reply.status}", _short(message),
                   {"sent_bytes": reply.sent_bytes, "body_bytes": reply.body_bytes})


def _post(server: ServeProcess, body: bytes, *, chunked: bool = False, token: bool = True) -> Outcome:
    headers = {"authorization": f"Bearer {server.token}"} if token and server.token else {}
    reply = raw_http.post("127.0.0.1", server.http_port, "/v1/chat/completions", body, headers=headers,
                          chunked=chunked, timeout=300)
    return _http_error(reply)


def _chat_body(messages: int, chars: int, *, max_tokens: int = 4) -> bytes:
    content = ("The guard looks at the gate. " * (chars // 29 + 1))[:chars]
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": content} for i in range(messages)]
    return json.dumps({"messages": msgs, "max_tokens": max_tokens}).encode()


def _grpc(call: Callable[[], object]) -> Outcome:
    import grpc

    try:
        call()
    except grpc.RpcError as exc:
        return Outcome(exc.code().name, _short(exc.details() or ""))
    return Outcome("OK")


# ---- 1. one chat completion freezes the process ----------------------------------------------------------
def chat_10mb_body(server: ServeProcess) -> Outcome:
    return _post(server, _chat_body(200, 50_000))


def chat_10mb_chunked(server: ServeProcess) -> Outcome:
    return _post(server, _chat_body(200, 50_000), chunked=True)


def chat_over_context(server: ServeProcess) -> Outcome:
    # 250,000 characters: under the byte, message and prompt-character limits, far over a 256-token context
    return _post(server, _chat_body(5, 50_000))


def chat_too_many_messages(server: ServeProcess) -> Outcome:
    return _post(server, _chat_body(2_000, 10))


def grpc_2mb_prompt(server: ServeProcess) -> Outcome:
    from npc_proto.v1 import runtime_pb2 as pb

    prompt = "x" * (2 * 1024 * 1024)
    return _grpc(lambda: server.runtime_stub().OpenSession(pb.OpenSessionRequest(prompt=prompt),
                                                           metadata=server.metadata(), timeout=120))


# ---- 2. YAML alias bomb ------------------------------------------------------------------------------------
def alias_bomb_yaml(levels: int = 6, fan: int = 10) -> str:
    """Anchors nested `levels` deep, `fan` aliases each: fan ** levels nodes once expanded (10^6 here)."""
    lines = ["name: bomb", "initial: idle", "states:", "  idle:", "    allowed: [idle]", "    default: idle",
             f"    a0: &a0 [{', '.join(['x'] * fan)}]"]
    for level in range(1, levels):
        lines.append(f"    a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


def _register(server: ServeProcess, npc_id: str, *, fsm_yaml: str | None = None, fsm_name: str | None = None):
    from npc_proto.v1 import agent_pb2 as apb

    request = apb.RegisterNpcRequest(npc_id=npc_id, persona=apb.Persona(name="Bram", role="guard"), replace=True)
    if fsm_yaml is not None:
        request.fsm_yaml = fsm_yaml
    else:
        request.fsm_name = fsm_name or "guard"
    return server.agent_stub().RegisterNpc(request, metadata=server.metadata(), timeout=120)


def yaml_alias_bomb(server: ServeProcess) -> Outcome:
    text = alias_bomb_yaml()
    outcome = _grpc(lambda: _register(server, "bomb-01", fsm_yaml=text))
    outcome.extra["yaml_bytes"] = len(text.encode())
    return outcome


# ---- 3. unauthenticated bodies ------------------------------------------------------------------------------
def unauth_20mb_body(server: ServeProcess) -> Outcome:
    return _post(server, b'{"messages": [{"role": "user", "content": "' + b"A" * (20 * 1024 * 1024) + b'"}]}',
                 token=False)


def unauth_malformed_body(server: ServeProcess) -> Outcome:
    return _post(server, b'{"messages": [{"role": "user", "content": ', token=False)


# ---- 6. one bad Tick entry fails the batch -----------------------------------------------------------------
def tick_bad_entry(server: ServeProcess) -> Outcome:
    """Two good sessions and one entry with a 5,000-'[' JSON schema: the bad entry fails alone."""
    import grpc
    from npc_proto.v1 import runtime_pb2 as pb

    stub, md = server.runtime_stub(), server.metadata()
    sids = [stub.OpenSession(pb.OpenSessionRequest(prompt="Hello", limits=pb.SessionLimits(max_new_tokens=4)),
                             metadata=md, timeout=30).session_id for _ in range(3)]
    bad = pb.TickEntry(session_id=sids[2], budget_ms=50, new_input="Hi",
                       constraint=pb.Constraint(json_schema="[" * 5000))
    try:
        reply = stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=50) for s in sids[:2]]
                                         + [bad]), metadata=md, timeout=60)
    except grpc.RpcError as exc:
        return Outcome(f"whole Tick {exc.code().name}", _short(exc.details() or ""))
    finally:
        for sid in sids:
            _grpc(lambda sid=sid: stub.CloseSession(pb.CloseSessionRequest(session_id=sid), metadata=md, timeout=30))
    good, failed = reply.results[:2], reply.results[2]
    if any(r.error for r in good):
        return Outcome("good entries failed", "; ".join(r.error for r in good))
    code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    status = ("OK, bad entry INVALID_ARGUMENT" if failed.error_code == code
              else f"OK, bad entry code {failed.error_code}")
    return Outcome(status, _short(failed.error))


# ---- 7. INTERNAL / UNKNOWN / 500 for client mistakes ------------------------------------------------------
def deep_json_schema(server: ServeProcess) -> Outcome:
    from npc_proto.v1 import runtime_pb2 as pb

    # 2,000 deep in 50 KB: under the text-size limit, so the depth check is what refuses it
    schema = '{"type":"array","items":' * 2000 + '{"type":"string"}' + "}" * 2000
    return _grpc(lambda: server.runtime_stub().OpenSession(pb.OpenSessionRequest(
        prompt="Hi", constraint=pb.Constraint(json_schema=schema)), metadata=server.metadata(), timeout=60))


def deep_yaml(server: ServeProcess) -> Outcome:
    return _grpc(lambda: _register(server, "deep-01", fsm_yaml="name: " + "[" * 5000 + "]" * 5000 + "\n"))


def complex_key_yaml(server: ServeProcess) -> Outcome:
    text = "name: odd\ninitial: idle\nstates:\n  ? [idle, patrol]\n  : {allowed: [idle], default: idle}\n"
    return _grpc(lambda: _register(server, "odd-01", fsm_yaml=text))


def deep_guard(server: ServeProcess) -> Outcome:
    # 400 deep in 819 characters: under the guard-length limit, so the depth check is what refuses it
    guard = "(" * 400 + "player_distance > 1" + ")" * 400
    text = ("name: deep\ninitial: idle\nstates:\n  idle:\n    allowed: [idle, talk]\n    default: idle\n"
            f"    transitions:\n      - to: idle\n        when: \"{guard}\"\n")
    return _grpc(lambda: _register(server, "guard-deep", fsm_yaml=text))


def _step(server: ServeProcess, *, game_time_s: float = 1.0, deadline_ms: float = 0.0,
          values: dict | None = None) -> Outcome:
    from npc_proto.v1 import agent_pb2 as apb

    _register(server, "nan-01", fsm_name="guard")
    request = apb.StepRequest(npc_id="nan-01", deadline_ms=deadline_ms, observation=apb.Observation(
        game_time_s=game_time_s, values=values or {"player_distance": 3.0}))
    return _grpc(lambda: server.agent_stub().Step(request, metadata=server.metadata(), timeout=60))


def step_nan_game_time(server: ServeProcess) -> Outcome:
    return _step(server, game_time_s=math.nan)


def step_nan_deadline(server: ServeProcess) -> Outcome:
    return _step(server, deadline_ms=math.nan)


def step_inf_value(server: ServeProcess) -> Outcome:
    return _step(server, values={"player_distance": math.inf})


def http_lone_surrogate(server: ServeProcess) -> Outcome:
    return _post(server, b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 4}')


def http_invalid_utf8(server: ServeProcess) -> Outcome:
    return _post(server, b'{"messages": [{"role": "user", "content": "\xff\xfe\xc3("}], "max_tokens": 4}')


def corrupt_protobuf(server: ServeProcess) -> Outcome:
    call = server.channel().unary_unary("/npc.v1.NpcRuntime/OpenSession", request_serializer=None,
                                        response_deserializer=None)
    return _grpc(lambda: call(b"\x0a\xff\xff\xff\xff\x0f\x12\x00garbage", metadata=server.metadata(), timeout=30))


CASES: tuple[Case, ...] = (
    Case("chat_10mb_body", 1, "POST /v1/chat/completions, 200 messages x 50,000 chars (10 MB, Content-Length)",
         "server.max_request_bytes (4 MiB), before reading", ("HTTP 413",), chat_10mb_body, names="max_request_bytes"),
    Case("chat_10mb_chunked", 1, "the same 10 MB body, chunked (no Content-Length)",
         "server.max_request_bytes, counted while reading", ("HTTP 413",), chat_10mb_chunked,
         names="max_request_bytes"),
    Case("chat_over_context", 1, "5 messages x 50,000 chars (250,000 chars, legal size)",
         "the model's context, before rendering the whole", ("HTTP 400", "HTTP 413"), chat_over_context,
         names="context"),
    Case("chat_2000_messages", 1, "2,000 messages of 10 chars", "server.max_messages (256)",
         ("HTTP 400", "HTTP 413"), chat_too_many_messages, names="messages"),
    Case("grpc_2mb_prompt", 1, "OpenSession with a 2 MiB prompt", "server.grpc_max_receive_bytes (~1.1 MB)",
         ("RESOURCE_EXHAUSTED",), grpc_2mb_prompt),
    Case("yaml_alias_bomb", 2, "RegisterNpc.fsm_yaml: anchors 6 deep x 10 aliases (10^6 nodes)",
         "no anchors/aliases; FSM depth and node limits", ("INVALID_ARGUMENT",), yaml_alias_bomb, names="fsm_yaml"),
    Case("unauth_20mb_body", 3, "20 MB chat completion without a token", "auth before the body is read",
         ("HTTP 401",), unauth_20mb_body, server="token", names="token"),
    Case("unauth_malformed_body", 3, "malformed JSON without a token", "auth before parsing",
         ("HTTP 401",), unauth_malformed_body, server="token", names="token"),
    Case("tick_bad_entry", 6, "Tick: 2 good entries + 1 with json_schema of 5,000 '['",
         "entry errors stay in their entry", ("OK, bad entry INVALID_ARGUMENT",), tick_bad_entry, names="entries[2]"),
    Case("deep_json_schema", 7, "OpenSession constraint: JSON schema nested 2,000 deep (50 KB)",
         "schema depth limit", ("INVALID_ARGUMENT",), deep_json_schema, names="json_schema"),
    Case("deep_yaml", 7, "RegisterNpc.fsm_yaml: a list nested 5,000 deep", "FSM depth limit (32)",
         ("INVALID_ARGUMENT",), deep_yaml, names="fsm_yaml"),
    Case("complex_key_yaml", 7, "RegisterNpc.fsm_yaml with a list as a mapping key", "string keys only",
         ("INVALID_ARGUMENT",), complex_key_yaml, names="fsm_yaml"),
    Case("deep_guard", 7, "FSM guard with 400 nested parentheses (819 chars)", "guard depth limit (32)",
         ("INVALID_ARGUMENT",), deep_guard, names="guard"),
    Case("step_nan_game_time", 7, "Step with observation.game_time_s = NaN", "finite numbers only",
         ("INVALID_ARGUMENT",), step_nan_game_time, names="game_time_s"),
    Case("step_nan_deadline", 7, "Step with deadline_ms = NaN", "finite numbers only",
         ("INVALID_ARGUMENT",), step_nan_deadline, names="deadline_ms"),
    Case("step_inf_value", 7, "Step with observation value +inf", "finite numbers only",
         ("INVALID_ARGUMENT",), step_inf_value, names="player_distance"),
    Case("http_lone_surrogate", 7, 'chat content "\\ud800" (a lone surrogate)', "valid Unicode text",
         ("HTTP 400",), http_lone_surrogate, names="messages[0]"),
    Case("http_invalid_utf8", 7, "chat body with invalid UTF-8 bytes", "valid UTF-8 JSON",
         ("HTTP 400",), http_invalid_utf8, names="UTF-8"),
    Case("corrupt_protobuf", 7, "OpenSession with bytes that are not a protobuf message", "a parsable message",
         ("INVALID_ARGUMENT",), corrupt_protobuf, names="OpenSession"),
)


def run_case(case: Case, server: ServeProcess) -> tuple[Outcome, float]:
    """The case's outcome and its wall time, seconds."""
    start = time.monotonic()
    outcome = case.run(server)
    return outcome, time.monotonic() - start


# ---- 5. package files not confined; 7. empty token: refused at startup -----------------------------------
def _package_copy(workdir, mutate: Callable[[dict, object], None]):
    """A copy of the built-in dialogue package under `workdir`, its manifest changed by mutate(manifest, dir)."""
    import shutil

    from npc_runtime.builtin_packages import package_dir

    pkg = workdir / "pkg" / "npc-dialogue"
    shutil.rmtree(pkg.parent, ignore_errors=True)
    shutil.copytree(package_dir("npc-dialogue"), pkg)
    manifest = json.loads((pkg / "manifest.json").read_text())
    mutate(manifest, pkg)
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return pkg


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outside_file(manifest: dict, pkg) -> None:
    secret = pkg.parent.parent / "secret.txt"
    secret.write_text("the modder's key: 1234\n")
    manifest["files"]["../../secret.txt"] = _sha256(secret)


def _absolute_file(manifest: dict, pkg) -> None:
    from pathlib import Path

    target = next(p for p in (Path("/etc/hostname"), Path("/etc/passwd")) if p.is_file())
    manifest["files"][str(target)] = _sha256(target)


def _unlisted_scrambled_data(manifest: dict, pkg) -> None:
    import random

    del manifest["files"]["model.onnx.data"]
    data = pkg / "model.onnx.data"
    data.write_bytes(random.Random(9).randbytes(data.stat().st_size))


def _unlisted_graph(manifest: dict, pkg) -> None:
    del manifest["files"]["model.onnx"]


def start_refused(workdir, **serve_kwargs) -> Outcome:
    """Start `npcrt serve`; "exit N" with its stderr when it refuses, "started" (and stopped) when it serves."""
    server = ServeProcess(workdir=workdir, data_dir=workdir / "data", **serve_kwargs)
    try:
        server.start(timeout=60)
    except AssertionError:
        return Outcome(f"exit {server.proc.returncode}", _short(server.stderr.strip(), 600),
                       {"stderr": server.stderr, "stdout": "".join(server.stdout_lines)})
    server.stop()
    return Outcome("started", "npcrt serve started and served", {"stderr": server.stderr})


@dataclass(frozen=True)
class StartupCase:
    name: str
    finding: int
    sent: str
    limit: str
    mutate: Callable[[dict, object], None] | None = None
    serve_kwargs: dict = field(default_factory=dict)
    expect: tuple[str, ...] = ("exit 2",)

    def run(self, workdir) -> Outcome:
        kwargs = dict(self.serve_kwargs)
        if self.mutate is not None:
            kwargs["models"] = [str(_package_copy(workdir, self.mutate))]
        return start_refused(workdir, **kwargs)

    def problem(self, outcome: Outcome) -> str | None:
        if outcome.status not in self.expect:
            return f"{self.name}: got {outcome.status} ({outcome.detail!r}), expected {' or '.join(self.expect)}"
        log = outcome.extra.get("stderr", "")
        if "Traceback" in log:
            return f"{self.name}: a traceback instead of one line:\n{log[-3000:]}"
        last = [line for line in log.splitlines() if line.strip()][-1:]
        if not last or not last[0].startswith("npcrt serve: "):
            return f"{self.name}: the last line is not the one-line error 'npcrt serve: ...': {log[-600:]!r}"
        return None


STARTUP_CASES: tuple[StartupCase, ...] = (
    StartupCase("package_outside_file", 5, "manifest lists ../../secret.txt with its sha256",
                "package files relative, inside the folder", _outside_file),
    StartupCase("package_absolute_file", 5, "manifest lists /etc/hostname with its sha256",
                "no absolute paths", _absolute_file),
    StartupCase("package_unlisted_data", 5, "model.onnx.data dropped from files and scrambled",
                "every file the graph loads is listed and hashed", _unlisted_scrambled_data),
    StartupCase("package_unlisted_graph", 5, "model.onnx missing from files", "the graph is listed and hashed",
                _unlisted_graph),
    StartupCase("empty_token", 7, "npcrt serve --token ''", "an empty token is a startup error",
                serve_kwargs={"token": ""}),
)
