"""``--balance-closed``: a closed question asked of many images shows each answer about
equally often, so the words alone no longer give the answer away."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medlens.train.data import BALANCE_MAX_COPIES, DataSpec, balance_closed, build_train_data


def closed(question: str, answer: str, n: int) -> dict[str, Any]:
    return {"kind": "closed", "question": question, "answers": [answer], "id": f"{answer}{n}"}


def shown(rows: list[dict[str, Any]], question: str) -> Counter[str]:
    return Counter(r["answers"][0].lower() for r in rows if r["question"] == question)


def test_rarer_answers_are_copied_up_to_the_commonest() -> None:
    liver = "Does the picture contain liver?"
    rows = [closed(liver, "Yes", i) for i in range(9)] + [closed(liver, "No", i) for i in range(3)]
    extra = balance_closed(rows)
    assert shown(rows + extra, liver) == {"yes": 9, "no": 9}
    # the three "no" rows are each shown three times, none more often than another
    assert Counter(r["id"] for r in extra) == {"No0": 2, "No1": 2, "No2": 2}
    assert extra[0] is not rows[9] and extra[0] == rows[9]


def test_a_single_rare_answer_is_not_memorised_many_times_over() -> None:
    abnormal = "Are there abnormalities in this image?"
    rows = [closed(abnormal, "yes", i) for i in range(59)] + [closed(abnormal, "no", 0)]
    extra = balance_closed(rows)
    assert shown(rows + extra, abnormal) == {"yes": 59, "no": BALANCE_MAX_COPIES}


def test_open_rows_and_one_answer_questions_are_left_alone() -> None:
    rows = [closed("Is this a CT?", "yes", i) for i in range(5)]
    rows += [{"kind": "open", "question": "Which organ?", "answers": [a], "id": a}
             for a in ("liver", "liver", "lung")]  # fmt: skip
    assert balance_closed(rows) == []
    # question text is compared as eval's leakage check compares it (case, punctuation)
    same = [closed("Is this a CT?", "yes", 0), closed("is this a ct", "no", 0),
            closed("IS THIS A CT ?", "yes", 1)]  # fmt: skip
    assert [r["answers"] for r in balance_closed(same)] == [["no"]]


def test_the_card_records_the_copies(tmp_path: Path) -> None:
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(tmp_path / "a.png")
    rows = [{"question": "Is it bright?", "image": "a.png", "answer": a}
            for a in ("yes", "yes", "yes", "no")]  # fmt: skip
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = build_train_data(DataSpec((str(path),), balance_closed=True, view_size=112))
    assert len(data) == 6
    (source,) = data.card()["sources"]
    assert source["rows"] == 4 and source["balanced"] == 2
    plain = build_train_data(DataSpec((str(path),), view_size=112))
    assert len(plain) == 4 and plain.card()["sources"][0]["balanced"] == 0
