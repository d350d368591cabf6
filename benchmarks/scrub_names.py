"""Names in free text: clinical text taken for a name, and generated names still caught.

    python benchmarks/scrub_names.py [--patients 300] [--seed 0] [--show 20]

**False positives** on text that names nobody, all from ../shared/data: every distinct English
SLAKE question and answer (train, validation, test), the SLAKE grounding prompt for every
``detection.json`` label ("Locate the Left Kidney in this image. ..."), SLAKE's English
knowledge-graph triples, and every VQA-RAD question and answer (OSF release and MEVF split).
A text counts once however often it occurs; each NAME span is listed with its count.

**Recall** on the generator's patients (``medlens.testing.phi``, Faker names in nine locales):
the name as a device screen shows it (the four spellings of ``PHI.screen_lines``), the name in
an unlabelled sentence (no title, no "Patient:"), and the NAME parts of generated reports. A
name counts as caught when none of its parts of two letters or more survives scrubbing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def clinical_texts() -> dict[str, list[str]]:
    """Distinct texts per source; empty sources where ../shared/data lacks them."""
    out: dict[str, set[str]] = {"slake-qa": set(), "slake-grounding": set(), "slake-kg": set()}
    out["vqa-rad-qa"] = set()
    slake = DATA / "slake" / "Slake1.0"
    if slake.is_dir():
        from medlens.bench.benchmarks.slake import GROUNDING_PROMPT, read_boxes

        for split in ("train", "validate", "test"):
            for row in json.loads((slake / f"{split}.json").read_text()):
                if row.get("q_lang") == "en":
                    out["slake-qa"] |= {str(row["question"]), str(row["answer"])}
        for folder in sorted((slake / "imgs").iterdir()):
            for box in read_boxes(folder):
                out["slake-grounding"].add(GROUNDING_PROMPT.format(label=box["label"]))
        for name in ("en_organ.csv", "en_disease.csv", "en_organ_rel.csv"):
            for line in (slake / "KG" / name).read_text().splitlines()[1:]:
                out["slake-kg"] |= {part for part in line.split("#") if part.strip()}
    rad = DATA / "vqa-rad"
    files = [rad / "VQA_RAD Dataset Public.json", *sorted((rad / "data_RAD").glob("*set.json"))]
    for path in files:
        if path.is_file():
            for row in json.loads(path.read_text()):
                out["vqa-rad-qa"] |= {str(row["question"]), str(row["answer"])}
    return {k: sorted(v) for k, v in out.items()}


def name_cases(patients: int, seed: int) -> dict[str, list[tuple[str, list[str]]]]:
    """(text, name parts that must go) per context, for ``patients`` generated patients."""
    from medlens.testing.phi import make_phi, synthetic_report

    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, list[str]]]] = {"screen": [], "sentence": [], "report": []}
    for _ in range(patients):
        phi = make_phi(rng)
        parts = [phi.given, phi.family]
        spellings = (
            f"{phi.family.upper()}^{phi.given.upper()}",
            f"{phi.family}, {phi.given}",
            f"{phi.given} {phi.family}",
            f"{phi.family.upper()} {phi.given.upper()}",
        )
        out["screen"] += [(s, parts) for s in spellings]
        out["sentence"].append(
            (f"Compared with the study of {phi.given} {phi.family} from last year.", parts)
        )
        report = synthetic_report(phi, rng)
        names = [value for kind, value in report.phi if kind == "NAME"]
        if names:
            out["report"].append((report.text, names))
    return out


def caught(scrubbed: str, parts: list[str]) -> bool:
    words = {w.upper() for w in re.findall(r"[^\W\d_][^\W\d_'\-]*", scrubbed)}
    pieces = [p.upper() for part in parts for p in re.split(r"[\s\-']+", part) if len(p) >= 2]
    return not any(p in words for p in pieces)


def main(argv: list[str] | None = None) -> int:
    from medlens.privacy.text import find_phi, scrub_text

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=20, help="most frequent NAME spans shown")
    args = parser.parse_args(argv)

    print("| clinical text (../shared/data) | distinct texts | with a NAME span | rate |")
    print("|---|---|---|---|")
    spans: Counter[str] = Counter()
    total = flagged = 0
    for source, texts in clinical_texts().items():
        hits = 0
        for text in texts:
            names = [text[s.start : s.end] for s in find_phi(text) if s.kind == "NAME"]
            hits += bool(names)
            spans.update(names)
        total += len(texts)
        flagged += hits
        rate = f"{100 * hits / len(texts):.2f}%" if texts else "-"
        print(f"| {source} | {len(texts)} | {hits} | {rate} |")
    print(f"| all | {total} | {flagged} | {100 * flagged / max(1, total):.2f}% |")
    print("NAME spans:", ", ".join(f"{w!r} x{n}" for w, n in spans.most_common(args.show)))

    print(f"\n| generated names ({args.patients} patients, seed {args.seed}) | cases | caught |")
    print("|---|---|---|")
    missed: Counter[str] = Counter()
    for context, cases in name_cases(args.patients, args.seed).items():
        hit = 0
        for text, parts in cases:
            ok = caught(scrub_text(text).text, parts)
            hit += ok
            if not ok and context != "report":
                missed[text] += 1
        print(f"| {context} | {len(cases)} | {100 * hit / max(1, len(cases)):.1f}% ({hit}) |")
    print("missed:", "; ".join(list(missed)[: args.show]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
