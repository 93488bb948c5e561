"""Contact sheets: rows of frames (observed, true future, predicted, ...) side by side in one PNG.

Frames are enlarged by nearest neighbour, so that 64 px frames stay sharp and a person can see each
ball; each row carries its label in a left margin, each frame an optional caption ("+3"), and a
wider gap marks every `group` frames (the boundaries between predicted clips). OpenCV draws the text
and encodes the PNG (imported lazily, as for the other outputs of vgpt-run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgpt.atomic import atomic_file

PAPER = 255  # the sheet's background: white, so dark frames stand out
INK = (0, 0, 0)
GAP = 4  # px between frames
GROUP_GAP = 16  # px between groups of frames
MARGIN = 8  # px around everything


@dataclass(frozen=True)
class SheetRow:
    label: str  # drawn left of the row
    frames: np.ndarray  # uint8 RGB [F, H, W, 3]
    captions: Sequence[str] = ()  # one per frame, drawn in its top-left corner; none if empty
    first_column: int = 0  # leave this many frame slots empty before the first frame


def sheet_scale(height: int) -> int:
    """Enlarge small frames to about 192 px: big enough to see a 4 px ball, small enough that a
    dozen frames fit across a screen."""
    return max(1, 192 // height)


def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    import cv2

    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return w, h + baseline


def _put_text(img: np.ndarray, text: str, x: int, y: int, scale: float, colour, outline: bool = False) -> None:
    """Draw `text` with its top-left corner at (x, y)."""
    import cv2

    thickness = max(1, round(scale * 2))
    _, h = _text_size(text, scale, thickness)
    origin = (x, y + h - max(1, round(scale * 6)))
    if outline:  # light text on a dark outline reads on any frame
        cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _column_x(column: int, cell: int, group: int) -> int:
    """Left edge of a frame slot, counting a wider gap before each new group."""
    groups = column // group if group else 0
    return column * (cell + GAP) + groups * (GROUP_GAP - GAP)


def contact_sheet(rows: Sequence[SheetRow], title: str = "", group: int = 0, scale: int | None = None) -> np.ndarray:
    """The rows as one uint8 RGB image. All frames must share one size; `group` > 0 widens the gap
    after every `group` frame slots."""
    if not rows:
        raise ValueError("contact_sheet: no rows to draw")
    sizes = {tuple(r.frames.shape[1:]) for r in rows}
    if len(sizes) != 1 or any(r.frames.ndim != 4 or r.frames.dtype != np.uint8 for r in rows):
        raise ValueError(f"contact_sheet: rows must be uint8 [F, H, W, 3] of one size, got {sorted(sizes)}")
    for r in rows:
        if r.captions and len(r.captions) != len(r.frames):
            raise ValueError(f"contact_sheet: row {r.label!r} has {len(r.frames)} frames, {len(r.captions)} captions")
    H, W, _ = sizes.pop()
    s = scale or sheet_scale(H)
    cell_h, cell_w = H * s, W * s
    text = max(0.5, cell_h / 320)  # label size grows with the frames
    label_w = max(_text_size(r.label, text, 2)[0] for r in rows) + 2 * MARGIN
    title_h = _text_size(title, text * 1.2, 2)[1] + MARGIN if title else 0
    columns = max(r.first_column + len(r.frames) for r in rows)
    width = MARGIN + label_w + _column_x(columns - 1, cell_w, group) + cell_w + MARGIN
    height = MARGIN + title_h + len(rows) * (cell_h + GAP) - GAP + MARGIN
    sheet = np.full((height, width, 3), PAPER, np.uint8)
    if title:
        _put_text(sheet, title, MARGIN, MARGIN, text * 1.2, INK)
    for k, row in enumerate(rows):
        top = MARGIN + title_h + k * (cell_h + GAP)
        _put_text(sheet, row.label, MARGIN, top + (cell_h - _text_size(row.label, text, 2)[1]) // 2, text, INK)
        for j, frame in enumerate(row.frames):
            left = MARGIN + label_w + _column_x(row.first_column + j, cell_w, group)
            sheet[top : top + cell_h, left : left + cell_w] = np.repeat(np.repeat(frame, s, axis=0), s, axis=1)
            if row.captions:
                _put_text(sheet, row.captions[j], left + 4, top + 4, text * 0.8, (255, 255, 255), outline=True)
    return sheet


def stack_sheets(sheets: Sequence[np.ndarray], gap: int = 2 * GROUP_GAP) -> np.ndarray:
    """Sheets one above the other, padded on the right to the widest, with a rule between them."""
    width = max(s.shape[1] for s in sheets)
    parts = []
    for k, s in enumerate(sheets):
        if k:
            rule = np.full((gap, width, 3), PAPER, np.uint8)
            rule[gap // 2 - 1 : gap // 2 + 1] = 160  # a thin grey line between blocks
            parts.append(rule)
        parts.append(np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=PAPER))
    return np.concatenate(parts)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 RGB image as a PNG, atomically."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as PNG for {path}")
    with atomic_file(path) as f:
        f.write(data.tobytes())
    return Path(path)
