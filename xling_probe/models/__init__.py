"""Models: loading (hub id, folder, .gguf, or a built model), architecture knowledge, GGUF conversion and
the hooking backends. ``load_model`` returns a :class:`ModelHandle`, the one object the later stages take.

- :mod:`.loading`: :func:`load_model`, :class:`ModelHandle`, devices, dtypes, fingerprints.
- :mod:`.arch`: the only module that knows where each architecture keeps its blocks, final norm and unembedding.
- :mod:`.convert`: the once-per-machine GGUF -> Hugging Face conversion of the offline default model.
- :mod:`.tl_bridge`: TransformerLens 4's ``TransformerBridge`` booted from the loaded model.
"""

from .loading import BACKENDS, DEFAULT_MODEL, ModelHandle, fingerprint, load_model

__all__ = ["BACKENDS", "DEFAULT_MODEL", "ModelHandle", "fingerprint", "load_model"]
