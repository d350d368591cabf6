"""A user-editable de-identification recipe: header actions by keyword or tag pattern, and
fixed pixel regions per device, as pydicom/deid recipes (``deid.dicom``) do.

A recipe is a TOML file::

    # Header actions override DICOM PS3.15 Table E.1-1 for the elements they match.
    # Actions: remove, blank, dummy, clean (scrub free text), keep, uid (remap).
    [header]
    "PatientComments" = "remove"
    "*Description" = "clean"          # keyword glob
    "(0009,xx10)" = "keep"            # tag pattern, x = any hex digit

    # Regions blacked out on every image of one device, whatever OCR reads there: the
    # places a scanner writes its banner. Manufacturer and model are case-insensitive globs;
    # rows/columns, when given, must match the image.
    [[pixels]]
    name = "acme-us-banner"
    manufacturer = "ACME*"
    model = "Sono 5*"
    columns = 1024
    boxes = [[0, 0, 1024, 60]]        # x0, y0, x1, y1 in pixels, end-exclusive

Header rules are tried in file order; the first that matches decides. A recipe cannot keep
PatientName unchanged (the output is refused, as without a recipe).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomllib

from medlens.errors import ConfigError

RecipeAction = Literal["X", "Z", "D", "C", "K", "U"]

ACTIONS: dict[str, RecipeAction] = {
    "remove": "X",
    "blank": "Z",
    "dummy": "D",
    "clean": "C",
    "keep": "K",
    "uid": "U",
}
"""Recipe words → PS3.15 Table E.1-1 action codes."""

_TAG = re.compile(r"^\(?([0-9A-FX]{4}),?([0-9A-FX]{4})\)?$", re.IGNORECASE)


@dataclass(frozen=True)
class HeaderRule:
    pattern: str
    action: RecipeAction

    def matches(self, tag: int, keyword: str) -> bool:
        found = _TAG.match(self.pattern.replace(" ", ""))
        if found:
            hex_tag = f"{tag >> 16:04X}{tag & 0xFFFF:04X}"
            wanted = (found.group(1) + found.group(2)).upper()
            return all(w in ("X", h) for w, h in zip(wanted, hex_tag))
        return bool(keyword) and fnmatch.fnmatchcase(keyword, self.pattern)


@dataclass(frozen=True)
class PixelRule:
    name: str
    boxes: tuple[tuple[int, int, int, int], ...]
    manufacturer: str = "*"
    model: str = "*"
    rows: int | None = None
    columns: int | None = None

    def matches(self, manufacturer: str, model: str, rows: int, columns: int) -> bool:
        return (
            fnmatch.fnmatch(manufacturer.lower(), self.manufacturer.lower())
            and fnmatch.fnmatch(model.lower(), self.model.lower())
            and self.rows in (None, rows)
            and self.columns in (None, columns)
        )


@dataclass(frozen=True)
class Recipe:
    """What a recipe file says; empty by default."""

    header: tuple[HeaderRule, ...] = ()
    pixels: tuple[PixelRule, ...] = ()
    source: str = ""

    def header_action(self, tag: int, keyword: str) -> RecipeAction | None:
        """The recipe's action for one element, or None to follow the profile."""
        for rule in self.header:
            if rule.matches(tag, keyword):
                return rule.action
        return None

    def pixel_boxes(
        self, ds: Any, rows: int, columns: int
    ) -> list[tuple[str, tuple[int, int, int, int]]]:
        """(rule name, box) of every pixel rule that matches the device of ``ds``."""
        manufacturer = str(getattr(ds, "Manufacturer", "") or "") if ds is not None else ""
        model = str(getattr(ds, "ManufacturerModelName", "") or "") if ds is not None else ""
        return [
            (rule.name, box)
            for rule in self.pixels
            if rule.matches(manufacturer, model, rows, columns)
            for box in rule.boxes
        ]


def _box(value: Any, where: str) -> tuple[int, int, int, int]:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value)):
        raise ConfigError(f"{where}: a box is [x0, y0, x1, y1] in whole pixels, not {value!r}.")
    x0, y0, x1, y1 = value
    if x1 <= x0 or y1 <= y0 or min(value) < 0:
        raise ConfigError(f"{where}: box {value} is empty or negative (x1 > x0, y1 > y0 >= 0).")
    return x0, y0, x1, y1


def parse_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """A ``Recipe`` from parsed TOML, with one ``ConfigError`` naming what is wrong."""
    unknown = set(data) - {"header", "pixels"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {sorted(unknown)}; use [header], [[pixels]]."
        )
    header = []
    for pattern, word in dict(data.get("header", {})).items():
        action = ACTIONS.get(str(word).lower())
        if action is None:
            raise ConfigError(
                f"{source}: header action {word!r} for {pattern!r} is not one of "
                f"{', '.join(ACTIONS)}."
            )
        header.append(HeaderRule(str(pattern), action))
    pixels = []
    for index, rule in enumerate(data.get("pixels", [])):
        where = f"{source} [[pixels]] #{index + 1}"
        if not isinstance(rule, dict) or not rule.get("boxes"):
            raise ConfigError(f"{where}: needs boxes = [[x0, y0, x1, y1], ...].")
        extra = set(rule) - {"name", "manufacturer", "model", "rows", "columns", "boxes"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}.")
        pixels.append(
            PixelRule(
                name=str(rule.get("name", f"rule-{index + 1}")),
                boxes=tuple(_box(b, where) for b in rule["boxes"]),
                manufacturer=str(rule.get("manufacturer", "*")),
                model=str(rule.get("model", "*")),
                rows=rule.get("rows"),
                columns=rule.get("columns"),
            )
        )
    return Recipe(tuple(header), tuple(pixels), source)


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file (TOML, see the module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"Recipe file {path} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Recipe file {path} is not valid TOML: {exc}.") from exc
    return parse_recipe(data, str(path))
