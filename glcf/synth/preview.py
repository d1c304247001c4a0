"""Contact sheet of a MVTec LOCO AD-layout dataset: one row per category, one normal image and one
example per defect type of ``defects_config.json`` with its ground-truth outline.

Works on any LOCO-layout folder (the generator's output or the real dataset): examples are found by
reading the ground-truth PNGs and matching their pixel values against ``defects_config.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["write_contact_sheet"]

logger = logging.getLogger(__name__)

TYPES = ("logical_anomalies", "structural_anomalies")
OUTLINE = {"logical_anomalies": (0, 230, 255), "structural_anomalies": (255, 40, 200)}
SHEET_BG = (24, 24, 28)
TEXT_H = 28


def _examples(folder: Path) -> list[tuple[str, Path, list[Path], str]]:
    """(label, image, mask PNGs, type) for one good image and the first image of each defect."""
    config = json.loads((folder / "defects_config.json").read_text(encoding="utf-8"))
    by_value = {int(d["pixel_value"]): d["defect_name"] for d in config}
    found: dict[str, tuple[Path, list[Path], str]] = {}
    for kind in TYPES:
        for gt in sorted((folder / "ground_truth" / kind).glob("*")):
            if len(found) == len(by_value):
                break
            pngs = sorted(gt.glob("*.png"))
            for png in pngs:
                values = np.unique(np.asarray(Image.open(png)))
                for v in values[values > 0]:
                    name = by_value.get(int(v))
                    if name is not None and name not in found:
                        found[name] = (folder / "test" / kind / f"{gt.name}.png", pngs, kind)
    good = sorted((folder / "test" / "good").glob("*.png")) or sorted((folder / "train" / "good").glob("*.png"))
    rows = [("good", good[0], [], "good")] if good else []
    for d in config:
        if d["defect_name"] in found:
            image, pngs, kind = found[d["defect_name"]]
            rows.append((d["defect_name"], image, pngs, kind))
    return rows


def _tile(image_path: Path, masks: list[Path], kind: str, width: int) -> Image.Image:
    image = Image.open(image_path).convert("RGB")
    height = round(image.height * width / image.width)
    tile = image.resize((width, height), Image.Resampling.LANCZOS)
    if masks:
        union = np.zeros((image.height, image.width), dtype=bool)
        for png in masks:
            union |= np.asarray(Image.open(png)) > 0
        m = Image.fromarray((union * 255).astype(np.uint8), "L").resize((width, height), Image.Resampling.NEAREST)
        edge = Image.fromarray(
            (np.asarray(m.filter(ImageFilter.MaxFilter(3))) > np.asarray(m.filter(ImageFilter.MinFilter(3)))).astype(
                np.uint8
            )
            * 255,
            "L",
        )
        tile.paste(OUTLINE[kind], (0, 0), edge)
    return tile


def write_contact_sheet(
    root: str | Path, categories: Iterable[str] | None = None, path: str | Path | None = None, tile_width: int = 200
) -> Path:
    """Write a PNG contact sheet of a LOCO-layout dataset.

    Args:
        root: dataset root holding one folder per category.
        categories: category folders to show (default: every folder with a ``defects_config.json``).
        path: output PNG (default ``root/preview.png``).
        tile_width: width of one example in pixels.

    Returns:
        The path of the written PNG.

    Raises:
        FileNotFoundError: when a named category has no ``defects_config.json``, or nothing is found.
    """
    root = Path(root)
    names = (
        list(categories)
        if categories is not None
        else sorted(p.name for p in root.iterdir() if (p / "defects_config.json").is_file())
    )
    rows = []
    for name in names:
        folder = root / name
        if not (folder / "defects_config.json").is_file():
            msg = f"{folder}: no defects_config.json; not a MVTec LOCO AD category folder"
            raise FileNotFoundError(msg)
        rows.append((name, _examples(folder)))
    if not rows or not any(examples for _, examples in rows):
        msg = f"{root}: no images found for a contact sheet"
        raise FileNotFoundError(msg)
    font = ImageFont.load_default(size=12)
    tiles = [[(label, kind, _tile(img, masks, kind, tile_width)) for label, img, masks, kind in ex] for _, ex in rows]
    tile_h = max(t.height for row in tiles for _, _, t in row)
    cols = max(len(row) for row in tiles)
    pad = 6
    sheet = Image.new("RGB", (pad + cols * (tile_width + pad), pad + len(rows) * (tile_h + TEXT_H + pad)), SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    for r, ((name, _), row) in enumerate(zip(rows, tiles, strict=True)):
        y = pad + r * (tile_h + TEXT_H + pad)
        for c, (label, kind, tile) in enumerate(row):
            x = pad + c * (tile_width + pad)
            sheet.paste(tile, (x, y))
            first = name if c == 0 else {"logical_anomalies": "logical", "structural_anomalies": "structural"}[kind]
            colour = OUTLINE.get(kind, (235, 235, 235))
            draw.text((x + 2, y + tile_h + 1), first, fill=colour, font=font)
            draw.text((x + 2, y + tile_h + 14), label, fill=(235, 235, 235), font=font)
    out = Path(path) if path is not None else root / "preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    logger.info("contact sheet: %s", out)
    return out
