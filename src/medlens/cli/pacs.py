"""``medlens pacs search|pull``: find studies on a PACS (QIDO-RS) and pull series (WADO-RS).

``search`` on a service root lists studies (filters: patient id, modality, study date range,
accession number); on a study address it lists the study's series, each with the address to
give ``medlens ask``. ``pull`` writes a series (or every image series of a study) into a
folder, de-identified unless ``--no-deid``. Credentials come from ``--auth-file`` or the
environment (``medlens.study.readers.dicomweb``), never from a flag value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path
from typing import Any

COMMAND = "pacs"
ORDER = 35


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        COMMAND,
        help="search and pull studies on a PACS over DICOMweb",
        description="Search a DICOMweb server (QIDO-RS) and pull series from it (WADO-RS). "
        "Addresses: dicomweb://HOST:PORT/dicom-web[/studies/<uid>[/series/<uid>]] "
        "(dicomwebs:// for TLS). Credentials: --auth-file, MEDLENS_PACS_AUTH_FILE, "
        "MEDLENS_PACS_TOKEN, or MEDLENS_PACS_USER and MEDLENS_PACS_PASSWORD.",
    )
    actions = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    search = actions.add_parser("search", help="list studies (or a study's series)")
    search.add_argument("address", help="service root (studies) or a study address (series)")
    search.add_argument("--patient-id", help="PatientID to match (QIDO wildcards * and ?)")
    search.add_argument("--modality", help="modality in the study, e.g. CT, MR, DX")
    search.add_argument(
        "--date", help="study date or range: YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD, YYYYMMDD-"
    )
    search.add_argument("--accession", help="AccessionNumber to match")
    search.add_argument("--limit", type=int, help="at most this many studies")
    search.add_argument("--json", action="store_true", help="print the QIDO-RS answer as JSON")
    _add_connection_options(search)

    pull = actions.add_parser("pull", help="download a series or study into a folder")
    pull.add_argument("address", help="a study or series address")
    pull.add_argument("--out", required=True, help="folder to write the DICOM files into")
    pull.add_argument(
        "--no-deid",
        action="store_true",
        help="write the files as the PACS holds them (only where you may keep PHI)",
    )
    _add_connection_options(pull)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--auth-file",
        help="file whose first line is 'Bearer <token>' or 'Basic <user>:<password>'",
    )
    parser.add_argument("--timeout", type=float, help="seconds to wait for an answer (60)")


def run(args: argparse.Namespace) -> int:
    from medlens.study.readers.dicomweb import connect

    client, address = connect(args.address, auth_file=args.auth_file, timeout=args.timeout)
    with contextlib.closing(client):
        if args.pacs_command == "search":
            return _search(args, client, address)
        return _pull(args, client, address)


def date_range(text: str) -> str:
    """A QIDO-RS StudyDate value (PS3.18 8.3.4.6.1: a date or a range with '-')."""
    from medlens.errors import ConfigError

    cleaned = text.replace(" ", "")
    if not re.fullmatch(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}", cleaned):
        raise ConfigError(
            f"--date {text!r}: write YYYYMMDD, a range YYYYMMDD-YYYYMMDD, or an open range "
            "-YYYYMMDD / YYYYMMDD-."
        )
    return cleaned


def _search(args: argparse.Namespace, client: Any, address: Any) -> int:
    from medlens.errors import ConfigError
    from medlens.study.readers.dicomweb import DicomwebAddress, json_value

    if address.series_uid is not None:
        raise ConfigError("pacs search takes a service root or a study address, not a series.")
    if address.study_uid is not None:
        rows = client.search_series(address.study_uid)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for row in rows:
            series = str(json_value(row, "0020000E"))
            target = DicomwebAddress(address.root, address.study_uid, series).url()
            count = json_value(row, "00201209") or "?"
            desc = json_value(row, "0008103E") or ""
            print(f"{json_value(row, '00080060') or '?':<4} {count!s:>5} instances  {desc}")
            print(f"     {target}")
        print(f"{len(rows)} series")
        return 0
    filters = {
        key: value
        for key, value in (
            ("PatientID", args.patient_id),
            ("ModalitiesInStudy", args.modality.upper() if args.modality else None),
            ("StudyDate", date_range(args.date) if args.date else None),
            ("AccessionNumber", args.accession),
        )
        if value
    }
    rows = client.search_studies(filters, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        study = str(json_value(row, "0020000D"))
        modalities = row.get("00080061", {}).get("Value") or []
        print(
            f"{json_value(row, '00080020') or '--------'}  {'/'.join(modalities) or '?':<6} "
            f"acc {json_value(row, '00080050') or '-'}  {json_value(row, '00081030') or ''}"
        )
        print(f"     {DicomwebAddress(address.root, study).url()}")
    print(f"{len(rows)} studies")
    return 0


def _pull(args: argparse.Namespace, client: Any, address: Any) -> int:
    import tempfile

    from medlens.errors import ConfigError
    from medlens.study.load import resolve_max_pixels
    from medlens.study.readers.dicomweb import NON_IMAGE_MODALITIES, json_value, pull_series

    if address.study_uid is None:
        raise ConfigError("pacs pull needs a study or series address, not a service root.")
    if address.series_uid is not None:
        series = [address.series_uid]
    else:
        rows = client.search_series(address.study_uid)
        series = [
            str(json_value(r, "0020000E"))
            for r in rows
            if str(json_value(r, "00080060")) not in NON_IMAGE_MODALITIES
        ]
        if not series:
            from medlens.errors import PacsError

            raise PacsError(
                f"The DICOMweb server at {client.root} holds no image series of study "
                f"{address.study_uid}. Check the UID with 'medlens pacs search'."
            )
    out = Path(args.out)
    cap = resolve_max_pixels(None)
    with tempfile.TemporaryDirectory(prefix="medlens-pull-") as tmp:
        raw = out if args.no_deid else Path(tmp)
        count = 0
        for index, series_uid in enumerate(series):
            target = raw / (series_uid if args.no_deid else f"series-{index + 1}")
            target.mkdir(parents=True, exist_ok=True)
            for ds in pull_series(client, address.study_uid, series_uid, max_pixels=cap):
                ds.save_as(target / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
                count += 1
        if not args.no_deid:
            from medlens.privacy.tree import deidentify_tree

            results = deidentify_tree(raw, out)
            done = sum(r.status.startswith("ok") for r in results)
            print(f"pulled {count} instance(s) of {len(series)} series, {done} de-identified")
            print(f"into {out} (audit: {out / 'deid-audit.csv'})")
            return 0 if done == count else 1
    print(f"pulled {count} instance(s) of {len(series)} series into {out} (not de-identified)")
    return 0
