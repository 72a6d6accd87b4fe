"""Reading what a weights file *is* from its safetensors header, without loading it.

Used to catch wrong files (an upsampler passed as the checkpoint, a LoRA with keys
that match nothing, ...) before any model is built, and to pick model-specific
defaults (LTX-2.3 checkpoints use fewer steps and a different STG block).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ltx_pipelines.utils.errors import InputError

_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class SafetensorsHeader:
    """Tensor names, shapes and dtypes plus the free-form metadata of one file."""

    path: Path
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict:
        raw = self.metadata.get("config")
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{self.path}: the 'config' metadata is not valid JSON ({e}).") from e


@lru_cache(maxsize=64)
def _read_header_cached(path: str, mtime: float, size: int) -> SafetensorsHeader:  # noqa: ARG001 (cache keys)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise InputError(f"{path} is not a .safetensors file (too short).")
        (length,) = struct.unpack("<Q", prefix)
        if length <= 0 or length > min(_MAX_HEADER_BYTES, size):
            raise InputError(f"{path} is not a .safetensors file (bad header length).")
        try:
            header = json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path} is not a .safetensors file (unreadable header).") from e
    metadata = header.pop("__metadata__", None) or {}
    tensors = {name: (info["dtype"], tuple(info["shape"])) for name, info in header.items()}
    return SafetensorsHeader(Path(path), tensors, metadata)


def read_header(path: str | Path, what: str = "weights file") -> SafetensorsHeader:
    """Parse the header of a safetensors file; a clear InputError if it is missing or not one."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"The {what} {p} does not exist. Check the path.")
    if not p.is_file():
        raise InputError(f"The {what} {p} is not a file.")
    stat = p.stat()
    try:
        return _read_header_cached(str(p.resolve()), stat.st_mtime, stat.st_size)
    except PermissionError as e:
        raise InputError(f"The {what} {p} cannot be read (permission denied).") from e


@dataclass(frozen=True)
class CheckpointInfo:
    """What an LTX-2 model checkpoint declares about itself."""

    path: Path
    config: dict
    model_version: str
    distilled: bool

    @property
    def is_ltx_2_3(self) -> bool:
        return self.model_version.startswith("2.3")


def inspect_ltx_checkpoint(path: str | Path, what: str = "checkpoint (--checkpoint-path)") -> CheckpointInfo:
    """Check that `path` is an LTX-2 audio-video checkpoint and read its declared facts."""
    header = read_header(path, what)
    config = header.config()
    if "transformer" not in config:
        hint = ""
        if "spatial_upsample" in config or "mid_channels" in config:
            hint = " It looks like a spatial upsampler: pass it with --spatial-upsampler-path."
        elif any(".lora_A." in k for k in header.tensors):
            hint = " It looks like a LoRA: pass it with --lora or --distilled-lora."
        raise InputError(
            f"The {what} {header.path} is not an LTX-2 model checkpoint: its metadata has no "
            f"'transformer' config.{hint}"
        )
    if not any(k.startswith("model.diffusion_model.") for k in header.tensors):
        raise InputError(f"The {what} {header.path} holds no transformer weights ('model.diffusion_model.*').")
    version = header.metadata.get("model_version") or str(config.get("model_version", ""))
    distilled = header.metadata.get("distilled", "").lower() == "true" or "distilled" in header.path.name.lower()
    return CheckpointInfo(path=header.path, config=config, model_version=version, distilled=distilled)


def inspect_upsampler(path: str | Path) -> dict:
    """Check that `path` is a latent spatial upsampler and return its config."""
    what = "spatial upsampler (--spatial-upsampler-path)"
    header = read_header(path, what)
    config = header.config()
    if "transformer" in config:
        raise InputError(
            f"The {what} {header.path} is an LTX-2 model checkpoint, not an upsampler: "
            "pass it with --checkpoint-path."
        )
    if not any(k.startswith("initial_conv.") for k in header.tensors):
        raise InputError(f"The {what} {header.path} does not hold latent-upsampler weights ('initial_conv.*').")
    return config


def lora_target_keys(path: str | Path, what: str = "LoRA") -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Map each module a LoRA file adapts (ComfyUI prefix removed) to its (A, B) shapes."""
    header = read_header(path, what)
    pairs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for key, (_, shape) in header.tensors.items():
        if ".lora_A.weight" not in key:
            continue
        module = key.removeprefix("diffusion_model.").replace(".lora_A.weight", "")
        b_key = key.replace(".lora_A.weight", ".lora_B.weight")
        if b_key not in header.tensors:
            raise InputError(f"The {what} {header.path} has {key} but no matching {b_key}.")
        pairs[module] = (shape, header.tensors[b_key][1])
    if not pairs:
        raise InputError(f"The {what} {header.path} holds no LoRA weights ('*.lora_A.weight' / '*.lora_B.weight').")
    return pairs


def check_lora_matches(lora_path: str | Path, checkpoint_path: str | Path, what: str = "LoRA") -> None:
    """Refuse a LoRA whose keys match no transformer module, or whose shapes do not fit."""
    targets = lora_target_keys(lora_path, what)
    model = read_header(checkpoint_path).tensors
    weights = {
        k.removeprefix("model.diffusion_model.").removesuffix(".weight"): shape
        for k, (_, shape) in model.items()
        if k.startswith("model.diffusion_model.") and k.endswith(".weight")
    }
    matched = [m for m in targets if m in weights]
    if not matched:
        sample = next(iter(targets))
        raise InputError(
            f"The {what} {lora_path} matches no module of the model in {checkpoint_path} "
            f"(e.g. its key '{sample}' has no counterpart). Is it a LoRA for this model?"
        )
    for module in matched:
        (rank_a, in_features), (out_features, rank_b) = targets[module]
        weight_shape = weights[module]
        if rank_a != rank_b or (out_features, in_features) != tuple(weight_shape[:2]):
            raise InputError(
                f"The {what} {lora_path} does not fit the model: '{module}' has LoRA shapes "
                f"A={targets[module][0]}, B={targets[module][1]} but the weight is {weight_shape}."
            )
