"""A run stored by an earlier medlens still reports byte for byte as it did then.

``fixtures/stored-run/runs.sqlite.gz`` is one evaluation group written before the bench/serve
restructuring (issue 11): a tiny Qwen2.5-VL of random weights on the first 4 VQA-RAD test
questions with a calibration profile, the prior / no-image / random baselines, the ``blank`` and
``no-image`` sanity checks and a ``typos:rate=0.1`` shift (cached generations dropped: a report
never reads them). ``report.json.gz`` and ``report.csv.gz`` are what ``medlens report`` of main
wrote from it just before the restructuring landed (the JSON gained an empty ``published`` list
per run from the model zoo that day, from issue 14 the counts of the sample table, with no
thumbnails since the run predates them, and from issues 15/19 the "lmms-eval SLAKE rule" note,
the prompt preset that made the generations, medlens@1, with its note, and each protocol under
the version that scored the run: ``llava-med@ad758b6`` and its description, not today's
``llava-med``, whose rule has since changed; and since medlens@2 fixed grounding scoring, its
medlens scores under ``medlens@1`` with that version's description, figures unchanged); only
the ``generated`` timestamp may differ.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from medlens.cli.main import main

FIXTURE = Path(__file__).parent / "fixtures" / "stored-run"
MODEL_RUN = "a7df97f77c"
GENERATED = re.compile(r'^  "generated": [0-9.e+-]+,$', re.MULTILINE)


def _unzip(name: str, to: Path) -> Path:
    to.write_bytes(gzip.decompress((FIXTURE / name).read_bytes()))
    return to


def test_stored_run_reports_identically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _unzip("runs.sqlite.gz", tmp_path / "runs.sqlite")
    out = tmp_path / "report"
    code = main(["report", MODEL_RUN, "--store", str(store), "--out", str(out)])
    assert code == 0, capsys.readouterr().err

    written = (out / "report.json").read_bytes().decode("utf-8")
    assert GENERATED.search(written), "the report no longer says when it was generated"
    expected = gzip.decompress((FIXTURE / "report.json.gz").read_bytes()).decode("utf-8")
    assert GENERATED.sub('  "generated": 0,', written, count=1) == expected
    expected_csv = gzip.decompress((FIXTURE / "report.csv.gz").read_bytes())
    assert (out / "report.csv").read_bytes() == expected_csv
