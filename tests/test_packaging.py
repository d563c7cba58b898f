"""The wheel's package list, as setuptools resolves it from setup.py + pyproject.toml, matches the tree.

A subpackage missing from the list installs a wheel that fails at ``import xling_probe`` (issue 11:
``lens``, ``plots`` and ``commands`` were left out). These tests resolve the configuration the way a
build does (no build, no files written) and compare it with the folders on disk; .ci/check-wheel
builds and installs the real wheel.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tree_packages(folder: Path, prefix: str) -> set[str]:
    """Dotted names of ``folder`` and of every folder below it that holds an ``__init__.py``."""
    found = set()
    for init in folder.rglob("__init__.py"):
        rel = init.parent.relative_to(folder)
        found.add(".".join((prefix, *rel.parts)))
    return found


@pytest.fixture(scope="module")
def dist():
    """The setuptools Distribution after reading setup.py and pyproject.toml (what a build would use)."""
    import os

    import setuptools  # noqa: F401  (installs its distutils first)
    from distutils.core import run_setup

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return run_setup(str(ROOT / "setup.py"), script_args=["--name"], stop_after="config")
    finally:
        os.chdir(here)


def test_every_subpackage_is_installed(dist):
    expected = _tree_packages(ROOT / "xling_probe", "xling_probe") | _tree_packages(ROOT / "widgets",
                                                                                     "xling_probe.widgets")
    assert {"xling_probe.lens", "xling_probe.plots", "xling_probe.cli", "xling_probe.data",
            "xling_probe.widgets"} <= expected
    assert set(dist.packages) == expected
    assert len(dist.packages) == len(set(dist.packages))


def test_widgets_folder_is_mapped_to_xling_probe_widgets(dist):
    assert dist.package_dir["xling_probe.widgets"] == "widgets"
    # the library itself is found in place (no mapping, or the identity one)
    assert dist.package_dir.get("xling_probe", "xling_probe") == "xling_probe"


def test_no_source_folder_is_silently_skipped():
    """A folder of .py files without __init__.py would be a namespace package that discovery skips."""
    for top in (ROOT / "xling_probe", ROOT / "widgets"):
        for py in top.rglob("*.py"):
            if "__pycache__" in py.parts:
                continue
            assert (py.parent / "__init__.py").is_file(), f"{py.parent} has .py files but no __init__.py"


def test_bundled_data_files_are_package_data(dist):
    patterns = dist.package_data["xling_probe.data"]
    data = [p for p in (ROOT / "xling_probe" / "data").iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.suffix for p in data} >= {".tsv", ".csv", ".md"}
    for path in data:
        assert any(fnmatch.fnmatch(path.name, pat) for pat in patterns), f"{path.name} is not in the wheel"
