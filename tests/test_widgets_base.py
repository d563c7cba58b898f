"""The shared widget machinery: in-place refresh, JSON-safe data, binary messages, a state that
survives a page reload, the export bar (widgets/_base.py)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ipywidgets.widgets.widget import _remove_buffers

from xling_probe.widgets._base import ExportBar, UpdateLog, figure_widget, json_safe, refresh, to_js


def wire(value):
    """What the kernel sends for ``value``: (JSON part, binary buffers), as ipywidgets splits it."""
    state, _paths, buffers = _remove_buffers({"v": to_js(value)})
    return state["v"], buffers


def rows_of(sent, buffers):
    """A 2-D array sent as a list of float32 row buffers, back as a numpy array (as the browser reads it)."""
    assert all(set(r) == {"dtype", "shape"} and r["dtype"] == "float32" for r in sent)
    return np.stack([np.frombuffer(b, dtype=np.float32) for b in buffers])


def test_json_safe_replaces_only_non_finite_values():
    z = np.array([[np.nan, 1.5], [np.inf, -2.0]])
    assert json_safe(z) == [[None, 1.5], [None, -2.0]]
    clean = np.arange(4.0)
    assert json_safe(clean) is clean  # finite arrays pass through untouched (sent as binary buffers)
    assert json_safe({"a": (1.0, -math.inf), "b": "x"}) == {"a": (1.0, None), "b": "x"}


def test_refresh_copies_the_new_figure_in_place_and_drops_stale_parts():
    first = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], text=[["a", "b"], ["c", "d"]]), layout={"title": "A"})
    first.add_annotation(text="unavailable", x=0.5, y=0.5, showarrow=False)
    fw = figure_widget(first)
    widget_id = id(fw)
    refresh(fw, go.Figure(go.Heatmap(z=[[5.0, np.nan], [7.0, 8.0]]), layout={"title": "B"}))
    assert id(fw) == widget_id
    np.testing.assert_array_equal(np.asarray(fw.data[0].z, float), [[5.0, np.nan], [7.0, 8.0]])
    state = fw.get_state()  # what a reloaded page receives: the figure as it is now
    (trace,) = state["_widget_data"]
    assert trace["z"] == [[5.0, None], [7.0, 8.0]]  # a list stays JSON, with None (a gap) for NaN
    assert fw.data[0].text is None            # a property the new figure lacks is reset
    assert fw.layout.annotations == ()        # so is an explanation text
    assert fw.layout.title.text == "B"
    refresh(fw, go.Figure([go.Scatter(y=[1, 2]), go.Scatter(y=[3, 4])]))  # trace count and type change
    assert [t.type for t in fw.data] == ["scatter", "scatter"] and fw.data[1].y == (3, 4)


def test_update_log_counts_by_name():
    log = UpdateLog()
    log.bump("heatmap")
    log.bump("heatmap")
    assert log["heatmap"] == 2 and log["curves"] == 0


def test_export_bar_reports_errors_without_raising(tmp_path):
    bar = ExportBar(lambda: go.Figure(go.Scatter(y=[1, 2])), "fig")
    assert bar.export(tmp_path / "fig", formats=("gif",)) == []
    assert "export failed" in bar.status.value and "gif" in bar.status.value
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_export_bar_writes_the_data_behind_the_figure_and_offers_downloads(tmp_path, monkeypatch):
    import base64
    import re

    import pandas as pd

    from xling_probe.widgets._base import figure_table

    z = np.array([[np.nan, 0.25, 0.5], [0.75, np.nan, 1.0]])
    fig = go.Figure([go.Heatmap(z=z, x=["en", "de", "fr"], y=["zh", "ru"], name="cka"),
                     go.Scatter(x=[0, 1, 2], y=[0.1, 0.2, 0.3], name="curve")])
    table = figure_table(fig)
    cells = table[table["trace"] == "cka"]
    assert len(cells) == 6 and cells.set_index(["y", "x"]).loc[("ru", "fr"), "z"] == 1.0
    assert np.isnan(cells.set_index(["y", "x"]).loc[("zh", "en"), "z"])
    assert table[table["trace"] == "curve"]["y"].tolist() == [0.1, 0.2, 0.3]
    monkeypatch.chdir(tmp_path)
    bar = ExportBar(lambda: fig, "sim")
    written = bar.export(formats=("csv",))  # a relative name: written in the kernel's folder, shown absolute
    assert written == [tmp_path / "sim.csv"] and str(tmp_path / "sim.csv") in bar.status.value
    back = pd.read_csv(written[0])
    np.testing.assert_allclose(back["z"].to_numpy(float)[:6], z.ravel(), equal_nan=True)
    link = re.search(r'<a download="sim.csv" href="data:text/csv;base64,([^"]+)"', bar.status.value)
    assert link and base64.b64decode(link.group(1)) == written[0].read_bytes()
    own = ExportBar(lambda: fig, "t", get_table=lambda: pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(own.export(tmp_path / "t", formats=("csv",))[0])["a"].tolist() == [1, 2]


def test_to_js_sends_numeric_arrays_as_binary_rows():
    z = np.array([[np.nan, 0.25], [0.5, 1.0]])
    sent, buffers = wire({"z": [z], "x": np.arange(3), "t": ["a", "b"], "y": [1.0, float("nan")]})
    np.testing.assert_array_equal(rows_of(sent["z"][0], buffers[:2]), z.astype(np.float32))
    assert sent["x"]["dtype"] == "int32" and np.frombuffer(buffers[2], np.int32).tolist() == [0, 1, 2]
    assert sent["t"] == ["a", "b"] and sent["y"] == [1.0, None]
    big = np.array([2**40, 1])
    assert wire(big)[0] == [2**40, 1]  # int64 beyond int32 stays exact (a list)


def test_state_after_in_place_updates_is_the_current_figure():
    """A FigureWidget inside a VBox is never displayed on its own; plotly refreshed its synced state
    only then, so a reloaded page rebuilt the empty figure of construction (the bug this fixes)."""
    fw = figure_widget()
    refresh(fw, go.Figure(go.Heatmap(z=np.arange(6.0).reshape(2, 3)), layout={"title": "first"}))
    with fw.batch_update():
        fw.data[0].z = np.arange(6.0).reshape(2, 3) * 10
        fw.layout.title.text = "now"
    state, paths, buffers = _remove_buffers(fw.get_state())
    (trace,) = state["_widget_data"]
    assert trace["type"] == "heatmap" and trace["uid"] == fw.data[0].uid
    assert state["_widget_layout"]["title"]["text"] == "now"
    z_buffers = [b for p, b in zip(paths, buffers) if p[:3] == ["_widget_data", 0, "z"]]
    np.testing.assert_array_equal(rows_of(trace["z"], z_buffers), np.arange(6.0).reshape(2, 3) * 10)
    assert fw.get_state("_widget_data")["_widget_data"][0]["uid"] == fw.data[0].uid
