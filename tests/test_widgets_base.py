"""The shared widget machinery: in-place refresh, JSON-safe data, the export bar (widgets/_base.py)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from xling_probe.widgets._base import ExportBar, UpdateLog, figure_widget, json_safe, refresh


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
    assert fw.data[0].z == ([5.0, None], [7.0, 8.0])
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
