"""A real loopback OpenAI-compatible judge server for the bench tests. A module of its own, not
conftest.py: test modules import ``JudgeServer``, and importing a conftest by name clashed with
pytest's own ``conftest`` module under ``--doctest-modules``."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer(ThreadingHTTPServer):
    """A loopback OpenAI-compatible chat server that judges like a scripted LLM: it accepts
    an answer only when the user's answer is a paraphrase ("same as ...")."""

    prompts: list[str]


class _JudgeHandler(BaseHTTPRequestHandler):
    server: JudgeServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "judge-model", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][-1]["content"]
        prompt = content if isinstance(content, str) else content[-1]["text"]
        self.server.prompts.append(prompt)
        said = re.search(r"The user's answer: (.*)\n", prompt)
        ok = said is not None and said.group(1).startswith("same as")
        reply = f"<think>checked</think>\n<judge>{0 if ok else 1}</judge>"
        message = {"role": "assistant", "content": reply}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        self._send(
            {"id": "x", "object": "chat.completion", "model": "judge-model", "choices": [choice]}
        )
