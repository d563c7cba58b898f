"""Which packages the wheel and the sdist hold; all other metadata is in pyproject.toml.

Every folder with an ``__init__.py`` under ``xling_probe/`` is a package (new subpackages are picked up
without editing this file), and ``widgets/`` is installed as ``xling_probe.widgets`` (its subfolders
as ``xling_probe.widgets.*``). pyproject.toml cannot express this on its own: its ``packages.find``
only sees folders under their own names, so it would drop ``xling_probe.widgets``.
tests/test_packaging.py checks the list against the file tree; .ci/check-wheel installs the wheel.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
WIDGETS = "xling_probe.widgets"


def packages() -> list[str]:
    """Dotted names of every package to install (the library's subpackages, then the widgets)."""
    core = find_packages(str(ROOT), include=["xling_probe", "xling_probe.*"])
    widgets = [WIDGETS] + [f"{WIDGETS}.{name}" for name in find_packages(str(ROOT / "widgets"))]
    return core + widgets


setup(packages=packages(), package_dir={WIDGETS: "widgets"})
