"""Options and helpers shared by several sub-commands.

Every integer option of every command goes through :func:`count` (so ``--limit 0`` or
``--limit -5`` is refused by argparse with exit 2 instead of being ignored or read as a Python
slice), and every ``--layers`` option through :func:`layers_arg`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ExtractionError, XlingProbeError


def count(minimum: int = 1, meaning_of_minimum: str | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer >= ``minimum``; anything else is an argparse error (exit 2).

    ``meaning_of_minimum`` names what the smallest value does when it is allowed to mean
    something special (e.g. 0 bootstrap resamples = no intervals); it is only used in messages.
    """

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            extra = f" ({minimum} = {meaning_of_minimum})" if meaning_of_minimum else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{extra}, got {value}")
        return value

    parse.__name__ = "positive_int" if minimum == 1 else f"int>={minimum}"
    return parse


#: An argparse ``type=`` for counts that must be >= 1 (sentences, batch size, tokens, items...).
positive_int = count(1)
#: An argparse ``type=`` for seeds: numpy's generators refuse negative seeds.
seed_int = count(0)


def heldout_size(text: str) -> float | int:
    """'0.2' -> a fraction in (0, 1), '100' -> a count >= 1; anything else is an argparse error."""
    try:
        value: float | int = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
    if (isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0.0 < value < 1.0):
        return value
    raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 like 0.2 or a count >= 1 like 100, got {text!r}")


def positive_float(text: str) -> float:
    """An argparse ``type=``: a number > 0 (a memory budget in GB, a fraction...)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def number_list(kind: type = float, what: str = "numbers") -> Callable[[str], list]:
    """An argparse ``type=`` for comma-separated numbers (``0,1,2,4`` or ``-1,-2``), at least one."""

    def parse(text: str) -> list:
        try:
            items = [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            items = []
        if not items or (kind is float and not all(math.isfinite(x) for x in items)):
            example = "0,1,2,4" if kind is float else "-1,-2"
            raise argparse.ArgumentTypeError(f"expected comma-separated {what} like {example}, got {text!r}")
        return items

    return parse


def write_figures_page(path: Path, title: str, figures: dict[str, Any]) -> None:
    """One HTML page with every figure, plotly.js inlined once (it opens offline)."""
    from html import escape

    body = "".join(fig.to_html(full_html=False, include_plotlyjs=k == 0, div_id=name)
                   for k, (name, fig) in enumerate(figures.items()))
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
                    f"<body>{body}</body></html>", encoding="utf-8")


def layers_arg(text: str) -> str | list[int]:
    """An argparse ``type=`` for ``--layers``: ``all``, ``1,5,9``, ``1-5`` (inclusive), ``0,3-5,18``, ``-1``.

    Parsing is :func:`xling_probe.labels.parse_layers` (the library accepts the same strings);
    whether the layers exist is checked later against the model or the saved activations.
    """
    from ..labels import parse_layers

    try:
        return parse_layers(text)
    except ExtractionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


LAYERS_HELP = ("'all', or layer indices and inclusive ranges, e.g. 1,5,9 or 0,3-5,18; negative indices count "
               "from the end (0 = embeddings, l = output of block l-1)")


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "sequential")
#: ``--max-memory`` size units (accelerate's; a lower-case ``b`` there means bits, so the case is normalised).
_SIZE_UNITS = {u.lower(): u for u in ("GiB", "MiB", "KiB", "GB", "MB", "KB")}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_DEVICE_KEY = re.compile(r"^[a-z_]+(?::\d+)?$")


def device_map_arg(text: str) -> str | dict[str, Any]:
    """An argparse ``type=`` for ``--device-map``: a strategy (auto, balanced, sequential) or a JSON object
    mapping module names to devices, e.g. ``{"model.embed_tokens": 0, "model.layers": "cpu"}``."""
    value = text.strip()
    if value.lower() in DEVICE_MAP_STRATEGIES:
        return value.lower()
    if not value.startswith("{"):
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(DEVICE_MAP_STRATEGIES)} or a JSON object like '{{\"model.layers\": 0}}', got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a valid JSON object ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise argparse.ArgumentTypeError(f"expected a non-empty JSON object of module name -> device, got {text!r}")
    bad = [k for k, v in parsed.items() if isinstance(v, bool) or not isinstance(v, (int, str))]
    if bad:
        raise argparse.ArgumentTypeError(
            f"the device of {', '.join(map(repr, bad))} must be a GPU index or a name such as \"cpu\" or \"disk\"")
    return parsed


def memory_item(text: str) -> tuple[int | str, int | str]:
    """An argparse ``type=`` for one ``--max-memory DEVICE=SIZE``: ``0=70GiB`` -> ``(0, "70GiB")``,
    ``cpu=200GiB`` -> ``("cpu", "200GiB")``; ``cuda:1`` is read as GPU 1, a bare number of bytes as an int."""
    key, sep, size = text.partition("=")
    key, size = key.strip().lower(), size.strip()
    if not sep or not key or not size:
        raise argparse.ArgumentTypeError(f"expected DEVICE=SIZE, e.g. 0=70GiB or cpu=200GiB, got {text!r}")
    device: int | str
    if key.isdigit():
        device = int(key)
    elif key.startswith("cuda:") and key[5:].isdigit():
        device = int(key[5:])
    elif _DEVICE_KEY.match(key):
        device = key
    else:
        raise argparse.ArgumentTypeError(f"device {key!r} in {text!r}: use a GPU index (0, 1...), cpu, mps or disk")
    m = _SIZE.match(size)
    unit = m.group(2).lower() if m else None
    if m is None or (unit and unit not in _SIZE_UNITS):
        raise argparse.ArgumentTypeError(
            f"size {size!r} in {text!r}: use a number of bytes or a number with a unit "
            f"({', '.join(_SIZE_UNITS.values())}), e.g. 70GiB")
    if not unit:
        if "." in m.group(1):
            raise argparse.ArgumentTypeError(f"size {size!r} in {text!r}: a number of bytes must be whole")
        return device, int(m.group(1))
    return device, f"{m.group(1)}{_SIZE_UNITS[unit]}"


class _MaxMemory(argparse.Action):
    """Collects repeated ``--max-memory DEVICE=SIZE`` into one dict; a device given twice is an error."""

    def __call__(self, parser, namespace, values, option_string=None):
        device, size = values
        current = dict(getattr(namespace, self.dest, None) or {})
        if device in current:
            parser.error(f"argument {option_string}: device {device!r} is given twice")
        current[device] = size
        setattr(namespace, self.dest, current)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model, --backend, --device, --dtype, the placement options (--device-map, --max-memory,
    --offload-folder), remote execution (--remote, --remote-url) and --stack; read by :func:`load_options`."""
    from ..models.arch import STACKS
    from ..models.loading import BACKENDS

    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help="hub id, local HF folder or .gguf file (default: the offline Gemma 3 270M)")
    g.add_argument("--backend", default="hf", choices=list(BACKENDS), help="hooking backend (default: hf)")
    g.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda when available)")
    g.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")
    g.add_argument("--stack", default=None, choices=list(STACKS),
                   help="encoder-decoder models (T5/mT5, M2M100/NLLB, mBART, Marian): the stack to read (default: "
                        "encoder; the logit lens needs decoder)")
    g = p.add_argument_group("placement (models larger than one device)")
    g.add_argument("--device-map", type=device_map_arg, default=None, metavar="MAP",
                   help=f"spread the model with accelerate: {', '.join(DEVICE_MAP_STRATEGIES)}, or a JSON object of "
                        "module name -> device, e.g. '{\"model.layers\": 0, \"lm_head\": \"cpu\"}' (--device is then ignored)")
    g.add_argument("--max-memory", type=memory_item, action=_MaxMemory, default=None, metavar="DEVICE=SIZE",
                   help="memory per device for --device-map, repeatable: --max-memory 0=70GiB --max-memory cpu=200GiB")
    g.add_argument("--offload-folder", default=None, metavar="PATH",
                   help="folder for weights offloaded to disk by --device-map")
    g = p.add_argument_group("remote execution (nnsight)")
    g.add_argument("--remote", action="store_true",
                   help="run on an NDIF server (needs --backend nnsight; the API key comes from NDIF_API_KEY)")
    g.add_argument("--remote-url", default=None, metavar="URL",
                   help="a self-hosted NDIF server (with --remote; default: NDIF_HOST or the public NDIF)")


def add_seq2seq_options(p: argparse.ArgumentParser) -> None:
    """--source-language and --decoder-input: what the decoder stack of an encoder-decoder model reads."""
    from ..extraction.seq2seq import DECODER_INPUTS

    g = p.add_argument_group("decoder stack (encoder-decoder models with --stack decoder)")
    g.add_argument("--source-language", default=None, metavar="CODE",
                   help="language of the encoder input (default: en when the data has it, else its first language)")
    g.add_argument("--decoder-input", default=None, choices=list(DECODER_INPUTS),
                   help="translation: each language's sentence teacher-forced after its language tag; tag: the "
                        "forced prefix alone (default: translation)")


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`xling_probe.load_model` that the model options give."""
    if getattr(args, "remote_url", None) and not getattr(args, "remote", False):
        raise XlingProbeError("--remote-url names the server of a remote run: add --remote (and --backend nnsight)")
    out: dict[str, Any] = {"backend": args.backend, "device": args.device, "dtype": args.dtype}
    for key in ("device_map", "max_memory", "offload_folder", "remote_url", "stack"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    if getattr(args, "remote", False):
        out["remote"] = True
    return out


def extract_options(args: argparse.Namespace, corpus=None) -> dict[str, Any]:
    """The decoder-stack keyword arguments of :func:`xling_probe.extract` (empty without them).

    They only mean something on the decoder stack: given without ``--stack decoder`` they are an error
    (before the model load), and ``--source-language`` is checked against ``corpus`` when one is given."""
    out = {k: getattr(args, k) for k in ("source_language", "decoder_input") if getattr(args, k, None) is not None}
    if out and getattr(args, "stack", None) != "decoder":
        given = " and ".join("--" + k.replace("_", "-") for k in out)
        raise XlingProbeError(f"{given} set the input of the decoder stack of an encoder-decoder model: add --stack decoder")
    if corpus is not None and "source_language" in out:
        out["source_language"] = corpus.resolve_language(out["source_language"])
    return out


def add_data_options(p: argparse.ArgumentParser, *, langs_help: str | None = None,
                     limit_help: str | None = None) -> None:
    """--data, --langs and --limit; a command whose defaults differ states them in ``*_help``."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="parallel corpus: .tsv (header = id + language codes, no quoting), .jsonl or .csv "
                        "(default: the bundled sample)")
    g.add_argument("--langs", default=None,
                   help=langs_help or "comma-separated language codes to use (default: all in the data)")
    g.add_argument("--limit", type=positive_int, default=None,
                   help=limit_help or "use only the first N sentences (default: all)")


POOLINGS = ["mean", "last", "first", "weighted_mean"]


def add_extraction_options(p: argparse.ArgumentParser, title: str = "extraction") -> argparse._ArgumentGroup:
    """--pooling, --batch-size and --max-length (the options every command that runs a model shares)."""
    g = p.add_argument_group(title)
    g.add_argument("--pooling", default="mean", choices=POOLINGS,
                   help="sentence pooling (default: mean over real tokens, special tokens excluded)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="sentences per forward pass (default: 16)")
    g.add_argument("--max-length", type=positive_int, default=512,
                   help="truncate sentences to this many tokens (default: 512)")
    return g


def add_acts_options(p: argparse.ArgumentParser) -> None:
    """Input of the analysis commands: a saved activation folder (--acts) or a model run on a corpus."""
    src = p.add_argument_group("input (either --acts, or the model and data options)")
    src.add_argument("--acts", default=None, help="activation folder written by 'xling-probe extract'")
    add_model_options(p)
    add_data_options(p)
    add_extraction_options(p, "extraction (only without --acts)")
    add_seq2seq_options(p)


def add_out_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out folder (files with the same names are overwritten, "
                        "nothing else is deleted)")


def acts_from(args: argparse.Namespace):
    """The activations an analysis command works on: ``--acts`` (with --langs/--limit applied) or a fresh
    extraction of --model on --data."""
    from ..extraction.activations import Activations

    if args.acts:
        if args.model or args.data:
            raise XlingProbeError("pass either --acts or --model/--data, not both")
        folder = Path(args.acts).expanduser()
        if not folder.is_dir():
            raise XlingProbeError(f"--acts {folder} is not a folder; pass a folder written by 'xling-probe extract'")
        acts = Activations.load(folder)
        langs = split_list(args.langs)
        if langs or args.limit:
            acts = acts.sel(languages=langs, ids=acts.ids[: args.limit] if args.limit else None)
        return acts
    from ..extraction.extract import extract

    corpus, languages = corpus_for_extract(args)  # data and language typos fail here, before the slow model load
    options = extract_options(args, corpus)
    return extract(load_model_from(args), corpus, languages=languages, pooling=args.pooling,
                   batch_size=args.batch_size, max_length=args.max_length, **options)


def parse_pairs(text: str | None, *, keywords: bool = True) -> str | list[tuple[str, str]] | None:
    """``--pairs`` in the one pair grammar, :func:`xling_probe.labels.parse_pairs`: 'en-de,en-zh' ->
    [('en', 'de'), ('en', 'zh')] ('en-zh-Hant', 'zh-Hant/en', 'fr:de' work too); with ``keywords``,
    'all', 'pivot' and 'pivot:en' pass through. None stays None.
    """
    from ..labels import parse_pairs as parse

    if text is None:
        return None
    if not split_list(text):
        hint = "'all', 'pivot:en' or " if keywords else ""
        raise XlingProbeError(f"--pairs is empty; use {hint}pairs like en-de,en-zh")
    parsed = parse(text) if keywords else parse(split_list(text))
    return parsed if isinstance(parsed, str) else list(parsed)


def split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


def load_model_from(args: argparse.Namespace):
    from ..models.loading import load_model

    return load_model(args.model, **load_options(args))


def load_corpus_from(args: argparse.Namespace):
    """--data (or the bundled sample) restricted to --langs and --limit. Cheap: call it before
    :func:`load_model_from` so a wrong file or language code fails at once."""
    from ..data.corpus import ParallelCorpus, load_corpus

    langs = split_list(args.langs)
    if args.data and Path(args.data).expanduser().is_dir():
        raise XlingProbeError(f"--data {args.data} is a folder; pass a corpus file (.tsv, .jsonl or .csv)")
    corpus = load_corpus(args.data) if args.data else ParallelCorpus.sample()
    if langs:
        corpus = corpus.select_languages(langs)
    if args.limit is not None:
        corpus = corpus.head(args.limit)
    return corpus


def corpus_for_extract(args: argparse.Namespace):
    """``(corpus, languages)`` for :func:`xling_probe.extract`: :func:`load_corpus_from` and ``None``, except on
    the decoder stack, whose encoder may read a language that --langs leaves out (``--langs fr,de
    --source-language en``): there the corpus keeps every language and ``languages`` lists those of --langs."""
    if getattr(args, "stack", None) != "decoder" or not split_list(args.langs):
        return load_corpus_from(args), None
    corpus = load_corpus_from(argparse.Namespace(data=args.data, langs=None, limit=args.limit))
    return corpus, list(corpus.select_languages(split_list(args.langs)).languages)


def prepare_out(path: str | Path, *, force: bool = False) -> Path:
    """Create the --out folder; refuse a non-empty one unless --force (never deletes anything).

    A thin wrapper of :func:`xling_probe.paths.prepare_output_folder` whose messages name the flags.
    """
    from ..paths import prepare_output_folder

    return prepare_output_folder(path, force=force, what="--out folder", force_hint="pass --force")


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
