"""A tuned lens trained on multilingual text.

The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the Tuned
Lens") reads layer l through an affine *translator* before the model's own final norm and
unembedding::

    T_l(h) = h + A_l h + b_l,        q_l = softmax(unembed(final_norm(T_l(h_l))))

and trains ``A_l, b_l`` to minimise KL(p_L || q_l), the divergence from the model's final-layer
distribution p_L, averaged over token positions. The last residual state is the model's output:
its translator is the identity (A = 0, b = 0), so the tuned lens and the logit lens agree there
and both reproduce the model's logits.

The published lenses were trained on English web text, and their maintainers advise against
reading other languages through them. :func:`train_tuned_lens` trains one on parallel text in
several languages (default: the bundled sample corpus, 16 languages); :func:`compare_lenses`
evaluates it against the logit lens on held-out sentences and languages with the exact
full-vocabulary KL. :func:`~xling_probe.lens.language_drift` and
:func:`~xling_probe.lens.prompt_lens` take ``tuned=`` to read every layer through it.

Training on a CPU (docs/science.md, "Tuned lens"):

1. **Initialisation by regression** (``init="regression"``, the default): ``A_l, b_l`` start at the
   ridge least-squares map from h_l to h_L over the training positions, shrunk towards the
   identity (a closed form: one d x d solve per layer); ``init="identity"`` starts at A = 0, b = 0
   as the paper does.
2. **KL by sampled softmax**: Gemma 3's 262k-token softmax costs 335 MFLOP per position and layer,
   too much for many steps on a CPU. Each step's softmax runs over the top token ids of p_L at the
   training positions (``vocab_size / 2`` of them) plus as many random other ids, whose terms are
   importance-weighted (x the number of other ids / the number drawn), so the full-vocabulary
   sums of p log p, p z and exp(z) are estimated without bias; p_L on those ids is exact (its
   full log-sum-exp is computed once). Adam on all layers at once.
3. **Validation**: the exact full-vocabulary KL on held-back positions decides, per layer, whether
   the translator beats the logit lens; a layer where it does not keeps the identity
   (``meta["identity_layers"]``). The evaluation (:func:`compare_lenses`) always uses the full
   vocabulary.

A trained lens is cached under the lens cache (``xp.clear_cache("lens")`` removes it), keyed by the
model fingerprint, the training texts and every setting; ``TunedLens.digest`` is the SHA-256 of
its arrays, which keys every drift result read through it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LensError
from ..models.loading import ModelHandle
from .cache import json_safe
from .core import Lens

#: The lenses :func:`~xling_probe.lens.language_drift` and the lens widget can read through.
LENS_KINDS = ("logit", "tuned")


@dataclass(frozen=True, eq=False)
class TunedLens:
    """Per-layer affine translators ``T_l(h) = h + h A_l^T + b_l`` of one model (:func:`train_tuned_lens`).

    ``weight [n_states, d, d]`` holds A_l and ``bias [n_states, d]`` b_l, float32, indexed by
    residual state (0 = embeddings); the last state's are zero (the identity). ``meta`` records how
    it was trained and evaluated (languages, tokens, steps, seconds, KL per layer).
    """

    model: str
    fingerprint: str
    weight: np.ndarray
    bias: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w, b = np.asarray(self.weight), np.asarray(self.bias)
        if w.ndim != 3 or w.shape[1] != w.shape[2] or b.shape != w.shape[:2]:
            raise LensError(f"a tuned lens needs weight [states, d, d] and bias [states, d], got {w.shape} and {b.shape}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise LensError("the tuned lens has non-finite parameters (training diverged); train it again with a smaller lr")
        w, b = np.array(w, dtype=np.float32), np.array(b, dtype=np.float32)  # own, float32 copies
        for a in (w, b):
            a.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "_torch", (torch.from_numpy(w.copy()), torch.from_numpy(b.copy())))

    @property
    def n_states(self) -> int:
        return int(self.weight.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.weight.shape[1])

    @property
    def digest(self) -> str:
        """SHA-256 of the model fingerprint and the parameters: names this lens in cache keys."""
        h = hashlib.sha256(self.fingerprint.encode())
        h.update(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.bias, dtype=np.float32).tobytes())
        return h.hexdigest()

    def check(self, model: ModelHandle) -> None:
        """:class:`LensError` unless this lens was trained on ``model`` (same fingerprint and shape)."""
        if model.fingerprint != self.fingerprint:
            raise LensError(
                f"this tuned lens was trained on {self.model} (fingerprint {self.fingerprint[:12]}), not on "
                f"{model.name} ({str(model.fingerprint)[:12]}); train one for this model: train_tuned_lens(model)"
            )
        if model.n_states != self.n_states or model.d_model != self.d_model:
            raise LensError(f"the tuned lens has {self.n_states} states of width {self.d_model}; the model has "
                            f"{model.n_states} of width {model.d_model}")

    def translate(self, resid: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """``T_l`` applied to raw states ``resid [len(layers), ..., d]`` (float32 arithmetic, resid's dtype back)."""
        if resid.shape[0] != len(layers) or resid.shape[-1] != self.d_model:
            raise LensError(f"resid of shape {tuple(resid.shape)} does not match {len(layers)} layers of width {self.d_model}")
        bad = [int(l) for l in layers if not 0 <= int(l) < self.n_states]
        if bad:
            raise LensError(f"layers {bad} are outside the lens's 0..{self.n_states - 1}")
        idx = torch.as_tensor([int(l) for l in layers], dtype=torch.long)
        a = self._torch[0][idx].to(resid.device)  # [L, d, d]
        b = self._torch[1][idx].to(resid.device)  # [L, d]
        h = resid.float()
        flat = h.reshape(h.shape[0], -1, h.shape[-1])
        out = flat + torch.bmm(flat, a.transpose(1, 2)) + b[:, None, :]
        return out.reshape(h.shape).to(resid.dtype)

    def save(self, path: str | Path) -> Path:
        """Write the lens to ``path`` (.npz with its meta data as JSON inside); :meth:`load` reads it back."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = json.dumps(json_safe({"model": self.model, "fingerprint": self.fingerprint, "meta": dict(self.meta)}))
        with open(path, "wb") as fh:
            np.savez(fh, weight=self.weight, bias=self.bias, doc=np.frombuffer(doc.encode("utf-8"), dtype=np.uint8))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TunedLens:
        path = Path(path)
        if not path.is_file():
            raise LensError(f"no tuned lens at {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                doc = json.loads(bytes(npz["doc"]).decode("utf-8"))
                return cls(model=doc["model"], fingerprint=doc["fingerprint"], weight=npz["weight"],
                           bias=npz["bias"], meta=doc.get("meta", {}))
        except (KeyError, ValueError, OSError) as exc:
            raise LensError(f"{path} is not a tuned lens written by TunedLens.save ({exc})") from exc

    def validation_table(self):
        """Per layer: the exact KL (bits) of the logit lens and of the fitted translator on the validation
        positions, and whether the layer kept the identity (a DataFrame)."""
        import pandas as pd

        m = self.meta
        if "validation_kl_bits_logit" not in m:
            raise LensError("this lens was trained without validation positions (validation_tokens=0)")
        return pd.DataFrame({"layer": range(self.n_states), "kl_bits_logit": m["validation_kl_bits_logit"],
                             "kl_bits_fitted": m["validation_kl_bits_fitted"],
                             "identity": [l in m["identity_layers"] or l == self.n_states - 1
                                          for l in range(self.n_states)]})

    def __repr__(self) -> str:
        m = self.meta
        langs = ",".join(m.get("languages", [])) or "?"
        return (f"TunedLens({self.model}, {self.n_states} states, trained on {m.get('n_tokens', '?')} tokens of "
                f"{langs} in {m.get('seconds', float('nan')):.0f} s, digest {self.digest[:12]})")


def check_tuned_model(model: ModelHandle) -> Lens:
    """The model's :class:`Lens`, if a tuned lens can be trained on it; :class:`LensError` saying why not."""
    lens = Lens(model)
    if getattr(model.model.config, "is_encoder_decoder", False):
        raise LensError(f"{model.name} is an encoder-decoder model: the tuned lens is trained on decoder-only "
                        "(causal) models here; use the logit lens (lens='logit')")
    if not lens._linear:
        raise LensError(f"the unembedding of {model.name} is not a plain linear layer on this device; the tuned "
                        "lens needs its weight (load the model without offloading the LM head)")
    return lens


def checked_tuned(tuned: Any, model: ModelHandle) -> TunedLens | None:
    """``tuned`` if it is a :class:`TunedLens` of ``model`` (None passes); :class:`LensError` saying why not."""
    if tuned is None:
        return None
    if not isinstance(tuned, TunedLens):
        raise LensError(f"tuned must be a TunedLens (xp.train_tuned_lens(model)), got {type(tuned).__name__}")
    tuned.check(model)
    return tuned
