"""Shared pieces of the widgets: in-place figure refresh, update counting and the export bar.

Every explorer builds its figures with the pure builders of :mod:`xling_probe.plots` and copies the
result into a long-lived :class:`LiveFigureWidget` (a plotly FigureWidget) with :func:`refresh`, so
a slider move changes trace and layout properties inside one ``batch_update`` (one message to the
browser) instead of re-creating the widget.

Why a FigureWidget subclass (both measured / seen in a browser, see ``tests/test_widgets_base.py``):

- **reload-safe state.** plotly's FigureWidget syncs its figure to the front end as the traits
  ``_widget_data`` / ``_widget_layout`` only when it is built or displayed on its own; later edits
  go as restyle/relayout messages and leave those traits stale. A FigureWidget inside a VBox is
  never displayed on its own, so after a page reload (or in a second tab) the front end rebuilt it
  from the state of its construction: an empty grid, and the next slider move failed with
  ``trace index 0 is not a number or is out of bounds``. :meth:`LiveFigureWidget.get_state` puts
  the figure as it is now into the state the front end asks for.
- **binary arrays.** plotly sends only 1-D numeric numpy arrays as binary buffers; a 2-D ``z``
  went as nested JSON lists (402 x 402: 1.1 MB of JSON, ~80 ms to encode, and NaN is not JSON).
  :func:`to_js` sends every float array of 2 or more dimensions as rows of float32 buffers
  (plotly.js takes a list of typed arrays as a 2-D array; NaN stays a gap), and int64 as int32.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.basedatatypes import Undefined
from traitlets import Dict, List

from xling_probe.errors import XlingProbeError
from xling_probe.plots import save_figure
from xling_probe.plots.style import TEMPLATE, register

EXPORT_FORMATS = ("png", "svg", "pdf", "csv")


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and +-inf replaced by None (plotly draws None as a gap, as it does NaN).

    A FigureWidget sends its data to the browser as JSON, which has no NaN: without this, every
    heatmap with an empty diagonal makes jupyter_client warn and, in future versions, fail.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.float32 and obj.ndim >= 2:  # short JSON numbers, not float32 noise (0.6119999885...)
            return nan_to_none(obj, significant=7)
        if obj.dtype.kind == "f" and obj.ndim >= 2 and not np.isfinite(obj).all():
            return nan_to_none(obj)
        if obj.dtype.kind == "f" and not np.isfinite(obj).all():
            return json_safe(obj.tolist())
        if obj.dtype.kind == "O":
            return json_safe(obj.tolist())
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(json_safe(x) for x in obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    return obj


def nan_to_none(z: np.ndarray, decimals: int | None = None, *, significant: int | None = None) -> list:
    """A float array as nested lists with None for NaN/inf (vectorised: a 402 x 402 heatmap takes
    milliseconds, where a per-element walk takes seconds). ``decimals`` rounds to decimal places,
    ``significant`` to significant digits (float32 holds about 7), so the JSON holds ``0.612``
    rather than ``0.6119999885559082``."""
    z = np.asarray(z, dtype=np.float64)
    finite = np.isfinite(z)
    if decimals is not None:
        z = np.round(z, decimals)
    if significant is not None:
        mag = np.floor(np.log10(np.abs(np.where(finite & (z != 0), z, 1.0))))
        scale = 10.0 ** (significant - 1 - mag)
        z = np.where(finite, np.round(z * scale) / scale, z)
    out = z.astype(object)
    out[~finite] = None
    return out.tolist()


_INT32 = np.iinfo(np.int32)


def to_js(value: Any, _widget: Any = None) -> Any:
    """The kernel -> browser serialiser of :class:`LiveFigureWidget` (plotly's, plus binary N-D arrays).

    Numeric numpy arrays become ``{"buffer": memoryview, "dtype", "shape"}``, which ipywidgets sends
    as binary buffers and plotly's front end turns into typed arrays: 1-D as they are (float16 as
    float32, int64 as int32 when the values fit, else a list), float arrays of 2+ dimensions as a
    list of float32 rows (a 2-D ``z``: plotly.js reads a list of typed arrays as rows). Other arrays
    and NaN/inf Python floats become JSON (None for NaN, a gap in plotly).
    """
    if isinstance(value, dict):
        return {k: to_js(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_js(v) for v in value]
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind == "f" and value.ndim >= 2:
            rows = np.ascontiguousarray(value, dtype=np.float32)
            return [to_js(r) for r in rows]
        if value.ndim == 1 and kind in "fiu":
            if value.dtype.itemsize == 8 and kind in "iu":
                if value.size and (value.min() < _INT32.min or value.max() > _INT32.max):
                    return value.tolist()
                value = value.astype(np.int32)
            elif kind == "f" and value.dtype.itemsize < 4:
                value = value.astype(np.float32)
            value = np.ascontiguousarray(value)
            return {"buffer": memoryview(value), "dtype": str(value.dtype), "shape": value.shape}
        return json_safe(value.tolist()) if kind in "fO" else value.tolist()
    if value is Undefined:
        return "_undefined_"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _from_js(value: Any, _widget: Any = None) -> Any:
    """The browser -> kernel deserialiser (plotly's: ``"_undefined_"`` back to Undefined)."""
    if isinstance(value, dict):
        return {k: _from_js(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_from_js(v) for v in value]
    return Undefined if value == "_undefined_" else value


_SER = {"to_json": to_js, "from_json": _from_js}


class LiveFigureWidget(go.FigureWidget):
    """A FigureWidget whose synced state is always the figure as it is now, with binary arrays.

    - :meth:`get_state` (what the front end receives when it (re)creates the model: page reload,
      a second tab, a new view) holds the current traces and layout, not those of construction;
    - every message (``_py2js_*``) and the state are serialised with :func:`to_js`: a 2-D ``z``
      goes as float32 binary rows, not as JSON lists.
    """

    _widget_layout = Dict().tag(sync=True, **_SER)
    _widget_data = List().tag(sync=True, **_SER)
    _py2js_addTraces = Dict(allow_none=True).tag(sync=True, **_SER)
    _py2js_restyle = Dict(allow_none=True).tag(sync=True, **_SER)
    _py2js_relayout = Dict(allow_none=True).tag(sync=True, **_SER)
    _py2js_update = Dict(allow_none=True).tag(sync=True, **_SER)
    _py2js_animate = Dict(allow_none=True).tag(sync=True, **_SER)

    #: layout properties re-applied after every refresh (teaching mode: bigger fonts); None = as built
    presentation: dict | None = None

    def present(self, layout: dict | None) -> None:
        """Keep ``layout`` (e.g. ``{"font": {"size": 18}}``) on top of every later refresh; None = as built."""
        self.presentation = layout
        if layout:
            self.layout.update(layout)

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict:
        state = super().get_state(key=key, drop_defaults=drop_defaults)
        data, layout = getattr(self, "_data", None), getattr(self, "_layout_obj", None)
        if data is not None and (key is None or "_widget_data" in state):  # None: the widget is being built
            state["_widget_data"] = to_js(data)
        if layout is not None and (key is None or "_widget_layout" in state):
            state["_widget_layout"] = to_js(layout._props)
        return state


def figure_widget(fig: go.Figure | None = None, *, height: int | None = None) -> LiveFigureWidget:
    """A :class:`LiveFigureWidget` holding a copy of ``fig`` (empty when None); NaN/inf are sent as gaps."""
    fw = LiveFigureWidget(fig if fig is not None else go.Figure())
    if height is not None:
        fw.layout.height = height
    return fw


def _same_shape(fw: go.FigureWidget, fig: go.Figure) -> bool:
    return len(fw.data) == len(fig.data) and all(a.type == b.type for a, b in zip(fw.data, fig.data))


def refresh(fw: go.FigureWidget, fig: go.Figure, *, keep_height: bool = True) -> None:
    """Make ``fw`` show ``fig``, in place.

    When the traces have the same number and types, every trace and the layout are updated inside
    one ``batch_update``; otherwise the traces are replaced (plotly cannot add traces inside a
    batch) and the layout updated. Properties absent from ``fig`` are reset so nothing stale stays.
    """
    height = fw.layout.height if keep_height else None
    if _same_shape(fw, fig):
        with fw.batch_update():
            for old, new in zip(fw.data, fig.data):
                spec = new.to_plotly_json()
                spec.pop("type", None)
                stale = {k: None for k in old.to_plotly_json() if k not in spec and k not in ("type", "uid")}
                old.update(stale)
                old.update(spec, overwrite=True)
            _set_layout(fw, fig, height)
    else:
        with fw.batch_update():
            fw.data = ()
        fw.add_traces(list(fig.data))
        with fw.batch_update():
            _set_layout(fw, fig, height)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_layout(fw: go.FigureWidget, fig: go.Figure, height: Any) -> None:
    spec = fig.layout.to_plotly_json()
    extra = getattr(fw, "presentation", None)
    if extra:  # merged before the update: inside a batch, a reset of "font" would win over "font.size"
        spec = _merge(spec, extra)
    stale = {k: None for k in fw.layout.to_plotly_json() if k not in spec and k != "template"}
    fw.layout.update(stale)
    fw.layout.update(spec, overwrite=True)
    # Array properties cannot be reset with None: clear notes, lines and images the new figure lacks,
    # or an explanation text would stay on top of the next real figure.
    cleared = {k: [] for k in ("annotations", "shapes", "images") if getattr(fw.layout, k) and not spec.get(k)}
    if cleared:
        fw.layout.update(cleared, overwrite=True)
    if height is not None:
        fw.layout.height = height


class UpdateLog:
    """Counts figure refreshes by name, so tests can check that one control change = one update."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def bump(self, name: str) -> None:
        self.counts[name] += 1

    def __getitem__(self, name: str) -> int:
        return self.counts[name]


class WidgetLog(UpdateLog, logging.Logger):
    """The explorer's ``.log``: counts figure refreshes (:class:`UpdateLog`) and is also a
    :class:`logging.Logger`, because ipywidgets reports exceptions raised in callbacks through
    the widget's ``log`` trait, which only accepts a Logger."""

    def __init__(self, name: str = "xling_probe.widgets") -> None:
        logging.Logger.__init__(self, name)
        UpdateLog.__init__(self)
        self.parent = logging.getLogger("xling_probe.widgets")


def message_figure(text: str, *, title: str = "", height: int = 450, width: int = 700) -> go.Figure:
    """An empty figure whose only content is ``text`` in the middle (why a view is unavailable)."""
    register()
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#555555"))
    fig.update_layout(template=TEMPLATE, title=title, width=width, height=height,
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def figure_table(fig: Any) -> pd.DataFrame:
    """The data behind a figure as one tidy table: per trace its name and type, then ``x``, ``y`` (and ``z`` of a
    heatmap, one row per cell, with its row and column labels). What the CSV download of the export bar holds."""
    rows: list[pd.DataFrame] = []
    for k, tr in enumerate(go.Figure(fig).data):
        name = tr.name if getattr(tr, "name", None) is not None else f"trace {k}"
        z = getattr(tr, "z", None)
        if z is not None:
            z = np.asarray([[np.nan if v is None else v for v in row] for row in z], dtype=float)
            ys = list(tr.y) if tr.y is not None else list(range(z.shape[0]))
            xs = list(tr.x) if tr.x is not None else list(range(z.shape[1]))
            ii, jj = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
            rows.append(pd.DataFrame({"trace": name, "type": tr.type, "y": np.asarray(ys, dtype=object)[ii.ravel()],
                                      "x": np.asarray(xs, dtype=object)[jj.ravel()], "z": z.ravel()}))
        elif getattr(tr, "y", None) is not None or getattr(tr, "x", None) is not None:
            y = list(tr.y) if tr.y is not None else []
            x = list(tr.x) if tr.x is not None else list(range(len(y)))
            n = max(len(x), len(y))
            rows.append(pd.DataFrame({"trace": name, "type": tr.type, "x": x + [None] * (n - len(x)),
                                      "y": y + [None] * (n - len(y))}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["trace", "type", "x", "y"])


MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "csv": "text/csv"}


def download_link(path: Path, label: str | None = None) -> str:
    """An HTML link that makes the browser download ``path``'s bytes (a data URI: it works however the kernel's
    files are served, also when the kernel runs on another machine)."""
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    mime = MIME.get(Path(path).suffix.lstrip(".").lower(), "application/octet-stream")
    name = _escape(Path(path).name)
    return (f"<a download=\"{name}\" href=\"data:{mime};base64,{data}\" "
            f"style='margin-right:0.8em' title='download {name}'>⬇ {_escape(label or Path(path).name)}</a>")


class ExportBar(W.HBox):
    """A file-name box, a format picker (PNG/SVG/PDF figures, CSV of the data behind them) and an "Export"
    button.

    ``get_figure`` returns the figure to write (a FigureWidget or a Figure); ``get_table`` (optional) the
    DataFrame of its data (default: :func:`figure_table` of the figure). The files are written in the kernel's
    folder; ``status`` shows their absolute paths and a browser download link for each (so the files reach a
    user whose kernel runs elsewhere). Errors (e.g. no Chromium for PNG) are shown, never raised into the UI.
    """

    def __init__(self, get_figure: Callable[[], Any], default_name: str = "figure",
                 formats: Sequence[str] = ("png", "svg", "csv"),
                 get_table: Callable[[], pd.DataFrame] | None = None) -> None:
        self._get_figure = get_figure
        self._get_table = get_table
        self.path = W.Text(value=default_name, description="File", layout=W.Layout(width="260px"))
        self.formats = W.SelectMultiple(options=EXPORT_FORMATS, value=tuple(formats), rows=4,
                                        description="Formats", layout=W.Layout(width="170px"))
        self.button = W.Button(description="Export", icon="download", button_style="",
                               tooltip="write the files and offer them as browser downloads")
        self.status = W.HTML("")
        self.button.on_click(lambda _: self.export())
        super().__init__([self.path, self.formats, self.button, self.status])

    def export(self, path: str | Path | None = None, formats: Sequence[str] | None = None) -> list[Path]:
        """Write the current figure (and/or its data); returns the paths written (empty after an error, shown
        in status)."""
        target = Path(path if path is not None else self.path.value or "figure").expanduser().resolve()
        fmts = tuple(formats if formats is not None else self.formats.value) or ("png",)
        fig = self._get_figure()
        written: list[Path] = []
        try:
            bad = [f for f in fmts if f not in EXPORT_FORMATS]
            if bad:
                raise ValueError(f"unknown export format {', '.join(bad)}; choose from {', '.join(EXPORT_FORMATS)}")
            if "csv" in fmts:
                table = self._get_table() if self._get_table is not None else figure_table(fig)
                csv = target.with_suffix(".csv")
                csv.parent.mkdir(parents=True, exist_ok=True)
                table.to_csv(csv, index=False)
                written.append(csv)
            images = tuple(f for f in fmts if f != "csv")
            if images:
                written += save_figure(go.Figure(fig), target, formats=images)
        except (XlingProbeError, OSError, ValueError) as err:
            done = (" (written before the error: " + ", ".join(_escape(str(p)) for p in written) + ")") if written else ""
            self.status.value = f"<span style='color:#b00'>export failed: {_escape(str(err))}</span>{done}"
            return []
        self.status.value = ("wrote " + ", ".join(_escape(str(p)) for p in written) + "<br>"
                             + "".join(download_link(p) for p in written))
        return written


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
