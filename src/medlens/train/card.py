"""The training card: everything needed to trust, compare and reproduce a trained model.

``training_card.json`` (machine-readable) and ``README.md`` (a Hugging Face model card) sit in
the output folder beside the weights: base model or init config, data (benchmarks, splits,
revisions, rows excluded for leakage and why), recipe, prompt template versions,
hyperparameters, seed, the medlens version and git commit, wall time per session, the loss /
reward history, and, once ``medlens train`` (or ``add_evaluation``) has run ``medlens eval``
on the result, the evaluation tables of the final checkpoint.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CARD_FILE = "training_card.json"
CARD_VERSION = "1"


def git_commit() -> str | None:
    """The medlens source commit (None outside a git checkout, e.g. an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def write_card(
    folder: Path,
    *,
    method: str,
    base: str,
    spec: Mapping[str, Any],
    data: Mapping[str, Any],
    hyper: Mapping[str, Any],
    parameters: tuple[int, int],
    steps: int,
    sessions: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, Any]],
    commit: str | None = None,
) -> dict[str, Any]:
    """Write ``training_card.json`` and ``README.md``; returns the card."""
    import medlens

    versions = {"python": platform.python_version(), "medlens": medlens.__version__}
    for module in ("torch", "transformers", "trl", "peft"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    card = {
        "card_version": CARD_VERSION,
        "method": method,
        "base": base,
        "spec": dict(spec),
        "data": dict(data),
        "hyperparameters": dict(hyper),
        "seed": hyper.get("seed"),
        "parameters": {"total": parameters[0], "trainable": parameters[1]},
        "steps": steps,
        "sessions": list(sessions),
        "wall_time_s": round(sum(float(s.get("train_s", 0.0)) for s in sessions), 1),
        "medlens_commit": commit or git_commit(),
        "versions": versions,
        "history": [dict(h) for h in history],
        "evaluation": {},
    }
    save_card(folder, card)
    return card


def load_card(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CARD_FILE
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def save_card(folder: str | Path, card: Mapping[str, Any]) -> None:
    folder = Path(folder)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=1, default=str), encoding="utf-8")
    (folder / "README.md").write_text(render_markdown(card), encoding="utf-8")


def add_evaluation(folder: str | Path, name: str, results: Mapping[str, Any]) -> dict[str, Any]:
    """Record ``medlens eval`` results (headline numbers per run) under ``name``."""
    card = load_card(folder)
    card.setdefault("evaluation", {})[name] = dict(results)
    save_card(folder, card)
    return card


def render_markdown(card: Mapping[str, Any]) -> str:
    """A Hugging Face model card (YAML front matter, then prose and tables)."""
    data = card.get("data", {})
    hyper = card.get("hyperparameters", {})
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags: [medlens, medical, vqa, trl]",
        "---",
        f"# {card.get('name') or 'medlens-trained model'}",
        "",
        str(card.get("label") or ""),
        "",
        (
            f"Trained by `medlens train {card.get('method')}` from `{card.get('base')}` "
            f"({card['parameters']['total']:,} parameters, {card['parameters']['trainable']:,} "
            f"trained), {card.get('steps')} steps in {card.get('wall_time_s')} s, seed "
            f"{card.get('seed')}, medlens commit `{card.get('medlens_commit')}`."
        ),
        "",
        "## Data",
        "",
        "| benchmark | split | revision | rows | excluded |",
        "|---|---|---|---|---|",
    ]
    for source in data.get("sources", []):
        excluded = ", ".join(f"{k} {v}" for k, v in source.get("excluded", {}).items()) or "none"
        lines.append(
            f"| {source['benchmark']} | {source['split']} | {source.get('revision') or 'local'}"
            f" | {source['rows']}{_balanced(source)} | {excluded} |"
        )
    lines += [
        "",
        (
            f"Recipes: {', '.join(data.get('recipes', []))}; prompt templates: "
            f"{', '.join(data.get('task_versions', []))}."
        ),
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(hyper, indent=1, default=str),
        "```",
    ]
    for name, results in card.get("evaluation", {}).items():
        lines += ["", f"## Evaluation: {name}", "", "```json"]
        lines += [json.dumps(results, indent=1, default=str), "```"]
    return "\n".join(lines) + "\n"


def _balanced(source: Mapping[str, Any]) -> str:
    added = int(source.get("balanced") or 0)
    return f" (+{added} copies by --balance-closed)" if added else ""
