"""Notebook widgets of xling_probe (ipywidgets + plotly), importable as xling_probe.widgets."""
