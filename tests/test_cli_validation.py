"""Bad command-line input ends in exit 2 and one line that says what was wrong and what to do.

Every case here used to run silently with a wrong answer or end in a traceback (issue 11): counts
of 0 or below, layer lists like ``1,x`` or ``1-5``, an unusable ``--device``, an ``--out`` that
cannot be created, data and language typos discovered only after the model load, a hub id without
network, ``drift --source fr --target fr``, and ``report --help`` not stating its defaults.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from test_lens_drift import TINY_WORDS
from xling_probe import Activations
from xling_probe.cli.main import main
from xling_probe.cli.options import count, layers_arg, positive_int
from xling_probe.errors import ExtractionError
from xling_probe.labels import parse_layers, resolve_layers
from cli_helpers import one_line_error, subparsers

# Every integer option of every command; each must refuse 0 or -5 (the seeds and 0-means-none ones -5).
COUNT_OPTIONS = [
    ("extract", "--limit"), ("extract", "--batch-size"), ("extract", "--max-length"),
    ("similarity", "--limit"), ("similarity", "--batch-size"), ("similarity", "--max-length"),
    ("neutrality", "--limit"), ("neutrality", "--batch-size"), ("neutrality", "--max-length"),
    ("report", "--limit"), ("report", "--drift-items"), ("report", "--bootstrap"), ("report", "--null-permutations"),
    ("report", "--batch-size"), ("report", "--max-length"), ("report", "--dpi"),
    ("drift", "--limit"), ("drift", "--batch-size"), ("drift", "--n-boot"),
]
ZERO_MEANS_SOMETHING = [("similarity", "--bootstrap"), ("similarity", "--null-permutations"), ("drift", "--shots"),
                        ("report", "--shots"), ("similarity", "--seed"), ("neutrality", "--seed"),
                        ("drift", "--seed"), ("report", "--seed")]


_one_line_error = one_line_error
_subparsers = subparsers


@pytest.fixture
def acts_folder(tmp_path):
    rng = np.random.default_rng(0)
    acts = Activations(data=rng.normal(size=(4, 2, 12, 5)).astype(np.float32), layers=(0, 1, 2, 3),
                       languages=("en", "de"), ids=tuple(f"s{i}" for i in range(12)))
    return acts.save(tmp_path / "acts")


@pytest.fixture
def no_model_load(monkeypatch):
    """load_model replaced by a recorder that fails the test if anything reaches it."""
    import xling_probe.models.loading as models

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(models, "load_model", refuse)
    return calls


# ------------------------------------------------------------------ counts
def test_no_integer_option_bypasses_the_count_check():
    """Every int option goes through count(); a plain type=int would accept 0 and -5 again."""
    found = []
    for name, parser in _subparsers().items():
        for action in parser._actions:
            assert action.type is not int, f"{name} {action.option_strings} uses type=int"
            if getattr(action.type, "__qualname__", "").startswith("count."):
                found.append((name, action.option_strings[0]))
    assert set(COUNT_OPTIONS + ZERO_MEANS_SOMETHING) <= set(found)


@pytest.mark.parametrize("command, option", COUNT_OPTIONS)
@pytest.mark.parametrize("value", ["0", "-5"])
def test_counts_below_one_are_refused(command, option, value, tmp_path, capsys, no_model_load):
    with pytest.raises(SystemExit) as exc:
        main([command, option, value, "--target", "zh", "--out", str(tmp_path / "o")] if command == "drift"
             else [command, option, value, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = _one_line_error(capsys)
    assert f"argument {option}: must be at least 1, got {int(value)}" in err and f"xling-probe {command} --help" in err
    assert not (tmp_path / "o").exists() and not no_model_load


@pytest.mark.parametrize("command, option", ZERO_MEANS_SOMETHING)
def test_zero_is_allowed_where_it_means_none_but_negatives_are_not(command, option, capsys):
    action = next(a for a in _subparsers()[command]._actions if option in a.option_strings)
    assert action.type("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 0"):
        action.type("-5")


def test_count_reads_whole_numbers_only():
    assert positive_int(" 7 ") == 7
    for bad in ("1.5", "ten", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number >= 1"):
            positive_int(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"at least 0 \(0 = no null\), got -1"):
        count(0, "no null")("-1")


def test_similarity_limit_minus_five_no_longer_drops_sentences(acts_folder, tmp_path, capsys):
    """It used to slice ids[:-5] and silently score 7 of 12 sentences."""
    with pytest.raises(SystemExit) as exc:
        main(["similarity", "--acts", str(acts_folder), "--limit", "-5", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--limit: must be at least 1, got -5" in _one_line_error(capsys)
    assert main(["similarity", "--acts", str(acts_folder), "--limit", "5", "--metrics", "cka", "--bootstrap", "0",
                 "--null-permutations", "0", "--out", str(tmp_path / "ok")]) == 0
    assert json.loads((tmp_path / "ok" / "similarity.json").read_text())["settings"]["n_sentences"] == 5


def test_activation_subsets_refuse_an_empty_id_list(acts_folder):
    with pytest.raises(ExtractionError, match="selects no sentence"):
        Activations.load(acts_folder).sel(ids=[])


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("text, expected", [
    ("all", "all"), (" ALL ", "all"), ("1,5,9", [1, 5, 9]), ("1-5", [1, 2, 3, 4, 5]), ("0,3-5,18", [0, 3, 4, 5, 18]),
    ("-1", [-1]), ("0,-1", [0, -1]), ("2, 2,1-2", [2, 1]), ("3-3", [3]), ("1 - 3", [1, 2, 3]),
])
def test_layer_lists_indices_and_inclusive_ranges(text, expected):
    assert parse_layers(text) == expected
    assert layers_arg(text) == expected


@pytest.mark.parametrize("text, message", [
    ("1,x", "cannot read layer 'x' in '1,x'"), ("1-", "cannot read layer '1-'"), ("1.5", "cannot read layer '1.5'"),
    ("-3-1", "cannot read layer '-3-1'"), ("5-1", "goes downwards; write it low-high, e.g. 1-5"), (" , ", "no layers"),
])
def test_unreadable_layer_lists_say_what_to_write(text, message):
    with pytest.raises(ExtractionError, match=message):
        parse_layers(text)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        layers_arg(text)


def test_resolve_layers_takes_the_parsed_forms_and_names_the_existing_layers():
    assert resolve_layers("1-2,-1", 19) == [1, 2, 18]
    assert resolve_layers(parse_layers("0,3-5,18"), 19) == [0, 3, 4, 5, 18]
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    with pytest.raises(ExtractionError, match=r"layer 19 is out of range: .* 19 residual-stream states, layers "
                                              r"0 \(embeddings\) \.\.\. 18 \(after the last block\)"):
        resolve_layers("17-19", 19)


@pytest.mark.parametrize("command", ["extract", "similarity", "neutrality"])
def test_bad_layer_lists_are_one_line_errors_in_every_command(command, tmp_path, capsys, no_model_load):
    with pytest.raises(SystemExit) as exc:
        main([command, "--layers", "1,x", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "argument --layers: cannot read layer 'x' in '1,x'" in _one_line_error(capsys)


def test_extract_accepts_ranges_and_refuses_layers_the_model_lacks(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "acts"
    assert main(["extract", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,de", "--limit", "3",
                 "--layers", "1-2,-1", "--no-cache", "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["layers"] == [1, 2, 3]
    capsys.readouterr()
    assert main(["extract", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,de", "--limit", "3",
                 "--layers", "2-9", "--out", str(tmp_path / "o2")]) == 2
    assert "layer 4 is out of range" in _one_line_error(capsys)


def test_similarity_and_neutrality_take_layer_ranges(acts_folder, tmp_path, capsys):
    assert main(["similarity", "--acts", str(acts_folder), "--layers", "1-2", "--metrics", "cka", "--bootstrap", "0",
                 "--null-permutations", "0", "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "similarity.json").read_text())["layers"] == [1, 2]
    assert main(["neutrality", "--acts", str(acts_folder), "--layers", "0,2-3", "--heldout", "4",
                 "--out", str(tmp_path / "n")]) == 0
    assert pd.read_csv(tmp_path / "n" / "summary.csv").layer.tolist() == [0, 2, 3]
    capsys.readouterr()
    assert main(["neutrality", "--acts", str(acts_folder), "--layers", "3-5", "--out", str(tmp_path / "n2")]) == 2
    assert "layer 4 was not extracted; available layers: 0..3" in _one_line_error(capsys)


@pytest.mark.parametrize("value", ["0", "-3", "1.0", "half"])
def test_heldout_size_is_a_fraction_or_a_count(value, acts_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["neutrality", "--acts", str(acts_folder), "--heldout", value, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--heldout: expected a fraction between 0 and 1" in _one_line_error(capsys)


# ------------------------------------------------------------------ device
def _cpu_only_torch(monkeypatch, cuda_version=None):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_version)


def test_cuda_on_a_cpu_build_of_torch(tiny_decoder_dir, tmp_path, capsys, monkeypatch):
    _cpu_only_torch(monkeypatch)
    assert main(["extract", "--model", str(tiny_decoder_dir), "--device", "cuda", "--limit", "2",
                 "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    assert (f"CUDA was requested but this torch build has no CUDA (torch {torch.__version__}, CPU build); "
            "use --device cpu or install a CUDA build of torch") in err


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown device 'gpu'; use cpu, cuda, cuda:N or mps"),
    ("mps", "MPS (Apple GPU) was requested but is not available here; use --device cpu"),
])
def test_unknown_and_unavailable_devices(device, message, tiny_decoder_dir, tmp_path, capsys, monkeypatch):
    if device == "mps":
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert main(["extract", "--model", str(tiny_decoder_dir), "--device", device, "--limit", "2",
                 "--out", str(tmp_path / "o")]) == 2
    assert message in _one_line_error(capsys)


# ------------------------------------------------------------------ --out
def test_an_out_folder_under_a_file_is_a_one_line_error(tmp_path, capsys, no_model_load):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file, not a folder")
    for command in (["extract"], ["report"], ["drift", "--source", "fr", "--target", "zh"]):
        assert main(command + ["--out", str(blocker / "sub" / "dir")]) == 2
        err = _one_line_error(capsys)
        assert f"cannot create the --out folder {blocker / 'sub' / 'dir'}: {blocker} is a file, not a folder" in err
    assert main(["extract", "--out", str(blocker)]) == 2
    assert f"--out folder {blocker} exists and is a file" in _one_line_error(capsys)
    assert blocker.read_text() == "a file, not a folder" and not no_model_load


def test_the_library_folder_check_does_not_speak_in_cli_flags(tmp_path):
    from xling_probe.errors import XlingProbeError
    from xling_probe.paths import prepare_output_folder
    from xling_probe.report.build import build_report

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(XlingProbeError) as exc:
        build_report(busy, model=object())
    assert "output folder" in str(exc.value) and "force=True" in str(exc.value)
    assert "--out" not in str(exc.value) and "--force" not in str(exc.value)
    assert prepare_output_folder(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert (tmp_path / "new" / "deep").is_dir()
    assert prepare_output_folder(busy, force=True) == busy and (busy / "keep.txt").read_text() == "x"


# ------------------------------------------------------------------ data before model
@pytest.mark.parametrize("command", ["extract", "similarity", "neutrality", "report"])
def test_a_language_typo_fails_before_the_model_is_loaded(command, tmp_path, capsys, no_model_load):
    started = time.perf_counter()
    assert main([command, "--model", "whatever", "--langs", "en,tlh", "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - started < 3.0
    err = _one_line_error(capsys)
    assert "'tlh'" in err and "the corpus has: en, de" in err and not no_model_load


@pytest.mark.parametrize("kind", ["missing", "folder", "extension"])
def test_a_bad_data_path_fails_before_the_model_is_loaded(kind, tmp_path, capsys, no_model_load):
    path = {"missing": tmp_path / "nope.tsv", "folder": tmp_path, "extension": tmp_path / "corpus.xlsx"}[kind]
    if kind == "extension":
        path.write_text("id\ten\n")
    assert main(["similarity", "--model", "m", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    expected = {"missing": f"corpus file not found: {path}", "folder": f"--data {path} is a folder; pass a corpus file",
                "extension": "unknown corpus file type '.xlsx'"}[kind]
    assert expected in err and not no_model_load


def test_drift_checks_words_and_languages_before_the_model(tmp_path, capsys, no_model_load):
    words = tmp_path / "words.csv"
    pd.DataFrame(TINY_WORDS).to_csv(words, index=False)
    assert main(["drift", "--model", "m", "--source", "de", "--target", "ja", "--words", str(words),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no words for language 'ja'" in _one_line_error(capsys)
    assert main(["drift", "--model", "m", "--target", "zh", "--words", str(words), "--out", str(tmp_path / "o")]) == 2
    assert "--task translation needs --source" in _one_line_error(capsys)
    assert not no_model_load


def test_drift_from_a_language_into_itself_is_refused(tmp_path, capsys, no_model_load):
    """fr -> fr 'translation' is the repetition task under another name; it used to run silently."""
    assert main(["drift", "--source", "fr", "--target", "FR", "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    assert "--source and --target are both 'fr'" in err and "use --task repetition --target fr" in err
    assert not no_model_load and not (tmp_path / "o").exists()


def test_language_drift_refuses_translation_into_the_same_language(tiny_decoder):
    from xling_probe.errors import LensError
    from xling_probe.lens import WordList, language_drift

    words = WordList.from_dict(TINY_WORDS)
    with pytest.raises(LensError, match=r"source and target are both 'fr'.*use task='repetition', target='fr'"):
        language_drift(tiny_decoder, words, source="fr", target="fr", progress=False)
    rep = language_drift(tiny_decoder, words, target="fr", task="repetition", shots=2, n_boot=50, progress=False)
    assert rep.source == rep.target == "fr"


# ------------------------------------------------------------------ hub without network
def test_a_hub_id_without_network_fails_at_once_with_a_way_out(tmp_path, capsys, monkeypatch):
    import xling_probe.models.loading as models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probes = []
    monkeypatch.setattr(models, "_hub_reachable", lambda *a, **k: probes.append(1) or False)
    monkeypatch.setattr(models, "_in_hf_cache", lambda repo: False)
    started = time.perf_counter()
    assert main(["extract", "--model", "org/name", "--device", "cpu", "--limit", "2", "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - started < 3.0 and probes == [1]
    err = _one_line_error(capsys)
    assert ("model 'org/name' is not a local folder or .gguf file, not in the local Hugging Face cache, and the hub "
            "cannot be reached (offline: no connection to huggingface.co:443); pass a local folder (--model "
            "path/to/folder with config.json) or a .gguf file, or set HF_HOME to a cache that has it") in err


# ------------------------------------------------------------------ report --help
def test_report_help_states_the_defaults_it_uses(capsys):
    from xling_probe.report.build import DEFAULT_LANGS, DEFAULT_LIMIT, DEFAULT_PAIRS, build_report

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sig = {k: p.default for k, p in inspect.signature(build_report).parameters.items()}
    assert f"(default: {','.join(DEFAULT_LANGS)}, those of them that are in the data" in text
    assert "all in the data" not in text
    assert f"use only the first N sentences (default: {DEFAULT_LIMIT})" in text
    assert f"(default: {sig['max_length']}; the other commands default to 512)" in text
    assert f"first {sig['max_length']} tokens" in text
    assert f"(default: {','.join(f'{a}-{b}' for a, b in DEFAULT_PAIRS)})" in text
    actions = {a.dest: a for a in _subparsers()["report"]._actions}
    for key in ("drift_items", "bootstrap", "shots", "null_permutations", "batch_size", "max_length", "dpi", "seed"):
        assert actions[key].default == sig[key], key
        assert f"(default: {sig[key]}" in actions[key].help, (key, actions[key].help)


def test_report_passes_its_stated_defaults_to_build_report(tmp_path, monkeypatch, capsys):
    import xling_probe.report.build as report

    defaults = {k: p.default for k, p in inspect.signature(report.build_report).parameters.items()}
    seen = {}

    @functools.wraps(report.build_report)  # the help reads the defaults from the signature
    def fake_build_report(out, **kwargs):
        seen.update(kwargs)
        raise report.XlingProbeError("stop here")

    monkeypatch.setattr(report, "build_report", fake_build_report)
    assert main(["report", "--out", str(tmp_path / "o")]) == 2
    assert "stop here" in _one_line_error(capsys)
    for key in ("limit", "null_permutations", "bootstrap", "drift_items", "shots", "batch_size", "max_length", "dpi",
                "seed"):
        assert seen[key] == defaults[key], key
    assert seen["langs"] is None and len(seen["corpus"]) > defaults["limit"]
