"""The Gemma text encoder with its decoder layers streamed by layer (prompt encoding in a 6-16 GiB budget).

Gemma-3 12B is about 22.7 GiB in bf16 (24.4 GB): 48 decoder layers of 0.42 GiB (20 GiB together), the
token embedding (262 208 x 3840: 1.9 GiB, which the tied ``lm_head`` shares), the vision tower
(0.8 GiB) and a few norms and rotary buffers. Built here, the same module the ledger's resident
build makes (same configurator, module ops, key ops and dtype, through the ledger's own
``SingleGPUModelBuilder``), except that:

* the **decoder layers** hold no weights (meta tensors) between uses: a :class:`LayerStreamer`
  copies each one into a ring of device slots just before it runs, from a :class:`MappedStore`
  over the memory-mapped shard files. Always the mapped store, in ``cpu`` mode too: Gemma runs
  once per prompt, and pinning its 20 GiB would cost ~10 s and the host memory that the
  transformer's pinned blocks need next;
* the **token embedding and the tied lm_head stay in host memory**: hooks move the token ids to
  the CPU and the result back to the device. On the device the embedding alone would take 1.9 GiB,
  more than the ring of two layers (0.84 GiB) and the vision tower (0.8 GiB) together, and would
  leave a 6 GiB budget (5.25 GiB usable) almost nothing for the activations; on the CPU looking up
  a prompt's rows costs microseconds. The lm_head only runs for prompt enhancement (one row of
  logits per generated token), where moving 20 GiB of layers per token costs far more anyway;
* everything else (final norm, rotary buffers, vision tower, projector) is loaded on the device.

LTX-2.5's Gemma 4 (from its packed file) streams the same way; its global layers are wider than its sliding
ones (and may share keys and values), so each layer packs its own way into slots of the largest one's size.

The result equals the resident encoder's bit for bit on the CPU: the same bytes, cast the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from ltx_core.loader import SingleGPUModelBuilder

from ltx_pipelines.memory.host import GIB
from ltx_pipelines.memory.mapped import MappedSafetensors
from ltx_pipelines.memory.streaming import LayerStreamer, MappedStore, MixedLayout, transfers_for

logger = logging.getLogger(__name__)

#: Module paths inside ltx-core's GemmaTextEncoder (its ``.model`` is a Gemma3ForConditionalGeneration or, for
#: LTX-2.5, a Gemma4UnifiedForConditionalGeneration: the same paths).
LAYERS = "model.model.language_model.layers"
HOST_MODULES = ("model.model.language_model.embed_tokens", "model.lm_head")
HOST = torch.device("cpu")


@dataclass(frozen=True)
class _Source:
    """Where one model tensor lives: a mapped shard file and the key in it."""

    file: MappedSafetensors
    key: str

    def tensor(self) -> torch.Tensor:
        return self.file.tensor(self.key)


def _route_keys(builder: SingleGPUModelBuilder) -> dict[str, _Source]:
    """Model key (after the builder's key ops) -> its file, over every shard."""
    paths = builder.model_path if isinstance(builder.model_path, tuple) else (builder.model_path,)
    routes: dict[str, _Source] = {}
    for path in paths:
        mapped = MappedSafetensors(path)
        for file_key in mapped.keys():
            model_key = builder.model_sd_ops.apply_to_key(file_key) if builder.model_sd_ops else file_key
            if model_key is not None:
                routes[model_key] = _Source(mapped, file_key)
    return routes


class StreamedTextEncoder:
    """Owns the streaming of one Gemma text encoder: the mapped files, the staging store and the ring."""

    def __init__(self, builder: SingleGPUModelBuilder, *, device: torch.device, dtype: torch.dtype, slots: int = 2):
        started = time.perf_counter()
        self.device, self.dtype = device, dtype
        self.encoder = builder.meta_model(builder.model_config(), builder.module_ops)
        routes = _route_keys(builder)
        self._layer_sources = self._split_layers(routes)
        host_bytes = self._load_rest(builder, routes)
        self.layers = list(self.encoder.get_submodule(LAYERS))
        if len(self.layers) != len(self._layer_sources):
            raise RuntimeError(f"The Gemma weights hold {len(self._layer_sources)} decoder layers; the config "
                               f"says {len(self.layers)}.")  # fmt: skip
        self.transfers = transfers_for(device)
        # Gemma 4's global layers are wider than its sliding ones: then each layer packs its own way.
        layout = MixedLayout.of([self._read_layer(index) for index in range(len(self.layers))])
        self.store = MappedStore(layout, len(self.layers), self._read_layer, self.transfers, name="Gemma layers")
        self.streamer = LayerStreamer(self.layers, self.store, self.transfers, self._materialize, slots)
        self.streamer.hook()
        # After a whole pass (an encode, or one generate step) no layer keeps weights on the device.
        self.encoder.get_submodule(LAYERS.rsplit(".", 1)[0]).register_forward_hook(
            lambda module, args, output: self.streamer.release()
        )
        self._keep_on_host()
        self._encode_onto_device()
        self.encoder.ltx_streaming = self  # how the ledger recognises a streamed encoder
        logger.info(
            "Gemma text encoder streamed by layer: %d layers from the memory-mapped weights through %d device "
            "slots of %s; token embedding and lm_head (%s) in host memory; rest loaded in %.1f s",
            len(self.layers), slots, _size(layout.nbytes), _size(host_bytes), time.perf_counter() - started,
        )  # fmt: skip

    # -- weights ------------------------------------------------------------------------------------

    @staticmethod
    def _split_layers(routes: dict[str, _Source]) -> list[dict[str, _Source]]:
        """Take the decoder layers' keys out of ``routes``: per layer, name inside the layer -> source."""
        prefix = LAYERS + "."
        per_layer: dict[int, dict[str, _Source]] = {}
        for key in [k for k in routes if k.startswith(prefix)]:
            index, name = key[len(prefix) :].split(".", 1)
            per_layer.setdefault(int(index), {})[name] = routes.pop(key)
        if sorted(per_layer) != list(range(len(per_layer))):
            raise RuntimeError(f"The Gemma weights have gaps in their decoder layers: {sorted(per_layer)}.")
        return [per_layer[i] for i in range(len(per_layer))]

    def _read_layer(self, index: int) -> dict[str, torch.Tensor]:
        return {name: source.tensor() for name, source in self._layer_sources[index].items()}

    def _materialize(self, index: int, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: ARG002
        """A layer's weights from its device slot: cast as the resident build casts them (a view when equal)."""
        return {name: view.to(self.dtype) for name, view in views.items()}

    def _load_rest(self, builder: SingleGPUModelBuilder, routes: dict[str, _Source]) -> int:
        """Everything but the layers, through the builder's key ops; returns the bytes kept in host memory.

        The host tensors are views of the mapped file where the dtype already matches (page cache, no
        private copy); the embedding and the lm_head share one tensor, as in the file.
        """
        host_prefixes = tuple(name + "." for name in HOST_MODULES)
        sd, host_tensors = {}, {}
        for key, source in routes.items():
            value = source.tensor().to(self.dtype)  # once, before the key ops copy it to the lm_head
            results = builder.model_sd_ops.apply_to_key_value(key, value) if builder.model_sd_ops else [(key, value)]
            for new_key, new_value in results:
                if new_key.startswith(host_prefixes):
                    sd[new_key] = new_value
                    host_tensors[new_value.data_ptr()] = new_value.nbytes
                else:
                    sd[new_key] = new_value.to(self.device, copy=True)
        self.encoder.load_state_dict(sd, strict=False, assign=True)
        self._move_buffers()
        missing = [name for name, t in (*self.encoder.named_parameters(), *self.encoder.named_buffers())
                   if t.is_meta and not name.startswith(LAYERS + ".")]  # fmt: skip
        if missing:
            raise RuntimeError(f"The Gemma weights lack {len(missing)} tensors outside the layers: {missing[:5]}")
        return sum(host_tensors.values())

    def _move_buffers(self) -> None:
        """The buffers the module ops made on the CPU (rotary frequencies, ...) to the device, but the host ones."""
        for name, module in self.encoder.named_modules():
            if name.startswith(LAYERS) or name in HOST_MODULES:
                continue
            for key, buffer in module._buffers.items():
                if buffer is not None and not buffer.is_meta:
                    module._buffers[key] = buffer.to(self.device)

    def _keep_on_host(self) -> None:
        """The embedding and lm_head compute on the CPU: inputs go to the host, outputs to the device."""
        for name in HOST_MODULES:
            module = self.encoder.get_submodule(name)
            module.register_forward_pre_hook(lambda module, args: tuple(a.to(HOST) for a in args))
            module.register_forward_hook(lambda module, args, output: output.to(self.device))

    def _encode_onto_device(self) -> None:
        """``encode``'s hidden states and mask on the device, like a resident encoder's.

        ltx-core makes the token ids and the mask on ``model.device``, the device of the model's first parameter:
        for Gemma 4 that is the token embedding, kept in host memory here, so the mask would stay on the host.
        """
        encode = self.encoder.encode

        def encode_on_device(*args: object, **kwargs: object) -> tuple:
            states, mask = encode(*args, **kwargs)
            return tuple(state.to(self.device) for state in states), mask.to(self.device)

        self.encoder.encode = encode_on_device

    # -- lifetime -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the device slots and stop the staging reader (the module is unusable afterwards)."""
        self.streamer.close()
        self.store.close()


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB" if nbytes >= GIB // 10 else f"{nbytes / 2**20:.2f} MiB"


def build_streamed_text_encoder(builder: SingleGPUModelBuilder, *, device: torch.device, dtype: torch.dtype,
                                slots: int = 2) -> torch.nn.Module:  # fmt: skip
    """The text encoder ``builder.build(device, dtype)`` would make, with its decoder layers streamed."""
    return StreamedTextEncoder(builder, device=device, dtype=dtype, slots=slots).encoder


def close_streamed_text_encoder(model: torch.nn.Module) -> None:
    """Stop the streaming of an encoder built here (a no-op for any other module)."""
    owner = getattr(model, "ltx_streaming", None)
    if isinstance(owner, StreamedTextEncoder):
        owner.close()


__all__ = ["StreamedTextEncoder", "build_streamed_text_encoder", "close_streamed_text_encoder"]
