"""Writing a report folder: CSV tables, static figures, ``index.html`` and ``manifest.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ExportError


def write_all(out: Path, stages, handle, acts, sections, tables, figures, notes, *, static: bool, dpi: int,
              settings: dict[str, Any]) -> list[Path]:
    """Write every file of the report into ``out`` and return their paths (manifest last)."""
    from ..plots import find_chromium, save_figures
    from .html import render

    files: list[Path] = []
    (out / "tables").mkdir(exist_ok=True)
    for name, df in tables.items():
        path = out / "tables" / f"{name}.csv"
        df.to_csv(path, index=False)
        files.append(path)

    browser = find_chromium()
    static_files: dict[str, list[str]] = {}
    if not static:
        notes.append("Static figures were not requested (--no-static): only the interactive HTML figures exist.")
        stages.skip("static_export", "not requested (static=False / --no-static)")
    elif browser is None:
        notes.append("Static figures (PNG, SVG) were not written: no Chrome/Chromium was found. Install one "
                     "(Debian/Ubuntu: apt-get install chromium fonts-noto-core fonts-noto-cjk; conda: conda install "
                     "-c conda-forge chromium) and rerun; the interactive figures below are complete.")
        stages.skip("static_export", "no Chrome/Chromium found")
    else:
        (out / "figures").mkdir(exist_ok=True)
        try:
            written = stages.run("static_export", save_figures,
                                 [(fig, out / "figures" / key) for key, fig in figures.items()],
                                 formats=("png", "svg"), dpi=dpi)
        except ExportError as exc:
            notes.append(f"Some static figures were not written: {exc}")
            written = sorted(p for p in (out / "figures").iterdir() if p.suffix in (".png", ".svg"))
        for p in written:
            static_files.setdefault(p.stem, []).append(f"figures/{p.name}")
        files += written
    for s in sections:
        for key, _ in s.figures:
            s.links = static_files.get(key, []) + s.links

    kind = f"{handle.stack} stack of an encoder-decoder model" if handle.stack else handle.kind
    intro = [("model", f"{handle.name} ({kind}, {handle.n_blocks} blocks, width {handle.d_model})"),
             ("languages", ", ".join(acts.languages)), ("sentences", str(acts.n_sentences)),
             ("layers", f"{acts.layers[0]}–{acts.layers[-1]} (0 = embeddings, l = output of block l-1)"),
             ("reproduce", "manifest.json lists every setting and library version")]
    page = stages.run("write", render, "xling-probe report", intro, sections, notes)
    (out / "index.html").write_text(page, encoding="utf-8")
    files.append(out / "index.html")
    manifest = {"settings": settings, "versions": versions(), "chromium": browser,
                "timings_s": stages.timings, "stages": stages.record(), "notes": notes,
                "sections": [{"key": s.key, "title": s.title, "figures": [k for k, _ in s.figures], "files": s.links,
                              "notes": s.notes, "finding": s.finding} for s in sections],
                "files": sorted(str(p.relative_to(out)) for p in files) + ["manifest.json"],
                "activations": {k: v for k, v in acts.meta.items() if isinstance(v, (str, int, float, bool))}}
    stages.bar.close()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    files.append(out / "manifest.json")
    return files


def versions() -> dict[str, str]:
    """Versions of the libraries that produce the numbers and the figures."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("xling-probe", "torch", "transformers", "numpy", "scikit-learn", "plotly", "kaleido"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
