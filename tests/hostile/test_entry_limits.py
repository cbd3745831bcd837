"""Limits at the entrance on a real `npcrt serve` process (issue 9 findings 1, 3 and the empty token;
docs/limits.md): each refusal says which limit, comes before the work (the body is not read, the prompt not
tokenized), a liveness probe from another connection keeps answering meanwhile, memory does not keep the
request's weight, and the server serves normally afterwards. Payloads are kept to what proves the point on a
2-core CI machine."""

from __future__ import annotations

import json

import grpc
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from tests.helpers import raw_http
from tests.helpers.liveness import LivenessProbe
from tests.helpers.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(300)

TOKEN = "entry-limits-token"
MiB = 1 << 20
RSS_GROWTH_LIMIT_KIB = 100 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve-entry")
    proc = ServeProcess(workdir=workdir, data_dir=workdir / "data", token=TOKEN).start()
    yield proc
    try:
        if proc.alive():
            assert proc.stop() == 0, proc.stderr[-4000:]
            assert "Traceback" not in proc.stderr, proc.stderr[-6000:]
    finally:
        proc.cleanup()


def _chat(messages: int, chars: int, pattern: str = "The guard looks at the gate. ") -> bytes:
    content = (pattern * (chars // len(pattern) + 1))[:chars]
    return json.dumps({"messages": [{"role": "user", "content": content}] * messages, "max_tokens": 2}).encode()


def _post(server: ServeProcess, body, *, token: bool = True, **kwargs) -> raw_http.RawReply:
    headers = {"authorization": f"Bearer {TOKEN}"} if token else {}
    return raw_http.post("127.0.0.1", server.http_port, "/v1/chat/completions", body, headers=headers,
                         timeout=120, **kwargs)


def _message(reply: raw_http.RawReply) -> str:
    return json.loads(reply.body)["error"]["message"]


class _Watched:
    """The probe and the RSS bound around one hostile exchange; checks the server afterwards."""

    def __init__(self, server: ServeProcess, rss_limit_kib: int = RSS_GROWTH_LIMIT_KIB) -> None:
        self.server, self.rss_limit_kib = server, rss_limit_kib

    def __enter__(self) -> "_Watched":
        self.rss_before = self.server.rss_kib()
        self.probe = LivenessProbe(self.server.grpc_target, self.server.http_url).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.probe.__exit__(*exc)
        if exc[0] is not None:
            return
        grown = self.server.rss_kib() - self.rss_before
        assert not self.probe.failures, f"liveness probe failed meanwhile: {self.probe.failures[:5]}"
        assert self.probe.summary()["probes"] > 0
        assert grown <= self.rss_limit_kib, f"RSS grew {grown // 1024} MiB"
        self.server.check_alive()


def test_a_10mb_chat_body_is_refused_before_it_is_read(server):
    body = _chat(200, 50_000)                        # the body: 200 messages x 50,000 characters
    assert len(body) > 10_000_000
    with _Watched(server):
        reply = _post(server, body)
        assert reply.status == 413, reply
        assert "max_request_bytes" in _message(reply) and "4194304" in _message(reply)
        assert reply.sent_bytes < len(body)
        reply = _post(server, body, chunked=True)    # no Content-Length: counted while read
        assert reply.status == 413 and "passed 4194304 bytes" in _message(reply)
        # the server stops reading at the limit, then drains (drops) what arrives for up to 1 s so the client
        # can read its 413: on loopback the rest of the 10 MB may well arrive in that window
        assert reply.elapsed_s < 5


def test_the_largest_legal_body_is_answered_while_health_answers(server):
    # 256 messages, 262,144 characters outside the BMP, JSON-escaped (12 bytes each): ~3 MB, under every
    # entrance limit; parsed on the worker pool and refused from its length (far over the context)
    body = _chat(256, 1024, "\U0001f5e1")
    assert 3_000_000 < len(body) < 4 * MiB
    with _Watched(server):
        for _ in range(3):
            reply = _post(server, body)
            assert reply.status == 413, reply
            assert "max context is" in _message(reply) and "characters is at least" in _message(reply)


def test_unauthenticated_uploads_are_refused_from_the_headers(server):
    block = b"x" * MiB

    def hundred_mb():
        for _ in range(100):
            yield block

    with _Watched(server, rss_limit_kib=50 * 1024):
        for _ in range(4):
            reply = _post(server, hundred_mb(), token=False, body_len=100 * MiB)
            assert reply.status == 401, reply
            assert "bearer token" in _message(reply)
            assert reply.sent_bytes < 100 * MiB     # the server closed instead of reading the upload
        reply = _post(server, b"{this is not json", token=False)
        assert reply.status == 401                  # not 400: the body is never parsed without the token
        reply = _post(server, b"{this is not json")
        assert reply.status == 400 and "not valid JSON" in _message(reply)


def test_a_prompt_over_the_context_is_refused_without_tokenizing(server):
    # 250,000 characters is within max_prompt_chars but far over the built-in model's context: refused from
    # its length (the "at least N tokens" message is the cheap bound's; the tokenizer never saw it)
    with _Watched(server):
        reply = _post(server, _chat(5, 50_000))
        assert reply.status == 413, reply
        assert "250000 characters is at least" in _message(reply)
        stub = server.runtime_stub()
        with pytest.raises(grpc.RpcError) as err:
            stub.OpenSession(pb.OpenSessionRequest(prompt="word " * 12_000), metadata=server.metadata(), timeout=60)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "characters is at least" in err.value.details()


def test_message_count_and_prompt_characters_have_limits(server):
    reply = _post(server, _chat(300, 10))
    assert reply.status == 413 and "300 messages; the limit is 256" in _message(reply)
    reply = _post(server, _chat(6, 50_000))
    assert reply.status == 413 and "the limit is 262144" in _message(reply)


def test_a_grpc_message_over_the_receive_limit(server):
    stub = server.runtime_stub()
    with _Watched(server):
        with pytest.raises(grpc.RpcError) as err:
            stub.OpenSession(pb.OpenSessionRequest(prompt="x" * (2 * MiB)), metadata=server.metadata(), timeout=60)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
