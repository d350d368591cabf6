"""Small coloured burned-in PHI: 7-9 px fonts (5-8 px glyphs) in yellow or cyan on drawn
Doppler and pathology backgrounds, where PP-OCR's detector boxes little at its own scale and
the twice-the-scale second look (``medlens.privacy.ocr.small_text_boxes``) has to find them.

    python benchmarks/deid_small_colour.py [--images 6] [--seed 99]

Per background: PHI strings readable to deid_recall's strong attacker before redaction and
still readable after, the area changed away from the strings, CPU seconds per image (one
thread; median / max).

Seed 99, 12 images each (medlens issue 12): pathology 22/22 unreadable; Doppler 39/47. All 8
Doppler misses lay under the colour flow, whose detector map was one faint region 4-15 times
larger than the second look's share of the page (``SMALL_TEXT_SHARE``), or which the colour
page boxed whole (535x471, 688x680 px: dropped later as taller than a line, but it hid the
lines under it from the second look). Detected at twice the scale over the whole image they
are found and read; running the second look on every page with its own map found none more.
With such boxes dropped before the second look and its regions split (thin parts of the map
only, higher levels for a region too large): Doppler 43/47, pathology 22/22.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import deid_recall  # the attacker and the scoring are its own

INKS = ((1.0, 1.0, 0.3), (0.3, 1.0, 1.0))
"""Yellow and cyan, by turns, as the RGB scale of the ink (``burn_text``'s ``color``)."""


def run(kind: str, images: int, seed: int) -> deid_recall.Tally:
    """``images`` of ``kind`` ("doppler" or "pathology"), each with the patient's screen
    lines upright in 7-9 px fonts, redacted with the study's header as context."""
    from medlens.privacy import redact_burned_in_text
    from medlens.privacy.labels import Identifiers
    from medlens.testing.phi import (
        SyntheticImage,
        burn_text,
        doppler,
        make_phi,
        pathology,
        synthetic_dataset,
    )

    background = {"doppler": doppler, "pathology": pathology}[kind]
    tally = deid_recall.Tally(kind=kind)
    for index in range(images):
        rng = np.random.default_rng([seed, index, len(kind)])
        phi = make_phi(rng)
        canvas = background(rng, (768, 1024))
        taken = np.zeros(canvas.shape[:2], bool)
        texts = []
        for k, line in enumerate(phi.screen_lines(rng)):
            ink = INKS[k % len(INKS)]
            burned = burn_text(
                canvas, line, rng, taken=taken, sizes=(7, 10), color=ink, upright=True
            )
            if burned is not None:
                texts.append(burned)
        ds, _ = synthetic_dataset(phi, rng, SyntheticImage(canvas, texts))
        start = time.process_time()
        out, _ = redact_burned_in_text(canvas, identifiers=Identifiers.from_dataset(ds))
        tally.image_seconds.append(time.process_time() - start)
        deid_recall.score_image(canvas, np.asarray(out), texts, tally, kind)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6, help="images per background")
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args(argv)
    deid_recall._warm()
    for kind in ("doppler", "pathology"):
        t = run(kind, args.images, args.seed)
        before, after = t.burned_readable_before, t.burned_readable_after
        print(
            f"{kind}: {args.images} images, {t.burned_total} small PHI strings, readable before "
            f"{before}, after {after} (unreadable {deid_recall._pct(before - after, before)}), "
            f"area changed away from them {100 * np.mean(t.outside_area):.2f}% mean, "
            f"CPU s per image {deid_recall._seconds(t.image_seconds)}"
        )
        for miss in t.misses:
            print(f"  {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
