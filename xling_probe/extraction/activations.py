"""Labeled sentence activations: layer x language x sentence x hidden.

Layer labels follow the residual-stream convention of docs/science.md ("Layer indexing"): for a model with L blocks
there are L + 1 states; index 0 is the embedding output (the input to block 0) and index l is
the output of block l - 1 (the residual stream after block l - 1). No final norm is applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError, ExtractionError
from ..labels import LayerSpec, layer_position, parse_layers, resolve_language, select_layers
from .store import MANIFEST_FILE, read_activations, redo_hint, write_activations
from .zarr_store import StoreArray

DIMS = ("layer", "language", "sentence", "hidden")


@dataclass(frozen=True, eq=False)
class Activations:
    """Pooled sentence representations of a parallel corpus at several layers.

    Attributes
    ----------
    data:
        float32 array of shape ``(n_layers, n_languages, n_sentences, hidden)``, read-only (a
        frozen result: :meth:`replace` makes a new one; ``data.copy()`` gives a writable array), or a
        lazy :class:`~xling_probe.extraction.zarr_store.StoreArray` over an on-disk store (``lazy``),
        read only where it is indexed.
    layers:
        residual-stream index of each entry of axis 0 (0 = embeddings, l = after block l-1).
    languages:
        canonical language code of each entry of axis 1 (see :func:`~xling_probe.data.languages.normalize_code`).
    ids:
        sentence id of each entry of axis 2; row i of every language is the same sentence.
    labels:
        display label of each language (the code as the user wrote it).
    texts:
        optional sentences, ``texts[language][i]`` is the sentence behind ``data[:, lang, i]``.
    meta:
        everything that produced the numbers (model, fingerprint, pooling, max_length, dtype...).
    """

    data: np.ndarray
    layers: tuple[int, ...]
    languages: tuple[str, ...]
    ids: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    texts: dict[str, tuple[str, ...]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = self.data if isinstance(self.data, StoreArray) else np.asarray(self.data)
        if data.ndim != 4:
            raise ExtractionError(f"activations must be 4-D {DIMS}, got shape {data.shape}")
        expected = (len(self.layers), len(self.languages), len(self.ids))
        if data.shape[:3] != expected:
            raise ExtractionError(
                f"activation shape {data.shape} does not match labels "
                f"(layers={expected[0]}, languages={expected[1]}, sentences={expected[2]})"
            )
        if isinstance(data, np.ndarray) and data.flags.writeable:
            # A read-only view: the caller's own array stays writable, this result cannot be changed in place.
            data = data.view()
            data.setflags(write=False)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "languages", tuple(self.languages))
        object.__setattr__(self, "ids", tuple(str(x) for x in self.ids))
        labels = {lang: self.labels.get(lang, lang) for lang in self.languages}
        object.__setattr__(self, "labels", labels)

    # ------------------------------------------------------------------ basic facts
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def lazy(self) -> bool:
        """Whether the numbers live in an on-disk store (read on access) rather than in memory."""
        return isinstance(self.data, StoreArray)

    def in_memory(self) -> Activations:
        """The same activations with the data read into memory (itself when it already is)."""
        return self if not self.lazy else self.replace(np.asarray(self.data))

    @property
    def hidden_size(self) -> int:
        return int(self.data.shape[3])

    @property
    def n_sentences(self) -> int:
        return int(self.data.shape[2])

    def __repr__(self) -> str:
        model = self.meta.get("model", "?")
        pooling = self.meta.get("pooling", "?")
        return (
            f"Activations(model={model!r}, pooling={pooling!r}, layers={self.layers[0]}..{self.layers[-1]} "
            f"({len(self.layers)}), languages={list(self.languages)}, sentences={len(self.ids)}, "
            f"hidden={self.hidden_size})"
        )

    # ------------------------------------------------------------------ lookup
    def language_index(self, language: str) -> int:
        """Axis-1 index of a language given in any accepted spelling (``fr``, ``fra``, ``fra_Latn``).

        Resolved by :func:`xling_probe.labels.resolve_language` (the one language grammar);
        :class:`ExtractionError` names the extracted languages when it is not there.
        """
        code = resolve_language(language, self.languages, self.labels, error=ExtractionError, what="these activations")
        return self.languages.index(code)

    def layer_index(self, layer: int) -> int:
        """Axis-0 index of a residual-stream layer; negative values count from the last
        (:func:`xling_probe.labels.layer_position`)."""
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and layer >= 0 and layer not in self.layers:
            raise ExtractionError(
                f"layer {layer} was not extracted; available layers: {self.layers[0]}..{self.layers[-1]} "
                f"({list(self.layers)})"
            )
        return layer_position(layer, self.layers, error=ExtractionError)

    def get(self, layer: int, language: str) -> np.ndarray:
        """The ``(n_sentences, hidden)`` matrix of one language at one layer."""
        return self.data[self.layer_index(layer), self.language_index(language)]

    def sel(
        self,
        *,
        layers: LayerSpec = None,
        languages: Iterable[str] | None = None,
        ids: Iterable[str] | None = None,
    ) -> Activations:
        """A subset by layer, language and sentence id (labels kept, data copied lazily by numpy).

        ``layers`` takes what :func:`xling_probe.labels.select_layers` reads (``None``/``"all"``, one
        layer, several, ``"1,5,9"``, ``"3-5"``, negative from the last); the subset keeps the order of
        axis 0, without repeats.
        """
        if layers is not None:
            items = parse_layers(layers) if isinstance(layers, str) else layers
            for x in [] if items == "all" else [items] if isinstance(items, (int, np.integer)) else items:
                self.layer_index(x)  # a layer that is not here is named as "not extracted"
        li = select_layers(layers, self.layers, error=ExtractionError)
        gi = [self.language_index(x) for x in languages] if languages is not None else list(range(len(self.languages)))
        if ids is not None:
            pos = {s: i for i, s in enumerate(self.ids)}
            wanted = [str(x) for x in ids]
            if not wanted:
                raise ExtractionError("ids= selects no sentence; pass at least one id, or ids=None for all")
            missing = [s for s in wanted if s not in pos]
            if missing:
                raise ExtractionError(f"sentence ids not in these activations: {missing[:10]}")
            si = [pos[s] for s in wanted]
        else:
            si = list(range(len(self.ids)))
        if self.lazy:
            data = self.data.subset(li, gi, si)  # still lazy: reads happen when the numbers are used
        else:
            data = self.data[np.ix_(li, gi, si)] if (li and gi and si) else self.data[li][:, gi][:, :, si]
        langs = tuple(self.languages[i] for i in gi)
        texts = None
        if self.texts is not None:
            texts = {lang: tuple(self.texts[lang][i] for i in si) for lang in langs if lang in self.texts}
        return Activations(
            data=data,
            layers=tuple(self.layers[i] for i in li),
            languages=langs,
            ids=tuple(self.ids[i] for i in si),
            labels={lang: self.labels[lang] for lang in langs},
            texts=texts,
            meta=dict(self.meta),
        )

    def replace(self, data: np.ndarray, **meta: Any) -> Activations:
        """Same labels, new data of the same shape (used by centering and projections)."""
        if tuple(data.shape) != tuple(self.data.shape):
            raise ExtractionError(f"replacement data has shape {data.shape}, expected {self.data.shape}")
        return Activations(
            data=data,
            layers=self.layers,
            languages=self.languages,
            ids=self.ids,
            labels=dict(self.labels),
            texts=self.texts,
            meta={**self.meta, **meta},
        )

    # ------------------------------------------------------------------ conversions
    def to_xarray(self):
        """An ``xarray.DataArray`` with named dims (layer, language, sentence, hidden)."""
        import xarray as xr

        return xr.DataArray(
            self.data.to_dask() if self.lazy else self.data,
            dims=DIMS,
            coords={
                "layer": list(self.layers),
                "language": list(self.languages),
                "sentence": list(self.ids),
                "label": ("language", [self.labels[x] for x in self.languages]),
            },
            attrs={k: v for k, v in self.meta.items() if isinstance(v, (str, int, float))},
            name="activation",
        )

    # ------------------------------------------------------------------ disk format
    def save(self, folder: str | Path) -> Path:
        """Write ``activations.npy`` and ``manifest.json`` into ``folder`` (created); see :mod:`.store`."""
        manifest = manifest_of(self)
        if self.texts is not None:
            manifest["texts"] = {k: list(v) for k, v in self.texts.items()}
        return write_activations(Path(folder), np.asarray(self.data), manifest)

    @classmethod
    def load(cls, folder: str | Path) -> Activations:
        """Read a folder written by :meth:`save` or ``xling-probe extract``, or an activation store
        written by ``extract(..., store=...)`` (then lazily: ``acts.lazy``).

        Raises :class:`~xling_probe.errors.CacheError` (naming the folder and the file) when the
        folder is damaged: ``manifest.json`` truncated or invalid, ``activations.npy`` missing or
        not matching the manifest's checksum; :class:`ExtractionError` when it is not such a folder.
        """
        from .locations import Location, is_url

        if is_url(folder) or (Path(folder) / "zarr.json").is_file():  # an activation store: opened lazily
            from .zarr_store import ActivationStore

            if is_url(folder) and not Location(folder).exists("zarr.json"):
                raise ExtractionError(f"{folder} holds no activation store (no zarr.json)")

            st = ActivationStore.open(folder)
            lab = st.labels
            return cls(data=st.view(), layers=tuple(lab["layers"]), languages=tuple(lab["languages"]),
                       ids=tuple(lab["ids"]), labels=lab.get("labels", {}), meta=lab.get("meta", {}))
        folder = Path(folder)
        data, manifest = read_activations(folder)
        texts = manifest.get("texts")
        try:
            return cls(
                data=data,
                layers=tuple(manifest["layers"]),
                languages=tuple(manifest["languages"]),
                ids=tuple(manifest["ids"]),
                labels=manifest.get("labels", {}),
                texts={k: tuple(v) for k, v in texts.items()} if texts else None,
                meta=manifest.get("meta", {}),
            )
        except (ExtractionError, TypeError, ValueError, AttributeError) as exc:
            raise CacheError(
                f"the saved activations in {folder} do not match their {MANIFEST_FILE} ({exc}). {redo_hint(folder)}"
            ) from None


def stack_languages(per_language: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``[layer, sentence, hidden]`` arrays into ``[layer, language, sentence, hidden]``."""
    return np.stack(per_language, axis=1)


def manifest_of(acts: Activations) -> dict[str, Any]:
    """The JSON-able description of an :class:`Activations` (labels and meta, no data)."""
    return {
        "dims": list(DIMS),
        "shape": list(acts.shape),
        "layers": list(acts.layers),
        "languages": list(acts.languages),
        "labels": acts.labels,
        "ids": list(acts.ids),
        "meta": json.loads(json.dumps(acts.meta, default=str)),
    }
