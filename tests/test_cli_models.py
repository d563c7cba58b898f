"""The model options every model-loading command shares: backend, placement, remote execution, stack.

They are defined once (``xling_probe.cli.options.add_model_options``) and read once (``load_options``);
bad values end in exit 2 and one line, whether argparse or ``load_model`` refuses them.
"""

from __future__ import annotations

import argparse
import functools
import json

import pytest

from xling_probe.cli.main import build_parser, main
from xling_probe.cli.options import device_map_arg, extract_options, load_options, memory_item
from xling_probe.errors import ModelLoadError, XlingProbeError
from xling_probe.models import BACKENDS
from cli_helpers import one_line_error, subparsers

MODEL_COMMANDS = ("extract", "similarity", "neutrality", "report", "drift")
EXTRACT_COMMANDS = ("extract", "similarity", "neutrality", "report")


_one_line_error = one_line_error
_subparsers = subparsers


def _parse(command: str, *extra: str) -> argparse.Namespace:
    required = ["--target", "fr"] if command == "drift" else []
    return build_parser().parse_args([command, *required, *extra, "--out", "unused"])


@pytest.fixture
def record_load(monkeypatch):
    """load_model replaced by a recorder that stops the command with a clean error once it is reached."""
    import xling_probe.models.loading as loading

    calls: list[dict] = []

    def record(name, **kwargs):
        calls.append({"name": name, **kwargs})
        raise ModelLoadError("recorded, not loaded")

    monkeypatch.setattr(loading, "load_model", record)
    return calls


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_command_has_the_shared_options(command):
    options = {s for a in _subparsers()[command]._actions for s in a.option_strings}
    assert {"--backend", "--device-map", "--max-memory", "--offload-folder", "--remote", "--remote-url",
            "--stack"} <= options
    assert "--api-key" not in options and not any("key" in o for o in options)  # the key comes from NDIF_API_KEY
    backend = next(a for a in _subparsers()[command]._actions if "--backend" in a.option_strings)
    assert tuple(backend.choices) == tuple(BACKENDS) and "nnsight" in backend.choices
    assert ({"--source-language", "--decoder-input"} <= options) == (command in EXTRACT_COMMANDS)


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_defaults_load_as_before(command):
    assert load_options(_parse(command)) == {"backend": "hf", "device": None, "dtype": None}


def test_every_new_option_reaches_load_options():
    args = _parse("extract", "--backend", "nnsight", "--device-map", '{"model.layers": 0, "lm_head": "cpu"}',
                  "--max-memory", "0=70GiB", "--max-memory", "cpu=200gib", "--max-memory", "cuda:1=1000",
                  "--offload-folder", "/tmp/off", "--remote", "--remote-url", "http://ndif.local:5001",
                  "--stack", "decoder", "--source-language", "en", "--decoder-input", "tag")
    assert load_options(args) == {
        "backend": "nnsight", "device": None, "dtype": None, "device_map": {"model.layers": 0, "lm_head": "cpu"},
        "max_memory": {0: "70GiB", "cpu": "200GiB", 1: 1000}, "offload_folder": "/tmp/off",
        "remote": True, "remote_url": "http://ndif.local:5001", "stack": "decoder",
    }
    assert extract_options(args) == {"source_language": "en", "decoder_input": "tag"}


@pytest.mark.parametrize("text, expected", [("auto", "auto"), (" Balanced ", "balanced"), ("sequential", "sequential"),
                                            ('{"model": "cpu"}', {"model": "cpu"}),
                                            ('{"a": 0, "b": "disk"}', {"a": 0, "b": "disk"})])
def test_device_maps(text, expected):
    assert device_map_arg(text) == expected


@pytest.mark.parametrize("text, expected", [("0=70GiB", (0, "70GiB")), ("cpu=200GiB", ("cpu", "200GiB")),
                                            ("1 = 7.5gb", (1, "7.5GB")), ("cuda:2=10MiB", (2, "10MiB")),
                                            ("disk=1000", ("disk", 1000)), ("MPS=4GiB", ("mps", "4GiB"))])
def test_memory_items(text, expected):
    assert memory_item(text) == expected


# ------------------------------------------------------------------ exit 2, one line
@pytest.mark.parametrize("value, message", [
    ("{bad json", "argument --device-map: not a valid JSON object"),
    ("[1, 2]", "argument --device-map: expected auto, balanced, sequential or a JSON object"),
    ("everywhere", "got 'everywhere'"),
    ("{}", "non-empty JSON object"),
    ('{"model": [0]}', "the device of 'model' must be a GPU index"),
])
def test_bad_device_maps_exit_2(value, message, tmp_path, capsys, record_load):
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--device-map", value, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and message in _one_line_error(capsys)
    assert not record_load


@pytest.mark.parametrize("item, message", [
    ("70GiB", "expected DEVICE=SIZE"), ("0=", "expected DEVICE=SIZE"), ("=5GiB", "expected DEVICE=SIZE"),
    ("0=70XB", "size '70XB' in '0=70XB'"), ("0=lots", "size 'lots'"), ("0=1.5", "size '1.5' in '0=1.5': a number of bytes must be whole"),
    ("gpu 0=1GiB", "device 'gpu 0' in 'gpu 0=1GiB'"),
])
def test_bad_max_memory_items_exit_2(item, message, tmp_path, capsys, record_load):
    with pytest.raises(SystemExit) as exc:
        main(["similarity", "--device-map", "auto", "--max-memory", item, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and f"argument --max-memory: {message}" in _one_line_error(capsys)
    assert not record_load


def test_a_device_given_twice_in_max_memory_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--max-memory", "0=1GiB", "--max-memory", "cuda:0=2GiB", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "device 0 is given twice" in _one_line_error(capsys)


@pytest.mark.parametrize("bad", [["--backend", "tl"], ["--stack", "middle"], ["--decoder-input", "prefix"]])
def test_bad_choices_exit_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["extract", *bad, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "invalid choice" in _one_line_error(capsys)


def test_remote_with_the_hf_backend_is_the_load_model_error(tiny_decoder_dir, tmp_path, capsys):
    code = main(["extract", "--model", str(tiny_decoder_dir), "--remote", "--langs", "en,de", "--limit", "2",
                 "--out", str(tmp_path / "o")])
    line = _one_line_error(capsys)
    assert code == 2 and "remote execution runs through nnsight: use backend='nnsight'" in line


def test_remote_url_needs_remote(tmp_path, capsys, record_load):
    assert main(["extract", "--backend", "nnsight", "--remote-url", "http://h", "--out", str(tmp_path / "o")]) == 2
    assert "--remote-url names the server of a remote run: add --remote" in _one_line_error(capsys)
    assert not record_load and not (tmp_path / "o").exists()


def test_stack_on_a_decoder_only_model_is_the_load_model_error(tiny_decoder_dir, tmp_path, capsys):
    code = main(["extract", "--model", str(tiny_decoder_dir), "--device", "cpu", "--stack", "decoder",
                 "--langs", "en,de", "--limit", "2", "--out", str(tmp_path / "o")])
    line = _one_line_error(capsys)
    assert code == 2 and "stack='decoder' is for encoder-decoder models" in line and "has one stack" in line


def test_placement_options_without_a_device_map_are_the_load_model_error(tiny_decoder_dir, tmp_path, capsys):
    code = main(["extract", "--model", str(tiny_decoder_dir), "--device", "cpu", "--max-memory", "cpu=1GiB",
                 "--langs", "en,de", "--limit", "2", "--out", str(tmp_path / "o")])
    assert code == 2 and "need device_map=" in _one_line_error(capsys)


@pytest.mark.parametrize("command", EXTRACT_COMMANDS)
def test_decoder_stack_options_need_the_decoder_stack(command, tmp_path, capsys, record_load):
    assert main([command, "--source-language", "en", "--out", str(tmp_path / "o")]) == 2
    assert "--source-language set the input of the decoder stack" in _one_line_error(capsys)
    assert main([command, "--stack", "encoder", "--decoder-input", "tag", "--out", str(tmp_path / "o")]) == 2
    assert "add --stack decoder" in _one_line_error(capsys)
    assert not record_load


def test_an_unknown_source_language_fails_before_the_model_load(tmp_path, capsys, record_load):
    assert main(["extract", "--stack", "decoder", "--source-language", "xx", "--out", str(tmp_path / "o")]) == 2
    assert "xx" in _one_line_error(capsys) and not record_load


# ------------------------------------------------------------------ the options reach load_model / build_report
@pytest.mark.parametrize("command", ["extract", "similarity", "neutrality", "drift"])
def test_commands_pass_the_options_to_load_model(command, tmp_path, capsys, record_load):
    extra = ["--target", "fr", "--source", "de"] if command == "drift" else ["--langs", "en,de", "--limit", "2"]
    code = main([command, *extra, "--model", "some/model", "--device-map", "balanced", "--max-memory", "0=1GiB",
                 "--offload-folder", str(tmp_path / "off"), "--stack", "encoder", "--out", str(tmp_path / "o")])
    assert code == 2 and "recorded, not loaded" in _one_line_error(capsys)
    assert record_load == [{"name": "some/model", "backend": "hf", "device": None, "dtype": None,
                            "device_map": "balanced", "max_memory": {0: "1GiB"},
                            "offload_folder": str(tmp_path / "off"), "stack": "encoder"}]


def test_report_passes_load_and_extract_options(tmp_path, monkeypatch):
    import xling_probe.report.build as build

    seen = {}

    @functools.wraps(build.build_report)  # the report's --help reads the defaults from its signature
    def fake_report(out, **kwargs):
        seen.update(kwargs)
        return build.ReportResult(out=tmp_path, files=[], timings={})

    monkeypatch.setattr(build, "build_report", fake_report)
    assert main(["report", "--langs", "fr,de", "--backend", "nnsight", "--remote", "--stack", "decoder",
                 "--source-language", "eng", "--decoder-input", "tag", "--out", str(tmp_path / "o")]) == 0
    assert seen["load_options"] == {"backend": "nnsight", "device": None, "dtype": None, "remote": True,
                                    "stack": "decoder"}
    assert seen["extract_options"] == {"source_language": "en", "decoder_input": "tag"}
    # the decoder stack's encoder reads English although --langs leaves it out
    assert "en" in seen["corpus"].languages and seen["langs"] == ["fr", "de"]


def test_errors_are_xling_probe_errors():
    with pytest.raises(XlingProbeError, match="add --remote"):
        load_options(argparse.Namespace(backend="hf", device=None, dtype=None, remote=False, remote_url="http://h"))
    assert json.loads(json.dumps(memory_item("0=1GiB"))) == [0, "1GiB"]
