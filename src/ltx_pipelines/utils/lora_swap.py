"""Adding and removing LoRAs on a resident transformer, without touching the disk again.

Two-stage pipelines run stage 2 with the distilled LoRA on top of the stage-1
weights. Rebuilding the transformer from the checkpoint for that costs a full read
of the file; instead we add ``strength * B @ A`` to the affected weights in place and
put the original weights back afterwards. The originals are kept exactly (a copy
of each touched weight, on the host when the model is on a GPU), so removal is
bit-exact, and each LoRA file is read once per ledger.

The delta is rounded as ltx-core rounds it when it fuses LoRAs at build time (product in
the LoRA's dtype, then the weight's; several LoRAs summed together): a swapped-in LoRA gives
the very weights a transformer built with it has, and the reference pipeline's frames.
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
        deltas: dict[str, list[torch.Tensor]] = {}
        params = dict(model.named_parameters())
        for lora in loras:
            for module, (a, b) in self._lora_factors(lora).items():
                weight = params.get(f"{module}.weight")
                if weight is None:
                    continue
                delta = torch.matmul(b.to(weight.device) * lora.strength, a.to(weight.device))
                deltas.setdefault(module, []).append(delta.to(weight.dtype))
        for module, parts in deltas.items():
            weight = params[f"{module}.weight"]
            host = "cpu" if weight.device.type == "cuda" else weight.device
            self._backup[module] = weight.detach().to(host, copy=True)
            delta = parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)
            weight.data.copy_(delta + weight.detach())
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
