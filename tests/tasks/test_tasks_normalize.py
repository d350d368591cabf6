"""The shared answer normaliser (SQuAD/VQA rules plus number words)."""

from __future__ import annotations

import pytest

from medlens.tasks.normalize import normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  The Left Lung. ", "left lung"),
        ("YES!", "yes"),
        ("an   enlarged\theart", "enlarged heart"),
        ("x-ray", "x ray"),
        ("2.5 cm", "2.5 cm"),
        ("1,000 mL", "1000 ml"),
        ("end of sentence.", "end of sentence"),
        ("two", "2"),
        ("Twenty-one nodules", "21 nodules"),
        ("twenty", "20"),
        ("ninety nine", "99"),
        ("don't know", "dont know"),
        ("None", "none"),
        ("no", "no"),
        ("Ｔ２ weighted", "t2 weighted"),  # full-width characters (NFKC)
        ("", ""),
        ("...", ""),
        ("a", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_normalize_is_idempotent() -> None:
    for text in ["The 2.5 cm Mass, left-sided.", "Thirty-two", "an X-Ray (PA view)"]:
        once = normalize_answer(text)
        assert normalize_answer(once) == once
