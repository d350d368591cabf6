"""Run an app with uvicorn in a background thread on a loopback port (tests, benchmarks,
notebooks): ``with serve_in_thread(app) as url: httpx.get(url + "/healthz")``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from medlens.errors import BackendError


@contextlib.contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", start_timeout_s: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` on a free port of ``host``; yields the base URL, stops on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="medlens-uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BackendError(f"The server did not start on {host}:{port}.")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
