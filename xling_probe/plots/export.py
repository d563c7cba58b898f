"""Static export of figures (PNG, SVG, PDF) through kaleido 1.x and a local Chrome/Chromium.

Kaleido drives a headless browser; it never downloads one here. The browser is looked up in this
order: ``$XLING_PROBE_CHROMIUM``, ``$BROWSER_PATH`` (kaleido's own variable), ``/usr/bin/chromium``
and then ``chromium``, ``chromium-browser``, ``google-chrome`` ... on ``PATH``. The page kaleido
renders loads plotly.js from the installed plotly package and MathJax is switched off, so export
works with the network off.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ExportError

FORMATS = ("png", "svg", "pdf")
#: plotly sizes are CSS pixels, 96 per inch: a PNG at ``dpi`` is rendered at scale ``dpi / 96``.
CSS_DPI = 96
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = ("static export needs Chrome or Chromium: on Debian/Ubuntu `sudo apt-get install chromium "
                "fonts-noto-core fonts-noto-cjk`, with conda `conda install -c conda-forge chromium`, or point "
                "$XLING_PROBE_CHROMIUM (or $BROWSER_PATH) at a Chrome/Chromium binary")


def find_chromium() -> str | None:
    """Path of a usable Chrome/Chromium executable, or None."""
    for var in ("XLING_PROBE_CHROMIUM", "BROWSER_PATH"):
        path = os.environ.get(var)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _targets(path: str | Path, formats: str | Sequence[str] | None) -> list[tuple[Path, str]]:
    path = Path(path)
    if formats is None:
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ExportError(f"cannot tell the format of {path}: use a .png, .svg or .pdf name, or pass formats=")
        return [(path, fmt)]
    fmts = [formats] if isinstance(formats, str) else list(formats)
    bad = [f for f in fmts if f.lower() not in FORMATS]
    if bad or not fmts:
        raise ExportError(f"unknown export format(s) {bad or fmts}; choose from {', '.join(FORMATS)}")
    stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in FORMATS else path
    return [(stem.with_name(f"{stem.name}.{f.lower()}"), f.lower()) for f in fmts]


def save_figures(items: Iterable[tuple[Any, str | Path]], *, formats: str | Sequence[str] | None = None,
                 dpi: int = 300, timeout: float = 120) -> list[Path]:
    """Write many figures with one browser session (much faster than one launch per file).

    ``items`` are ``(figure, path)``; ``formats`` as in :func:`save_figure`. Returns the written paths.
    """
    import plotly.io as pio

    if dpi <= 0:
        raise ExportError(f"dpi must be positive, got {dpi}")
    specs, written = [], []
    for fig, path in items:
        fig_dict = pio.to_json(fig, validate=True, remove_uids=True)
        layout = fig.layout
        for target, fmt in _targets(path, formats):
            target.parent.mkdir(parents=True, exist_ok=True)
            opts = {"format": fmt, "width": layout.width or 700, "height": layout.height or 450,
                    "scale": dpi / CSS_DPI if fmt == "png" else 1}
            specs.append({"fig": json.loads(fig_dict), "path": str(target), "opts": opts})
            written.append(target)
    if not specs:
        return []
    browser = find_chromium()
    if browser is None:
        raise ExportError(f"no Chrome/Chromium found; {INSTALL_HINT}")
    try:
        import kaleido
        from kaleido.errors import ChromeNotFoundError
    except ImportError:
        raise ExportError("static export needs kaleido >= 1: pip install 'kaleido>=1'") from None
    import plotly

    plotlyjs = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    kopts: dict[str, Any] = {"path": browser, "mathjax": False, "timeout": timeout}
    if plotlyjs.is_file():
        kopts["plotlyjs"] = str(plotlyjs)
    def run(batch):
        kaleido.write_fig_from_object_sync(batch, kopts=kopts, cancel_on_error=True)

    try:
        run(specs)
    except ChromeNotFoundError:
        raise ExportError(f"kaleido could not start the browser at {browser}; {INSTALL_HINT}") from None
    except Exception:  # noqa: BLE001 - kaleido/choreographer raise many types: find which file failed
        failed = []
        for spec in specs:
            try:
                run([spec])
            except Exception as exc:  # noqa: BLE001 - reported below with the file name
                failed.append(f"{spec['path']} ({type(exc).__name__}: {exc})")
        if failed:
            raise ExportError(f"static export failed for {'; '.join(failed)}; browser: {browser}") from None
    missing = [p for p in written if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise ExportError(f"kaleido wrote nothing to {', '.join(map(str, missing))}; browser: {browser}")
    return written


def save_figure(fig: Any, path: str | Path, *, formats: str | Sequence[str] | None = None, dpi: int = 300,
                timeout: float = 120) -> list[Path]:
    """Write ``fig`` as PNG, SVG and/or PDF.

    ``formats=None`` takes the format from the suffix of ``path``; otherwise one file per format
    with that suffix (``save_figure(fig, "out/cka", formats=("png", "svg"))`` -> ``out/cka.png``,
    ``out/cka.svg``). PNGs are rendered at ``dpi`` (the figure's width in CSS pixels / 96 inches
    wide); SVG and PDF are vector. Raises :class:`ExportError` when no Chrome/Chromium is found,
    saying how to install one.
    """
    return save_figures([(fig, path)], formats=formats, dpi=dpi, timeout=timeout)
