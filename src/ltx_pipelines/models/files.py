"""Which file holds which model component, read from the files' own headers before anything loads.

LTX-2 and LTX-2.3 ship one monolithic checkpoint (transformer, VAEs, vocoder, text projection) plus a
Gemma-3 folder; LTX-2.5 ships one file per component (transformer, packed Gemma-4 text encoder, video VAE,
audio VAE, upsampler, LoRAs, duration head). :func:`resolve_model_files` turns either set of paths, or a
downloaded folder (``--model-dir``), into one :class:`ModelFiles` and refuses a wrong or mismatched file
with a message naming the files involved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TypedDict

from ltx_pipelines.models.checkpoints import SafetensorsHeader, read_header
from ltx_pipelines.models.versions import ModelGeneration, generation_of, parse_version
from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger(__name__)


class Kind(str, Enum):
    """What a safetensors file holds, as far as the pipelines care."""

    CHECKPOINT = "monolithic LTX checkpoint"
    TRANSFORMER = "transformer"
    TEXT_ENCODER = "packed text encoder"
    VIDEO_VAE = "video VAE"
    AUDIO_VAE = "audio VAE"
    UPSAMPLER = "spatial upsampler"
    LORA = "LoRA"
    DURATION_HEAD = "duration head"
    UNKNOWN = "unrecognised file"


#: The flag that takes each kind of file (for messages that say what to do).
FLAG_OF = {
    Kind.CHECKPOINT: "--checkpoint-path",
    Kind.TRANSFORMER: "--transformer-path",
    Kind.TEXT_ENCODER: "--text-encoder-path",
    Kind.VIDEO_VAE: "--video-vae-path",
    Kind.AUDIO_VAE: "--audio-vae-path",
    Kind.UPSAMPLER: "--spatial-upsampler-path",
    Kind.LORA: "--lora or --distilled-lora",
    Kind.DURATION_HEAD: "--duration-head-path",
}

_TRANSFORMER_PREFIX = "model.diffusion_model."
CONV_VIDEO_DECODER = "CausalVideoAutoencoder"
#: --vae-decoder: what the video VAE file carries (auto), or insist on one kind.
VAE_DECODERS = ("auto", "diffusion", "conv")


def _json(value: str | None) -> dict:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class ComponentFile:
    """One file and what its header says about it."""

    path: Path
    kind: Kind
    config: dict = field(repr=False)
    metadata: dict[str, str] = field(repr=False)
    tensors: frozenset[str] = field(repr=False)

    @property
    def model_version(self) -> str:
        return self.metadata.get("model_version") or str(self.config.get("model_version", ""))

    @property
    def distilled(self) -> bool:
        """Distilled weights, by the file's metadata or, as the published files are named, its name."""
        return self.metadata.get("distilled", "").lower() == "true" or "distilled" in self.path.name.lower()

    @property
    def gemma_version(self) -> str | None:
        """For a transformer: the text encoder it was trained with; for a packed encoder: what it is."""
        if self.kind is Kind.TEXT_ENCODER:
            return _json(self.metadata.get("gemma_config")).get("gemma_version")
        return _json(self.metadata.get("gemma_source_checkpoint")).get("gemma_version")

    @property
    def video_decoder_class(self) -> str:
        """``CausalVideoAutoencoder`` for the convolutional decoder; anything else is a diffusion decoder."""
        return str(self.config.get("vae", {}).get("_class_name", CONV_VIDEO_DECODER))

    @property
    def diffusion_decoder(self) -> bool:
        """A video VAE file whose decoder is LTX-2.5's diffusion decoder (``CausalDiffusionVAE``)."""
        return self.video_decoder_class != CONV_VIDEO_DECODER


def _has_prefix(tensors: frozenset[str], *prefixes: str) -> bool:
    return any(name.startswith(prefixes) for name in tensors)


def classify(header: SafetensorsHeader) -> Kind:
    """The kind of a file from its config sections and tensor names (never from its file name)."""
    config, names = header.config(), frozenset(header.tensors)
    if "transformer" in config and _has_prefix(names, _TRANSFORMER_PREFIX):
        bundled = any(section in config for section in ("vae", "audio_vae", "vocoder"))
        return Kind.CHECKPOINT if bundled else Kind.TRANSFORMER
    if "gemma_config" in header.metadata or "tokenizer_json" in names:
        return Kind.TEXT_ENCODER
    if any(".lora_A." in name for name in names):
        return Kind.LORA
    if _has_prefix(names, "duration_head."):
        return Kind.DURATION_HEAD
    if _has_prefix(names, "initial_conv."):
        return Kind.UPSAMPLER
    if _has_prefix(names, "audio_vae.", "vocoder."):
        return Kind.AUDIO_VAE
    if _has_prefix(names, "decoder.", "encoder.", "vae.decoder."):
        return Kind.VIDEO_VAE
    return Kind.UNKNOWN


def inspect_file(path: str | Path, what: str) -> ComponentFile:
    """Read one file's header and say what it holds (an InputError if it is missing or not safetensors)."""
    header = read_header(path, what)
    return ComponentFile(header.path, classify(header), header.config(), dict(header.metadata),
                         frozenset(header.tensors))  # fmt: skip


def _a(kind: Kind) -> str:
    return ("an " if kind.value[0] in "aeiou" else "a ") + kind.value


def _hint(found: ComponentFile) -> str:
    """What to do with a file given for the wrong flag."""
    if found.kind not in FLAG_OF:
        return ""
    return f" It looks like {_a(found.kind)}: pass it with {FLAG_OF[found.kind]}."


def expect(path: str | Path, kind: Kind, flag: str) -> ComponentFile:
    """The file given for ``flag``, refused with the right flag named when it holds something else."""
    found = inspect_file(path, f"file given to {flag}")
    if found.kind is not kind:
        raise InputError(f"{flag} expects {_a(kind)}, but {found.path} is not one.{_hint(found)}")
    return found


class ComponentPaths(TypedDict, total=False):
    """Keyword arguments of every pipeline that name split component files (the reference 1.2.0's flags),
    a downloaded folder to find them in, or the separate Gemma that rewrites prompts."""

    transformer_path: str | Path
    text_encoder_path: str | Path
    video_vae_path: str | Path
    audio_vae_path: str | Path
    duration_head_path: str | Path
    model_dir: str | Path
    #: A generative Gemma-3 folder for --enhance-prompt (LTX-2.5's Gemma 4 text encoder only encodes).
    prompt_enhancer_gemma_root: str | Path
    #: Which video decoder (--vae-decoder): "auto" (what the video VAE file carries), "diffusion" or "conv".
    vae_decoder: str


@dataclass(frozen=True)
class ModelFiles:
    """Where each component of one model is: a monolithic checkpoint, or one file per component."""

    transformer: ComponentFile
    video_vae: ComponentFile
    audio_vae: ComponentFile
    #: A Gemma folder (monolithic models) or a packed text-encoder file (split models).
    text_encoder: Path | None
    duration_head: ComponentFile | None = None

    @property
    def split(self) -> bool:
        return self.transformer.kind is Kind.TRANSFORMER

    @property
    def model_version(self) -> str:
        return self.transformer.model_version

    @property
    def generation(self) -> ModelGeneration:
        return generation_of(self.model_version)

    @property
    def image_crf(self) -> int:
        """The CRF conditioning images are re-compressed with when the caller leaves it unset.

        Read, as the reference 1.2.0 does, from the file the image encoder is built from: the video VAE (the
        monolithic checkpoint, or the split / overriding VAE file). A VAE file that declares no
        ``model_version`` gets LTX-2's 33 there, even beside a 2.5 transformer; so does it here (we do not fall
        back to the transformer's version), so that the same files give the reference's frames. The published
        2.5 VAE files are reported to carry their version.
        """
        return generation_of(self.video_vae.model_version).image_crf

    @property
    def config(self) -> dict:
        """The transformer's config (the monolithic checkpoint's whole config)."""
        return self.transformer.config

    def describe(self) -> str:
        """One line for the log: what was picked."""
        if not self.split:
            return f"{self.generation.name} checkpoint {self.transformer.path.name}, text encoder {self.text_encoder}"
        parts = [f"transformer {self.transformer.path.name}", f"text encoder {self.text_encoder.name}",
                 f"video VAE {self.video_vae.path.name}", f"audio VAE {self.audio_vae.path.name}"]  # fmt: skip
        if self.duration_head is not None:
            parts.append(f"duration head {self.duration_head.path.name}")
        return f"{self.generation.name} ({self.model_version or 'no version'}): " + ", ".join(parts)


def check_vae_decoder(vae_decoder: str) -> str:
    """``vae_decoder`` if it is one of :data:`VAE_DECODERS` (an InputError otherwise)."""
    if vae_decoder not in VAE_DECODERS:
        raise InputError(f"--vae-decoder {vae_decoder!r}: choose one of {', '.join(VAE_DECODERS)}.")
    return vae_decoder


def expect_video_vae(path: str | Path, vae_decoder: str = "auto") -> ComponentFile:
    """The video VAE file, checked against --vae-decoder (auto takes whichever decoder the file carries)."""
    vae = expect(path, Kind.VIDEO_VAE, "--video-vae-path")
    check_decoder_kind(vae, vae_decoder)
    return vae


def check_decoder_kind(vae: ComponentFile, vae_decoder: str) -> None:
    """Refuse a video VAE file whose decoder is not the one --vae-decoder asks for."""
    check_vae_decoder(vae_decoder)
    if vae_decoder == "conv" and vae.diffusion_decoder:
        raise InputError(
            f"--vae-decoder conv: {vae.path} holds the diffusion video decoder ({vae.video_decoder_class}); give the "
            "convolutional VAE file published beside it (ltx-2.5-video-vae-conv-*.safetensors) with --video-vae-path."
        )
    if vae_decoder == "diffusion" and not vae.diffusion_decoder:
        raise InputError(
            f"--vae-decoder diffusion: {vae.path} holds the convolutional video decoder; give the diffusion-decoder "
            "VAE file (ltx-2.5-video-vae-bf16.safetensors) with --video-vae-path."
        )


def _same_generation(a: ComponentFile, b: ComponentFile) -> None:
    """Refuse a pair of files from different model generations (where both declare a version)."""
    va, vb = parse_version(a.model_version), parse_version(b.model_version)
    if va is not None and vb is not None and generation_of(a.model_version) != generation_of(b.model_version):
        raise InputError(
            f"{a.path} ({a.kind.value}, model version {a.model_version}) and {b.path} ({b.kind.value}, model "
            f"version {b.model_version}) are from different LTX versions, which do not work together. "
            "Use the files downloaded together for one version."
        )


def resolve_model_files(
    *,
    checkpoint_path: str | Path | None = None,
    gemma_root: str | Path | None = None,
    transformer_path: str | Path | None = None,
    text_encoder_path: str | Path | None = None,
    video_vae_path: str | Path | None = None,
    audio_vae_path: str | Path | None = None,
    duration_head_path: str | Path | None = None,
    vae_decoder: str = "auto",
) -> ModelFiles:
    """Check the given paths and say which file holds each component (nothing is loaded).

    Monolithic: ``checkpoint_path`` (+ ``gemma_root``); ``video_vae_path`` may replace the checkpoint's VAE.
    Split: ``transformer_path``, ``text_encoder_path``, ``video_vae_path`` and ``audio_vae_path``.
    """
    split_given = [flag for flag, value in (("--transformer-path", transformer_path),
                                            ("--text-encoder-path", text_encoder_path),
                                            ("--audio-vae-path", audio_vae_path)) if value is not None]  # fmt: skip
    if checkpoint_path is not None and split_given:
        raise InputError(f"--checkpoint-path is a monolithic checkpoint; {', '.join(split_given)} name split "
                         "component files. Give one or the other.")  # fmt: skip
    if checkpoint_path is not None:
        return _monolithic(checkpoint_path, gemma_root, video_vae_path, duration_head_path, vae_decoder)
    if transformer_path is None:
        raise InputError("No model given: pass --checkpoint-path (LTX-2, LTX-2.3), the component files "
                         "(--transformer-path, --text-encoder-path, --video-vae-path, --audio-vae-path) "
                         "or --model-dir.")
    return _split(transformer_path, text_encoder_path, video_vae_path, audio_vae_path, duration_head_path, gemma_root,
                  vae_decoder)  # fmt: skip


def _monolithic(checkpoint: str | Path, gemma_root: str | Path | None, video_vae: str | Path | None,
                duration_head: str | Path | None, vae_decoder: str = "auto") -> ModelFiles:  # fmt: skip
    found = inspect_file(checkpoint, "checkpoint (--checkpoint-path)")
    if found.kind is Kind.TRANSFORMER:
        raise InputError(f"{found.path} holds only the transformer (an LTX-2.5 style split file): pass it with "
                         "--transformer-path, with --text-encoder-path, --video-vae-path and --audio-vae-path, "
                         "or point --model-dir at the downloaded folder.")  # fmt: skip
    if found.kind is not Kind.CHECKPOINT:
        raise InputError(
            f"The checkpoint (--checkpoint-path) {found.path} is not an LTX model checkpoint.{_hint(found)}"
        )
    vae = expect_video_vae(video_vae, vae_decoder) if video_vae is not None else found
    if vae is found:
        check_decoder_kind(found, vae_decoder)
    else:
        _same_generation(found, vae)
    head = expect(duration_head, Kind.DURATION_HEAD, "--duration-head-path") if duration_head is not None else None
    if head is None and _has_prefix(found.tensors, "duration_head."):
        head = found  # a checkpoint that bundles its duration head
    root = Path(gemma_root).expanduser() if gemma_root is not None else None
    return ModelFiles(transformer=found, video_vae=vae, audio_vae=found, text_encoder=root, duration_head=head)


def _split(transformer: str | Path, text_encoder: str | Path | None, video_vae: str | Path | None,
           audio_vae: str | Path | None, duration_head: str | Path | None,
           gemma_root: str | Path | None, vae_decoder: str = "auto") -> ModelFiles:  # fmt: skip
    missing = [flag for flag, value in (("--text-encoder-path", text_encoder), ("--video-vae-path", video_vae),
                                        ("--audio-vae-path", audio_vae)) if value is None]  # fmt: skip
    if missing:
        raise InputError(f"--transformer-path is one component of a split model; also give {', '.join(missing)} "
                         "(or --model-dir with the downloaded folder).")  # fmt: skip
    if gemma_root is not None:
        raise InputError("--gemma-root is the Gemma folder of a monolithic checkpoint; a split model takes its text "
                         "encoder file with --text-encoder-path.")  # fmt: skip
    dit = expect(transformer, Kind.TRANSFORMER, "--transformer-path")
    encoder = expect(text_encoder, Kind.TEXT_ENCODER, "--text-encoder-path")
    vae = expect_video_vae(video_vae, vae_decoder)
    audio = expect(audio_vae, Kind.AUDIO_VAE, "--audio-vae-path")
    head = expect(duration_head, Kind.DURATION_HEAD, "--duration-head-path") if duration_head is not None else None
    for other in (vae, audio, head):
        if other is not None:
            _same_generation(dit, other)
    _check_text_encoder(dit, encoder)
    return ModelFiles(transformer=dit, video_vae=vae, audio_vae=audio, text_encoder=encoder.path, duration_head=head)


#: From this version on a transformer must name its text encoder (``gemma_source_checkpoint.gemma_version``).
GEMMA_VERSION_REQUIRED_SINCE = (2, 4)


def _check_text_encoder(transformer: ComponentFile, encoder: ComponentFile) -> None:
    """The packed encoder must be the one the transformer was trained with (the 1.2.0 reference's rule).

    A transformer that names its Gemma (``gemma_source_checkpoint``) takes exactly that one: a stock Gemma,
    which declares no ``gemma_version``, is refused. One from 2.4 on that names none takes an encoder that
    declares none either (with a warning); older transformers were trained with Gemma 3 only.
    """
    wanted, have = transformer.gemma_version, encoder.gemma_version
    if wanted is not None:
        if have != wanted:
            what = f"declares {have!r}" if have else "declares no gemma_version (a stock Gemma, not LTX's fine-tune)"
            raise InputError(f"The transformer {transformer.path} was trained with the text encoder {wanted!r}, "
                             f"but {encoder.path} {what}. Use the text encoder file published with this model.")
        return
    version = parse_version(transformer.model_version)
    if version is not None and version >= GEMMA_VERSION_REQUIRED_SINCE:
        if have is not None:
            raise InputError(f"The transformer {transformer.path} (model version {transformer.model_version}) does not "
                             f"say which text encoder it was trained with (no gemma_source_checkpoint), so "
                             f"{encoder.path} ({have!r}) cannot be checked against it. Use the transformer file "
                             "published with this text encoder.")  # fmt: skip
        logger.warning("Neither %s nor %s names a Gemma version: check that they belong together.",
                       transformer.path.name, encoder.path.name)  # fmt: skip
        return
    model_type = _json(encoder.metadata.get("gemma_config")).get("model_type")
    raise InputError(f"The transformer {transformer.path} (model version {transformer.model_version or 'none'}) "
                     f"predates Gemma 4 text encoders; {encoder.path} is a packed {model_type or 'untyped'} Gemma. "
                     "Use the text encoder published with this transformer.")  # fmt: skip


__all__ = ["CONV_VIDEO_DECODER", "ComponentFile", "ComponentPaths", "FLAG_OF", "Kind", "ModelFiles", "VAE_DECODERS",
           "check_vae_decoder", "classify", "expect", "expect_video_vae", "inspect_file", "resolve_model_files"]  # fmt: skip
