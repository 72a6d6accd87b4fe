"""The LTX-2 transformer with its blocks streamed (``--offload cpu`` / ``--offload disk``).

Everything but the blocks (embeddings, AdaLN, projections: about 2 % of the weights) is loaded
on the device as usual. Each block's weights go through the same steps ltx-core's model builder
applies to the whole state dict — quantization ops, LoRA fusion (``apply_loras``), dtype cast —
one block at a time, right before the block runs, so a streamed model computes with exactly the
weights a resident one holds.

Where those steps run:

* bf16 (no quantization): the store holds the file's bytes; casting and every LoRA (the user's
  and a stage's, e.g. the distilled LoRA of stage 2) are applied on the device after the copy, so
  switching LoRAs costs nothing and the store is shared by all stages;
* FP8 with ``cpu``: the store holds finished FP8 blocks (half the bytes to move), one store per LoRA
  set, each built in the background the first time that set is asked for;
* FP8 with ``disk``: the file holds bf16, so blocks are quantized on the device after the copy
  (FP8 saves device memory there, not transfer time).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass

import torch
from ltx_core.loader import LoraPathStrengthAndSDOps, SDOps
from ltx_core.loader.fuse_loras import apply_loras
from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
from ltx_core.model.model_protocol import ModelConfigurator
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator, X0Model
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.memory.budget import CONNECTOR_MARK
from ltx_pipelines.memory.mapped import MappedSafetensors
from ltx_pipelines.memory.offload import OffloadMode
from ltx_pipelines.memory.streaming import LayerLayout, LayerStreamer, MappedStore, PinnedStore, transfers_for
from ltx_pipelines.models.fp8 import prepare_quantization

logger = logging.getLogger(__name__)

BLOCKS = "transformer_blocks."
_FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)


def cast_to_compute_dtype(sd: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors to the compute dtype, except FP8 weights and their float32 scales.

    (ltx-core's LoRA fusion leaves the weights no LoRA touches in the file's dtype: this evens them out.)
    """
    out = {}
    for name, tensor in sd.items():
        keep = name.endswith(".weight_scale") or tensor.dtype in _FP8 or not tensor.is_floating_point()
        out[name] = tensor if keep else tensor.to(dtype)
    return out


def materialize_state(
    sd: dict[str, torch.Tensor],
    *,
    device: torch.device,
    dtype: torch.dtype,
    quantization: QuantizationPolicy | None,
    loras: tuple[LoraStateDictWithStrength, ...],
) -> dict[str, torch.Tensor]:
    """What ltx-core's builder does to a state dict before loading it, on part of one (keys as in the model)."""
    sd = {k: v.to(device) for k, v in sd.items()}
    if quantization is not None and quantization.sd_ops is not None:
        sd = {r.new_key: r.new_value for k, v in sd.items() for r in quantization.sd_ops.apply_to_key_value(k, v)}
    target = None if quantization is not None else dtype
    if any(lora.strength != 0 for lora in loras):
        size = sum(v.nbytes for v in sd.values())
        state = StateDict(sd, device, size, {v.dtype for v in sd.values()})
        sd = dict(apply_loras(state, list(loras), dtype=target).sd)
    elif target is not None:
        sd = {k: v.to(target) for k, v in sd.items()}
    return cast_to_compute_dtype(sd, dtype)


def lora_delta(loras: tuple[LoraStateDictWithStrength, ...], module: str, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor | None:  # fmt: skip
    """The summed ``strength * B @ A`` of every LoRA for one module's weight, computed as ltx-core computes it."""
    deltas = []
    for lora, strength in loras:
        a, b = lora.sd.get(f"{module}.lora_A.weight"), lora.sd.get(f"{module}.lora_B.weight")
        if a is None or b is None:
            continue
        deltas.append(torch.matmul(b.to(device) * strength, a.to(device)).to(dtype))
    if not deltas:
        return None
    return deltas[0] if len(deltas) == 1 else torch.sum(torch.stack(deltas, dim=0), dim=0)


def _renamed_keys(mapped: MappedSafetensors, sd_ops: SDOps) -> dict[str, str]:
    """Model key -> file key for every tensor the key ops keep."""
    out = {}
    for file_key in mapped.keys():
        model_key = sd_ops.apply_to_key(file_key)
        if model_key is not None:
            out[model_key] = file_key
    return out


@dataclass
class _LoraFile:
    """A LoRA's factors as mapped views, keys as in the model (read on demand by ``apply_loras``)."""

    lora: LoraPathStrengthAndSDOps
    state: StateDict

    @classmethod
    def open(cls, lora: LoraPathStrengthAndSDOps) -> "_LoraFile":
        mapped = MappedSafetensors(lora.path)
        keys = _renamed_keys(mapped, lora.sd_ops) if lora.sd_ops is not None else {k: k for k in mapped.keys()}
        sd = {model_key: mapped.tensor(file_key) for model_key, file_key in keys.items()}
        return cls(lora, StateDict(sd, torch.device("cpu"), 0, {v.dtype for v in sd.values()}))

    def with_strength(self) -> LoraStateDictWithStrength:
        return LoraStateDictWithStrength(self.state, self.lora.strength)


class StreamedTransformer:
    """Owns the streaming of one transformer: its stores (per LoRA set when they hold FP8), ring and LoRAs."""

    def __init__(
        self,
        *,
        checkpoint_path: str,
        config: dict,
        device: torch.device,
        dtype: torch.dtype,
        mode: OffloadMode,
        quantization: QuantizationPolicy | None,
        loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
        slots: int = 2,
        configurator: type[ModelConfigurator] = LTXModelConfigurator,
    ):
        """``configurator`` builds the (meta-device) model from ``config``: ltx-core's, or LTX-2.5's."""
        if mode not in (OffloadMode.CPU, OffloadMode.DISK):
            raise ValueError(f"streaming needs offload mode cpu or disk, not {mode.value}")
        started = time.perf_counter()
        self.device, self.dtype, self.mode, self.policy = device, dtype, mode, quantization
        self.mapped = MappedSafetensors(checkpoint_path)
        self.keys = _renamed_keys(self.mapped, LTXV_MODEL_COMFY_RENAMING_MAP)
        self._lora_files: dict[str, _LoraFile] = {}
        self.base_loras = tuple(loras)
        self.extra_loras: tuple[LoraPathStrengthAndSDOps, ...] = ()
        with torch.device("meta"):
            model = configurator.from_config(config)
        for op in quantization.module_ops if quantization is not None else ():
            if op.matcher(model):
                model = op.mutator(model)
        self.velocity_model = model
        self._load_rest()
        self.blocks = list(model.transformer_blocks)
        self._template = copy.deepcopy(self.blocks[0])  # an unloaded block, to finish blocks on the host
        self._template_lock = threading.Lock()  # the pinned store reads several blocks at once
        self.transfers = transfers_for(device)
        self.host_finished = quantization is not None and mode is OffloadMode.CPU
        self._stores: dict[tuple, PinnedStore | MappedStore] = {}
        self.streamer = LayerStreamer(self.blocks, self._store(), self.transfers, self._materialize, slots)
        self.streamer.hook()
        self.x0_model = X0Model(model)
        self.x0_model.ltx_streaming = self  # how the ledger and the pass executor recognise a streamed model
        logger.info(
            "Transformer blocks stream from %s (%s, %d device slots of %.2f GiB); rest loaded in %.1f s",
            "pinned host memory" if mode is OffloadMode.CPU else "the memory-mapped checkpoint",
            "FP8" if quantization is not None else str(dtype).removeprefix("torch."), slots,
            self.streamer.store.layout.nbytes / 2**30, time.perf_counter() - started,
        )  # fmt: skip

    # -- LoRAs --------------------------------------------------------------------------------------

    def _lora_states(self, loras: tuple[LoraPathStrengthAndSDOps, ...]) -> tuple[LoraStateDictWithStrength, ...]:
        out = []
        for lora in loras:
            key = f"{lora.path}|{lora.sd_ops.name if lora.sd_ops else ''}"
            if key not in self._lora_files:
                self._lora_files[key] = _LoraFile.open(lora)
            out.append(LoraStateDictWithStrength(self._lora_files[key].state, lora.strength))
        return tuple(out)

    def set_extra_loras(self, loras: tuple[LoraPathStrengthAndSDOps, ...]) -> None:
        """The LoRAs of the next stage, on top of the user's (e.g. stage 2's distilled LoRA)."""
        loras = tuple(loras)
        if loras == self.extra_loras:
            return
        self.extra_loras = loras
        if self.host_finished:  # the store holds finished FP8 blocks: one store per LoRA set
            self.streamer.reset(self._store())

    # -- weights ------------------------------------------------------------------------------------

    def _quantization(self, loras: tuple[LoraPathStrengthAndSDOps, ...]) -> QuantizationPolicy | None:
        """The policy as the ledger would prepare it for this LoRA set (with LoRAs: quantize after fusing)."""
        return prepare_quantization(self.policy, self.device, loras) if self.policy is not None else None

    def _load_rest(self) -> None:
        """Everything outside the blocks, on the device, as the resident builder would load it."""
        sd = {k: self.mapped.tensor(f) for k, f in self.keys.items()
              if not k.startswith(BLOCKS) and CONNECTOR_MARK not in k}  # connectors: the embeddings processor's
        loras = self._lora_states(self.base_loras)
        quantization = self._quantization(self.base_loras)
        sd = materialize_state(sd, device=self.device, dtype=self.dtype, quantization=quantization, loras=loras)
        self.velocity_model.load_state_dict(sd, strict=False, assign=True)

    def _raw_block(self, index: int) -> dict[str, torch.Tensor]:
        prefix = f"{BLOCKS}{index}."
        return {k[len(prefix) :]: self.mapped.tensor(f) for k, f in self.keys.items() if k.startswith(prefix)}

    def _prepared(self, index: int, raw: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """Raw block tensors after quantization ops, LoRA fusion and cast (names relative to the block)."""
        prefix = f"{BLOCKS}{index}."
        all_loras = (*self.base_loras, *self.extra_loras)
        sd = materialize_state(
            {prefix + k: v for k, v in raw.items()}, device=device, dtype=self.dtype,
            quantization=self._quantization(all_loras), loras=self._lora_states(all_loras),
        )  # fmt: skip
        return {k[len(prefix) :]: v for k, v in sd.items()}

    def _finished_block(self, index: int) -> dict[str, torch.Tensor]:
        """Block ``index`` exactly as its module will hold it (FP8 layers quantize as they load).

        Finished on the device (quantizing 35 GiB on the host would take minutes), then packed into the store.
        """
        prepared = self._prepared(index, self._raw_block(index), self.device)
        with self._template_lock:
            self._template.load_state_dict(prepared, strict=True, assign=True)
            finished = {k: v.detach() for k, v in self._template.state_dict().items()}
            self._template.to("meta")
        return finished

    def _store(self) -> PinnedStore | MappedStore:
        key = (self.extra_loras if self.host_finished else (), self.mode)
        if key not in self._stores:
            if self.host_finished:
                read = self._finished_block
            else:
                read = self._raw_block
            layout = LayerLayout.of(read(0))
            cls = PinnedStore if self.mode is OffloadMode.CPU else MappedStore
            self._stores[key] = cls(layout, len(self.blocks), read, self.transfers, name=f"transformer blocks {key}")
        return self._stores[key]

    def _materialize(self, index: int, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.host_finished:
            return views
        if self.policy is None and all(v.dtype == self.dtype for v in views.values() if v.is_floating_point()):
            return self._fused_in_place(index, views)
        return self._prepared(index, views, self.device)

    def _fused_in_place(self, index: int, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """LoRAs added into the slot's own (freshly copied) weights: no second copy of the block on the device.

        The same bits as ltx-core's fusion, which adds each weight to its delta (addition commutes).
        """
        loras = self._lora_states((*self.base_loras, *self.extra_loras))
        if not any(lora.strength != 0 for lora in loras):
            return views
        prefix = f"{BLOCKS}{index}."
        for name, weight in views.items():
            if name.endswith(".weight"):
                delta = lora_delta(loras, prefix + name.removesuffix(".weight"), weight.dtype, weight.device)
                if delta is not None:
                    weight.add_(delta)
        return views

    # -- lifetime -----------------------------------------------------------------------------------

    def park(self) -> None:
        """Free the device for other models: slots go, the non-block weights move to host memory."""
        self.streamer.park()
        _move_rest(self.velocity_model, torch.device("cpu"))

    def unpark(self) -> None:
        if not self.streamer.slots:
            _move_rest(self.velocity_model, self.device)
            self.streamer.unpark()

    def close(self) -> None:
        self.streamer.close()
        for store in self._stores.values():
            store.close()
        self._stores.clear()


def _move_rest(model: torch.nn.Module, device: torch.device) -> None:
    """Move every tensor outside the blocks (the blocks hold none between uses)."""
    for name, param in model.named_parameters():
        if not name.startswith(BLOCKS):
            param.data = param.data.to(device)
    for name, module in model.named_modules():
        if name.startswith(BLOCKS.rstrip(".")):
            continue
        for key, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[key] = buffer.to(device)


def streamed_transformer(model: torch.nn.Module) -> StreamedTransformer | None:
    """The streaming owner of a transformer built by :class:`StreamedTransformer`, else None."""
    return getattr(model, "ltx_streaming", None)


__all__ = ["StreamedTransformer", "cast_to_compute_dtype", "materialize_state", "streamed_transformer"]
