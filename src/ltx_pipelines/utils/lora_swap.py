"""Adding and removing LoRAs on a resident transformer, without touching the disk again.

Two-stage pipelines run stage 2 with the distilled LoRA on top of the stage-1
weights. Rebuilding the transformer from the checkpoint for that costs a full read
of the file; instead we add ``strength * B @ A`` to the affected weights in place and
put the original weights back afterwards. The originals are kept exactly (a copy
of each touched weight, on the host when the model is on a GPU), so removal is
bit-exact, and each LoRA file is read once per ledger.
"""

from __future__ import annotations

import logging
import time

import torch
from ltx_core.loader import LoraPathStrengthAndSDOps, SafetensorsStateDictLoader

logger = logging.getLogger(__name__)


class LoraSwapper:
    """Applies one set of LoRAs at a time to a model's weights, reversibly."""

    def __init__(self, on_file_read: callable | None = None):
        self._factors: dict[tuple[str, str], dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._backup: dict[str, torch.Tensor] = {}
        self.active: tuple[LoraPathStrengthAndSDOps, ...] = ()
        self._on_file_read = on_file_read

    def _lora_factors(self, lora: LoraPathStrengthAndSDOps) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Module name -> (A, B), read from the file the first time only."""
        key = (lora.path, lora.sd_ops.name if lora.sd_ops else "")
        if key not in self._factors:
            state = SafetensorsStateDictLoader().load(lora.path, sd_ops=lora.sd_ops).sd
            factors = {}
            for name, a in state.items():
                if name.endswith(".lora_A.weight"):
                    module = name[: -len(".lora_A.weight")]
                    factors[module] = (a, state[f"{module}.lora_B.weight"])
            self._factors[key] = factors
            if self._on_file_read:
                self._on_file_read(lora.path)
        return self._factors[key]

    def set(self, model: torch.nn.Module, loras: tuple[LoraPathStrengthAndSDOps, ...]) -> None:
        """Make `loras` the applied set (removing whatever was applied before)."""
        if tuple(loras) == self.active:
            return
        started = time.perf_counter()
        self.restore(model)
        deltas: dict[str, torch.Tensor] = {}
        params = dict(model.named_parameters())
        for lora in loras:
            for module, (a, b) in self._lora_factors(lora).items():
                weight = params.get(f"{module}.weight")
                if weight is None:
                    continue
                delta = (b.to(weight.device, torch.float32) * lora.strength) @ a.to(weight.device, torch.float32)
                deltas[module] = deltas[module] + delta if module in deltas else delta
        for module, delta in deltas.items():
            weight = params[f"{module}.weight"]
            host = "cpu" if weight.device.type == "cuda" else weight.device
            self._backup[module] = weight.detach().to(host, copy=True)
            weight.data.copy_((weight.detach().float() + delta).to(weight.dtype))
        self.active = tuple(loras)
        if loras:
            logger.info("Applied %d LoRA(s) to %d weights in memory in %.1f s", len(loras), len(deltas), time.perf_counter() - started)

    def restore(self, model: torch.nn.Module) -> None:
        """Put back the exact original weights."""
        if not self._backup:
            self.active = ()
            return
        params = dict(model.named_parameters())
        for module, original in self._backup.items():
            params[f"{module}.weight"].data.copy_(original.to(params[f"{module}.weight"].device))
        self._backup.clear()
        self.active = ()
