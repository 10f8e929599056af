"""Line plots as PNG files with Pillow alone (no plotting library is a dependency).

``panels(path, title, footer, panels)`` draws one panel per entry, stacked; each panel is
``(y label, {series name: (xs, ys)})``, or with a third item ``(low, high)`` fixing its y range. ``footer`` names the machine and the command, so a figure
always says how to make it again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]

Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def _bounds(values: list[float], floor: float | None = None) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
    low, high = min(finite), max(finite)
    if floor is not None:
        low = min(low, floor)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def panels(path: str, title: str, footer: Sequence[str], content: Sequence[tuple], x_label: str, width: int = 900, panel_height: int = 210) -> None:
    from PIL import Image, ImageDraw

    left, right, top, gap, bottom = 80, 250, 50, 40, 30 + 16 * len(footer)
    height = top + len(content) * (panel_height + gap) + bottom
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 10), title, fill="black")
    xs_all = [float(x) for entry in content for xs, _ in entry[1].values() for x in xs]
    x_low, x_high = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    if x_high == x_low:
        x_high = x_low + 1
    for index, (label, series, *fixed) in enumerate(content):
        y0 = top + index * (panel_height + gap)
        y1 = y0 + panel_height
        low, high = fixed[0] if fixed else _bounds([float(y) for _, ys in series.values() for y in ys])

        def at(x: float, y: float) -> tuple[float, float]:
            return (left + (width - left - right) * (x - x_low) / (x_high - x_low), y1 - panel_height * (y - low) / (high - low))

        draw.rectangle([left, y0, width - right, y1], outline="black")
        draw.text((left, y0 - 14), label, fill="black")
        for step in range(5):
            value = low + (high - low) * step / 4
            _, y = at(x_low, value)
            draw.text((left - 52, y - 6), f"{value:8.3g}", fill="black")
        for step in range(5):
            value = x_low + (x_high - x_low) * step / 4
            x, _ = at(value, low)
            draw.text((x - 12, y1 + 4), f"{value:.0f}", fill="black")
        for number, (name, (xs, ys)) in enumerate(series.items()):
            colour = COLOURS[number % len(COLOURS)]
            points = [at(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y))]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
            draw.text((width - right + 12, y0 + 16 * number), name, fill=colour)
    draw.text(((width - right) // 2, height - bottom + 4), x_label, fill="black")
    for number, line in enumerate(footer):
        draw.text((left, height - 16 * len(footer) + 16 * number - 4), line, fill=(90, 90, 90))
    image.save(path)
