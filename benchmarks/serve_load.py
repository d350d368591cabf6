"""Load test of ``medlens serve``: N concurrent clients on loopback for a bounded time.

The server (``medlens.serve.create_app`` under uvicorn, as ``medlens serve`` runs it) is in
its own process, so clients and server do not share a GIL. Its model is either a tiny
random-weight transformers VLM (``--model tiny``, built offline by ``medlens.testing.tiny``)
or a scripted backend that sleeps ``--delay-s`` per request (``--model scripted``). Either
way every request runs the whole pipeline: load, de-identify (with OCR), model, parse,
confidence.

Each client sends closed questions about a small PNG to ``/v1/chat/completions`` as fast as
answers come back. Reported: requests/s (answered), p50/p95/p99 latency, status counts, and
errors, meaning any status other than 200 and the designed 429/503/504. The target is no
errors and p99 bounded by the configured ``--timeout-s`` under overload.

    python benchmarks/serve_load.py --model scripted --delay-s 0.05 --clients 32 --duration-s 10
    python benchmarks/serve_load.py --model tiny --clients 16 --duration-s 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

DESIGNED = {200, 429, 503, 504}


def png_data_url(size: int = 96) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((size, size)) * 255).astype("uint8")).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_server(args: argparse.Namespace) -> None:
    """The server process (this script started with ``--serve``)."""
    import uvicorn

    from medlens.serve import ServeConfig, create_app

    if args.model == "scripted":
        from medlens.backends.scripted import ScriptedBackend

        def reply(request: object) -> str:
            time.sleep(args.delay_s)
            return "yes"

        backend = ScriptedBackend(answers=reply)
    else:
        from medlens.backends import load_backend

        backend = load_backend(str(args.model_path), "transformers", device="cpu")
    config = ServeConfig(
        backend=backend,
        model=args.model,
        timeout_s=args.timeout_s,
        max_concurrency=args.concurrency,
        queue_size=args.queue_size,
        rate_limit_rpm=args.rate_limit,
    )
    uvicorn.run(create_app(config), port=args.port, log_level="warning", access_log=False)


def start_server(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--model", args.model]
    command += ["--delay-s", str(args.delay_s), "--timeout-s", str(args.timeout_s)]
    command += ["--queue-size", str(args.queue_size), "--concurrency", str(args.concurrency)]
    if args.model == "tiny":
        from medlens.testing.tiny import build_tiny_model

        command += ["--model-path", str(build_tiny_model(args.family, workdir / "tiny"))]
    if args.rate_limit:
        command += ["--rate-limit", str(args.rate_limit)]
    env = dict(os.environ, MEDLENS_HOME=str(workdir / "home"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 300 s")


async def drive(
    url: str, clients: int, duration_s: float, timeout_s: float
) -> list[tuple[int, float]]:
    image = png_data_url()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Is there a pleural effusion?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
        "kind": "closed",
    }
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s + 30, limits=limits) as client:
        stop = time.monotonic() + duration_s

        async def one_client() -> None:
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                    status = response.status_code
                    if status in (429, 503):
                        retry = float(response.headers.get("retry-after", "1"))
                        results.append((status, time.monotonic() - started))
                        await asyncio.sleep(min(retry, 0.25))  # polite clients back off a bit
                        continue
                except httpx.HTTPError:
                    status = -1  # connection error or client time-out: always an error
                results.append((status, time.monotonic() - started))

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return results


def summarise(results: list[tuple[int, float]], duration_s: float, timeout_s: float) -> dict:
    statuses = Counter(status for status, _ in results)
    latencies = np.array([lat for _, lat in results]) if results else np.zeros(1)
    answered = np.array([lat for status, lat in results if status == 200]) if results else None
    pct = lambda a, q: (
        round(float(np.percentile(a, q)) * 1000, 1) if a is not None and a.size else None
    )
    return {
        "requests": len(results),
        "answered_per_s": round(statuses[200] / duration_s, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k not in DESIGNED),
        "latency_ms_all": {
            "p50": pct(latencies, 50),
            "p95": pct(latencies, 95),
            "p99": pct(latencies, 99),
            "max": round(float(latencies.max()) * 1000, 1),
        },
        "latency_ms_200": {
            "p50": pct(answered, 50),
            "p95": pct(answered, 95),
            "p99": pct(answered, 99),
        },
        "p99_within_timeout": bool(np.percentile(latencies, 99) <= timeout_s + 0.25),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["scripted", "tiny"], default="scripted")
    parser.add_argument("--family", default="qwen2_5_vl", help="tiny model family")
    parser.add_argument("--delay-s", type=float, default=0.05, help="scripted service time")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate-limit", type=float, help="requests/min per client key")
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="medlens-load-") as tmp:
        process, url = start_server(args, Path(tmp))
        try:
            results = asyncio.run(drive(url, args.clients, args.duration_s, args.timeout_s))
        finally:
            process.terminate()
            process.wait(timeout=30)
    summary = summarise(results, args.duration_s, args.timeout_s)
    setup = {
        k: getattr(args, k)
        for k in (
            "model",
            "clients",
            "duration_s",
            "timeout_s",
            "queue_size",
            "concurrency",
            "delay_s",
            "rate_limit",
        )
    }
    if args.model == "tiny":
        setup["family"] = args.family
    print(json.dumps({"setup": setup, **summary}, indent=2))
    return 0 if summary["errors"] == 0 and summary["p99_within_timeout"] else 1


if __name__ == "__main__":
    sys.exit(main())
