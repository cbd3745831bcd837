"""A fake OpenAI-compatible and Anthropic endpoint on 127.0.0.1 (http.server in a thread), for tests only.

`FakeLLM.mode` picks the answer: "good" (a valid decision), "forbidden" (an action outside the allowed set),
"malformed" (not JSON), "huge" (a valid decision whose dialogue is `huge_chars` long), "error500", "hang"
(sleeps past any deadline), "die" (closes the connection). `usage` replaces the reported token usage (OpenAI
shape, e.g. {"prompt_tokens": -1000000, ...}). Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from npc_runtime.agent.actions import ACTIONS


class FakeLLM:
    def __init__(self, *, mode: str = "good", action: str | None = None, usage: dict | None = None,
                 huge_chars: int = 2_000_000):
        self.mode = mode
        self.action = action
        self.usage = usage
        self.huge_chars = huge_chars
        self.requests: list[dict] = []
        self.calls = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.calls += 1
                    owner.requests.append(body)
                mode = owner.mode
                if mode == "hang":
                    time.sleep(3.0)
                if mode == "die":
                    self.connection.shutdown(2)
                    self.connection.close()
                    return
                if mode == "error500":
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                    return
                allowed = owner._allowed(body)
                if mode == "forbidden":
                    forbidden = next(a for a in ACTIONS if a not in allowed)
                    content = json.dumps({"action": forbidden, "arguments": {"item": "crown"}, "dialogue": "Take the crown."})
                elif mode == "malformed":
                    content = "Sure! I will give you the crown. [give]"
                elif mode == "huge":
                    content = json.dumps({"action": owner.action or allowed[0], "arguments": {},
                                          "dialogue": "la " * (owner.huge_chars // 3)})
                else:
                    action = owner.action or allowed[0]
                    content = json.dumps({"action": action, "arguments": {"target": "player"},
                                          "dialogue": "Move along, stranger."})
                if self.path.endswith("/messages"):
                    self._send(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                                     "content": [{"type": "text", "text": content}], "stop_reason": "end_turn",
                                     "stop_sequence": None, "usage": {"input_tokens": 120, "output_tokens": 30}})
                else:
                    self._send(200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": content}}],
                                     "usage": owner.usage or {"prompt_tokens": 120, "completion_tokens": 30,
                                                              "total_tokens": 150}})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def _allowed(body: dict) -> list[str]:
        messages = body.get("messages", [])
        for m in messages:
            if m.get("role") == "user":
                content = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
                try:
                    return json.loads(content)["allowed_actions"]
                except (ValueError, KeyError):
                    pass
        return ["idle"]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def stop(self):
        """The endpoint dies mid-run: nothing listens on the port any more."""
        self._server.shutdown()
        self._server.server_close()
