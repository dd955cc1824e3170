"""X/Y grid pictures with labels, A1111 X/Y/Z style: column labels on top, row labels on the left,
an optional title (the Z value) above; one picture per Z value.

`plan_layout` is the arithmetic (where each cell and label goes) and `render_grid` draws it;
`render_label` draws one label box, so a test can compare a grid's label areas with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
MISSING = (200, 200, 200)
PAD = 4  # pixels around label text


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at `size` px (no font files needed)."""
    return ImageFont.load_default(size=size)


def font_size_for(cell_w: int) -> int:
    return max(10, min(28, cell_w // 12))


def wrap(text: str, width: int, fnt) -> list[str]:
    """Greedy word wrap to `width` pixels; over-long words are broken by characters."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if fnt.getlength(cand) <= width:
                line = cand
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:
                if fnt.getlength(line + ch) > width and line:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def line_height(fnt) -> int:
    top, bottom = fnt.getbbox("Ag")[1::2]
    return bottom - top + 2


def label_height(texts: list[str], width: int, fnt, max_lines: int = 4) -> int:
    lines = max((min(max_lines, len(wrap(t, width - 2 * PAD, fnt))) for t in texts), default=0)
    return lines * line_height(fnt) + 2 * PAD if lines else 0


def render_label(text: str, width: int, height: int, size: int, max_lines: int = 4) -> Image.Image:
    """One label: wrapped, centred, on white; lines past `max_lines` end in an ellipsis."""
    img = Image.new("RGB", (width, height), BACKGROUND)
    fnt = font(size)
    lines = wrap(text, width - 2 * PAD, fnt)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, len(lines[-1]) - 1)] + "…"
    lh = line_height(fnt)
    y = (height - lh * len(lines)) // 2
    draw = ImageDraw.Draw(img)
    for ln in lines:
        x = (width - fnt.getlength(ln)) / 2
        draw.text((x, y), ln, fill=TEXT, font=fnt)
        y += lh
    return img


@dataclass(frozen=True)
class GridLayout:
    cols: int
    rows: int
    cell_w: int
    cell_h: int
    left: int  # width of the row-label column
    top: int  # height of the column-label row
    title_h: int  # height of the title band
    font_size: int

    @property
    def size(self) -> tuple[int, int]:
        return self.left + self.cols * self.cell_w, self.title_h + self.top + self.rows * self.cell_h

    def cell_box(self, x: int, y: int) -> tuple[int, int, int, int]:
        x0, y0 = self.left + x * self.cell_w, self.title_h + self.top + y * self.cell_h
        return x0, y0, x0 + self.cell_w, y0 + self.cell_h

    def col_label_box(self, x: int) -> tuple[int, int, int, int]:
        x0 = self.left + x * self.cell_w
        return x0, self.title_h, x0 + self.cell_w, self.title_h + self.top

    def row_label_box(self, y: int) -> tuple[int, int, int, int]:
        y0 = self.title_h + self.top + y * self.cell_h
        return 0, y0, self.left, y0 + self.cell_h

    def title_box(self) -> tuple[int, int, int, int]:
        return 0, 0, self.size[0], self.title_h


def plan_layout(cols: int, rows: int, cell_w: int, cell_h: int, x_labels: list[str], y_labels: list[str],
                title: str | None = None, font_size: int | None = None) -> GridLayout:
    size = font_size or font_size_for(cell_w)
    fnt = font(size)
    top = label_height(x_labels, cell_w, fnt) if any(x_labels) else 0
    left = 0
    if any(y_labels):
        widest = max(fnt.getlength(t) for t in y_labels) + 2 * PAD
        left = int(min(max(widest, 4 * size), max(cell_w, 10 * size)))
    title_h = 0
    if title:
        title_h = label_height([title], left + cols * cell_w, fnt, max_lines=2)
    return GridLayout(cols, rows, cell_w, cell_h, left, top, title_h, size)


def _box_size(box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def render_grid(cells: list[list[Image.Image | None]], x_labels: list[str], y_labels: list[str],
                title: str | None = None, font_size: int | None = None) -> Image.Image:
    """cells[y][x] -> one labelled picture; every cell is resized to the first cell's size,
    a missing cell (None: generation failed) is a grey box."""
    rows, cols = len(cells), max((len(r) for r in cells), default=0)
    first = next((c for r in cells for c in r if c is not None), None)
    cw, ch = first.size if first is not None else (64, 64)
    lay = plan_layout(cols, rows, cw, ch, x_labels, y_labels, title, font_size)
    canvas = Image.new("RGB", lay.size, BACKGROUND)
    for y, row in enumerate(cells):
        for x in range(cols):
            cell = row[x] if x < len(row) else None
            box = lay.cell_box(x, y)
            if cell is None:
                canvas.paste(Image.new("RGB", (cw, ch), MISSING), box[:2])
                continue
            canvas.paste(cell.convert("RGB").resize((cw, ch)) if cell.size != (cw, ch) else cell.convert("RGB"),
                         box[:2])
    if lay.top:
        for x, text in enumerate(x_labels[:cols]):
            box = lay.col_label_box(x)
            canvas.paste(render_label(text, *_box_size(box), lay.font_size), box[:2])
    if lay.left:
        for y, text in enumerate(y_labels[:rows]):
            box = lay.row_label_box(y)
            canvas.paste(render_label(text, *_box_size(box), lay.font_size), box[:2])
    if lay.title_h:
        box = lay.title_box()
        canvas.paste(render_label(title or "", *_box_size(box), lay.font_size, max_lines=2), box[:2])
    return canvas
