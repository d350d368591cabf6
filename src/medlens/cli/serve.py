"""``medlens serve --model M``: the pipeline behind an HTTP API and a web page."""

from __future__ import annotations

import argparse

COMMAND = "serve"
ORDER = 40


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    from medlens.cli.common import add_model_options, probability

    parser = subparsers.add_parser(
        COMMAND,
        help="serve a model over HTTP (OpenAI-compatible API and a web page)",
        description="Run load -> de-identify -> model -> parse -> calibrated confidence behind "
        "an OpenAI-compatible API (/v1/chat/completions), /v1/analyze for uploaded studies, "
        "and a web page at /. API keys are required unless --no-auth (loopback only).",
    )
    add_model_options(parser, required=False, scores_by_default=True)
    net = parser.add_argument_group("network")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s; 0.0.0.0 for every interface)",
    )
    net.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    auth = net.add_mutually_exclusive_group()
    auth.add_argument(
        "--api-key-file", help="hashed keys (default: MEDLENS_HOME/serve/api_keys.json)"
    )
    auth.add_argument("--no-auth", action="store_true", help="no API keys (loopback only)")
    net.add_argument("--add-key", metavar="NAME", help="create an API key, print it once, exit")
    net.add_argument(
        "--list-keys", action="store_true", help="list the API keys (names, ids, dates), exit"
    )
    net.add_argument(
        "--revoke-key", metavar="NAME_OR_ID", help="delete an API key by name or id, exit"
    )
    net.add_argument(
        "--cors-origin", action="append", default=[], help="allow this browser origin (repeat)"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-upload-mb", type=float, default=64.0, help="per upload (default: %(default)s)"
    )
    limits.add_argument(
        "--max-pixels", type=int, default=100_000_000, help="per study (default: %(default)s)"
    )
    limits.add_argument(
        "--timeout-s",
        type=float,
        default=60.0,
        help="per request, queue included (default: %(default)s)",
    )
    limits.add_argument(
        "--concurrency", type=int, default=1, help="model calls at once (default: %(default)s)"
    )
    limits.add_argument(
        "--queue-size", type=int, default=8, help="requests allowed to wait (default: %(default)s)"
    )
    limits.add_argument("--rate-limit", type=float, metavar="RPM", help="requests/min per key")
    trust = parser.add_argument_group("answers")
    trust.add_argument("--calibration", help="calibration profile name or path")
    trust.add_argument(
        "--abstain-below",
        type=probability,
        metavar="P",
        help="abstain below confidence P (0..1; default: the profile's threshold)",
    )
    trust.add_argument("--whisper-path", help="local Whisper weights for spoken questions")
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medlens.errors import ConfigError
    from medlens.serve.auth import KeyStore, default_key_file

    key_file = Path(args.api_key_file) if args.api_key_file else default_key_file()
    if args.add_key:
        key = KeyStore(key_file).add(args.add_key)
        print(f"API key '{args.add_key}' (shown once; stored hashed in {key_file}):\n{key}")
        return 0
    if args.list_keys:
        print(format_keys(KeyStore(key_file), key_file))
        return 0
    if args.revoke_key:
        removed = KeyStore(key_file).revoke(args.revoke_key)
        print(
            f"Revoked {len(removed)} API key(s) named or numbered '{args.revoke_key}': "
            + ", ".join(f"{r.name} (id {r.id})" for r in removed)
        )
        return 0
    if not args.model:
        raise ConfigError("medlens serve needs --model (or --add-key NAME to create a key).")
    if not args.no_auth and not KeyStore(key_file).names():
        raise ConfigError(
            f"No API keys in {key_file}. Create one with `medlens serve --add-key NAME`, "
            "or pass --no-auth to serve on loopback without keys."
        )
    import logging

    import uvicorn

    from medlens.cli.common import backend_from_args
    from medlens.serve import ServeConfig, create_app

    calibration = None
    if args.calibration:
        from medlens.trust.calibration import CalibrationProfile

        calibration = CalibrationProfile.load(args.calibration)
    config = ServeConfig(
        model=args.model,
        served_model_name=args.served_model,
        calibration=calibration,
        abstain_threshold=args.abstain_below,
        candidate_scoring=not args.generate,
        api_key_file=None if args.no_auth else key_file,
        host=args.host,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        timeout_s=args.timeout_s,
        max_concurrency=args.concurrency,
        queue_size=args.queue_size,
        rate_limit_rpm=args.rate_limit,
        cors_origins=tuple(args.cors_origin),
        whisper_path=Path(args.whisper_path) if args.whisper_path else None,
    ).validate()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    backend = backend_from_args(args)
    from dataclasses import replace

    app = create_app(replace(config, backend=backend))
    print(f"medlens serving {config.model_name} on http://{args.host}:{args.port}/")
    try:
        uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    finally:
        backend.close()
    return 0


def format_keys(store: object, key_file: object) -> str:
    """One line per key: name, id (the part after ``ml-`` of the key), creation date; never
    the secret, which is not stored."""
    import time

    from medlens.serve.auth import KeyStore

    assert isinstance(store, KeyStore)
    records = store.records()
    if not records:
        return f"No API keys in {key_file}. Create one with `medlens serve --add-key NAME`."
    lines = [f"{len(records)} API key(s) in {key_file}:"]
    for record in sorted(records, key=lambda r: r.created):
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created))
        lines.append(f"  {record.name:<20} id {record.id}  created {created}")
    return "\n".join(lines)
