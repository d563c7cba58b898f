"""A CPU model process for the NDIF server (ndif 0.1.2), whose stock model actor only runs on CUDA.

The stock actor calls ``torch.cuda.set_device``, ``synchronize``, ``empty_cache`` and
``get_device_properties`` and checks that every weight is on a CUDA device; on a machine without a
GPU the first of these fails ("Found no NVIDIA driver on your system"). Here those calls do nothing,
the placement check is skipped and the model is loaded on the CPU. start.sh selects this class with
``NDIF_MODEL_IMPORT_PATH=cpu_actor.CPUModelActor``. For loopback tests only.
"""

import time
import types

import ray
import torch

_PROPS = types.SimpleNamespace(total_memory=64 << 30, name="cpu")
for _name, _fn in {
    "synchronize": lambda *a, **k: None,
    "empty_cache": lambda *a, **k: None,
    "set_device": lambda *a, **k: None,
    "set_per_process_memory_fraction": lambda *a, **k: None,
    "reset_peak_memory_stats": lambda *a, **k: None,
    "memory_allocated": lambda *a, **k: 0,
    "max_memory_allocated": lambda *a, **k: 0,
    "max_memory_reserved": lambda *a, **k: 0,
    "get_device_properties": lambda *a, **k: _PROPS,
}.items():
    setattr(torch.cuda, _name, _fn)

from ndif.services.ray.deployments.modeling import base as _base  # noqa: E402
from ndif.services.ray.deployments.modeling import util as _util  # noqa: E402

_util.verify_device_placement = lambda *a, **k: None
_base.verify_device_placement = lambda *a, **k: None


class CPUModelDeployment(_base.BaseModelDeployment):
    def load_from_disk(self):
        started = time.time()
        model = _base.HuggingFaceModel.from_model_key(
            self.model_key, dispatch=True, dtype=self.dtype_name, device="cpu", **self.kwargs
        )
        model._module.requires_grad_(False)
        _base.logger.info(f"[cpu actor] loaded {self.model_key} on the CPU in {time.time() - started:.1f}s")
        return model

    async def to_cache(self):
        await self.cancel(_base.KILL_REASON_PREEMPTED)
        self.cached = True

    def from_cache(self, gpu_mem_bytes_by_id):
        self.gpu_mem_bytes_by_id = gpu_mem_bytes_by_id
        self.cached = False


@ray.remote(num_cpus=0.5, max_restarts=0)
class CPUModelActor(CPUModelDeployment):
    pass
