"""``--model-dir``: find every component a pipeline needs in a downloaded folder, by what the files are.

Works on the LTX-2.5 download (``diffusion_models/``, ``text_encoders/``, ``vae/``, ``loras/``,
``latent_upscale_models/``, ``model_patches/``), on a ComfyUI ``models/`` folder holding several models,
and on a flat folder of LTX-2 / 2.3 files with a Gemma-3 folder inside. Files are recognised from their
headers, never their names, except where only the name tells two files of one kind apart (the published
dev and distilled transformers differ only in it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ltx_pipelines.models.checkpoints import read_header
from ltx_pipelines.models.files import ComponentFile, Kind, classify
from ltx_pipelines.models.versions import generation_of, parse_version
from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger(__name__)

#: Folders deeper than this below --model-dir are not searched (a models/ tree is two levels deep).
MAX_DEPTH = 4


@dataclass
class FoundFiles:
    """Everything recognisable under a folder, by kind."""

    root: Path
    files: dict[Kind, list[ComponentFile]] = field(default_factory=dict)
    gemma_roots: list[Path] = field(default_factory=list)

    def of(self, kind: Kind) -> list[ComponentFile]:
        return self.files.get(kind, [])


def _within_depth(root: Path, path: Path) -> bool:
    return len(path.relative_to(root).parts) <= MAX_DEPTH


def _is_gemma_3_folder(config_path: Path) -> bool:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "text_config" in config and config.get("model_type", "gemma3") == "gemma3"


def scan(root: str | Path) -> FoundFiles:
    """Read the header of every ``.safetensors`` under ``root`` (nothing is loaded) and sort them by kind."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise InputError(f"--model-dir {base} does not exist or is not a folder.")
    found = FoundFiles(root=base)
    for path in sorted(base.rglob("*.safetensors")):
        if not _within_depth(base, path) or any(part.startswith(".") for part in path.relative_to(base).parts):
            continue
        header = read_header(path, "file in --model-dir")
        kind = classify(header)
        if kind is Kind.UNKNOWN:
            continue
        info = ComponentFile(header.path, kind, header.config(), dict(header.metadata), frozenset(header.tensors))
        found.files.setdefault(kind, []).append(info)
    for config in sorted(base.rglob("config.json")):
        if _within_depth(base, config) and _is_gemma_3_folder(config):
            found.gemma_roots.append(config.parent)
    return found


def _newest(candidates: list[ComponentFile]) -> list[ComponentFile]:
    """The candidates of the newest model generation among them."""
    if not candidates:
        return []
    newest = max(generation_of(c.model_version).since for c in candidates)
    return [c for c in candidates if generation_of(c.model_version).since == newest]


def _one(candidates: list[ComponentFile], what: str, root: Path) -> ComponentFile:
    if len(candidates) > 1:
        names = ", ".join(str(c.path.relative_to(root)) for c in candidates)
        raise InputError(f"--model-dir {root} holds several {what} files ({names}); name the one to use with its flag.")
    return candidates[0]


def _matching(candidates: list[ComponentFile], model_version: str) -> list[ComponentFile]:
    """Candidates of the transformer's generation (files that declare no version are taken as matching)."""
    wanted = generation_of(model_version)
    return [c for c in candidates if parse_version(c.model_version) is None or generation_of(c.model_version) == wanted]


@dataclass(frozen=True)
class Picked:
    """The files --model-dir found for one pipeline, as the model flags' values (None: not found)."""

    checkpoint_path: Path | None = None
    gemma_root: Path | None = None
    transformer_path: Path | None = None
    text_encoder_path: Path | None = None
    video_vae_path: Path | None = None
    audio_vae_path: Path | None = None
    duration_head_path: Path | None = None
    spatial_upsampler_path: Path | None = None
    distilled_lora_path: Path | None = None

    def given(self) -> dict[str, Path]:
        return {name: value for name, value in vars(self).items() if value is not None}


def pick(found: FoundFiles, *, distilled: bool, vae_decoder: str = "auto") -> Picked:
    """The newest model under the folder: its dev or distilled transformer and the files that go with it.

    Where the folder has both video VAE files of LTX-2.5, the diffusion decoder's is taken (the one the
    reference recommends), the convolutional one with ``vae_decoder="conv"``."""
    models = found.of(Kind.TRANSFORMER) + found.of(Kind.CHECKPOINT)
    if not models:
        raise InputError(f"--model-dir {found.root} holds no LTX transformer or checkpoint (*.safetensors).")
    variant = [m for m in _newest(models) if m.distilled == distilled]
    if not variant:
        want = "distilled" if distilled else "full (dev)"
        have = ", ".join(str(m.path.relative_to(found.root)) for m in _newest(models))
        raise InputError(f"This pipeline needs the {want} model; --model-dir {found.root} has only {have}.")
    model = _one(variant, "transformer" if variant[0].kind is Kind.TRANSFORMER else "checkpoint", found.root)
    common = {
        "spatial_upsampler_path": _optional(found, Kind.UPSAMPLER, model, lambda c: not _temporal(c)),
        "distilled_lora_path": _optional(found, Kind.LORA, model, lambda c: "distilled" in c.path.name.lower()),
        "duration_head_path": _optional(found, Kind.DURATION_HEAD, model),
    }
    if model.kind is Kind.CHECKPOINT:
        gemma = found.gemma_roots[0] if len(found.gemma_roots) == 1 else None
        if len(found.gemma_roots) > 1:
            names = ", ".join(str(p.relative_to(found.root)) for p in found.gemma_roots)
            raise InputError(f"--model-dir {found.root} holds several Gemma folders ({names}); "
                             "name one with --gemma-root.")
        return Picked(checkpoint_path=model.path, gemma_root=gemma, **common)
    video = _matching(found.of(Kind.VIDEO_VAE), model.model_version)
    return Picked(
        transformer_path=model.path,
        text_encoder_path=_required(found, Kind.TEXT_ENCODER, model).path,
        video_vae_path=_video_vae(found, video, vae_decoder),
        audio_vae_path=_required(found, Kind.AUDIO_VAE, model).path,
        **common,
    )


def _temporal(upsampler: ComponentFile) -> bool:
    return bool(upsampler.config.get("temporal_upsample")) and not upsampler.config.get("spatial_upsample", True)


def _optional(found: FoundFiles, kind: Kind, model: ComponentFile, keep=lambda c: True) -> Path | None:  # noqa: ANN001
    candidates = [c for c in _matching(found.of(kind), model.model_version) if keep(c)]
    return _one(candidates, kind.value, found.root).path if candidates else None


def _required(found: FoundFiles, kind: Kind, model: ComponentFile) -> ComponentFile:
    candidates = _matching(found.of(kind), model.model_version)
    if not candidates:
        raise InputError(f"--model-dir {found.root} has the transformer {model.path.name} but no {kind.value} file "
                         "of the same model version; download it into the folder.")  # fmt: skip
    return _one(candidates, kind.value, found.root)


def _video_vae(found: FoundFiles, video: list[ComponentFile], vae_decoder: str) -> Path:
    diffusion = [c for c in video if c.diffusion_decoder]
    conv = [c for c in video if not c.diffusion_decoder]
    if vae_decoder == "conv" or (vae_decoder == "auto" and not diffusion):
        if conv:
            return _one(conv, "convolutional video VAE", found.root).path
        return _missing_vae(found, video, "convolutional", "ltx-2.5-video-vae-conv-*.safetensors")
    if diffusion:
        return _one(diffusion, "diffusion-decoder video VAE", found.root).path
    return _missing_vae(found, video, "diffusion-decoder", "ltx-2.5-video-vae-bf16.safetensors")


def _missing_vae(found: FoundFiles, video: list[ComponentFile], kind: str, name: str) -> Path:
    if video:
        names = ", ".join(c.path.name for c in video)
        raise InputError(f"--model-dir {found.root} has no {kind} video VAE file (only {names}); download it ({name}) "
                         "into the folder, or choose the other decoder with --vae-decoder.")  # fmt: skip
    raise InputError(f"--model-dir {found.root} has no video VAE file; download it into the folder.")


def log_picked(picked: Picked, root: Path) -> None:
    """Say in the log which file --model-dir chose for each flag."""
    for name, value in picked.given().items():
        flag = "--" + name.replace("_", "-").replace("distilled-lora-path", "distilled-lora")
        logger.info("--model-dir: %s %s", flag, value.relative_to(root) if value.is_relative_to(root) else value)


__all__ = ["FoundFiles", "Picked", "log_picked", "pick", "scan"]
