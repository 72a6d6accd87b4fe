"""Golden fixtures of the reference 1.2.0's eight PIPELINES, run on our LTX-2.5 smoke bundle in float32 on the CPU.

The reference is the upstream LTX-2 repository at release 1.2.0. This script runs in the reference's own
Python environment and imports only the reference, torch, numpy, PyAV and safetensors -- never our package
-- so every number it writes is the reference's. ``tests/test_ltx25_pipelines.py`` runs the same
requests through our pipelines and compares.

Regenerate (a minute or two on one CPU thread)::

    # 1. the bundle, written by OUR package (the reference env does not have it):
    .venv/bin/python -m ltx_pipelines.smoke_model --model-version 2.5 --real-channels /tmp/ltx25-real
    # 2. the fixtures, computed by the reference:
    /work/refenv/venv/bin/python tests/golden/make_ltx25_pipeline_goldens.py /tmp/ltx25-real tests/golden/ltx25

The bundle has the REAL latent channel counts (128 video, 8 audio z-channels; 4 transformer blocks):
the reference hard-codes them (e.g. ``channels=8, mel_bins=16`` for a2vid's audio latent, and its
pipelines fail on the 16-channel default bundle with a shape error in ``patchify_proj``). With 4
blocks, every guided case names its STG block explicitly (block 1). The manifest records the sha256 of
every bundle file; the test rebuilds the bundle with our writer and checks them, so a changed writer
fails loudly instead of comparing against other weights.

Running the reference in float32 (it hard-codes bfloat16). Each patch is scoped to one case and undone after
(paths are the reference's ``packages/ltx-pipelines/src/ltx_pipelines/...`` unless they name ltx-core):

1. ``torch.bfloat16`` reads as ``torch.float32`` inside the eight pipeline modules (``ltx_pipelines.<name>``):
   their module global ``torch`` is swapped for a proxy that answers ``bfloat16`` with float32 and passes
   everything else through. This covers, with one mechanism, every literal the reference hard-codes there:
   ``self.dtype`` in ``__init__`` (which sizes every block it builds: prompt encoder, image/audio
   conditioner, diffusion stages, upsampler, decoders, duration head) and the local ``dtype`` of
   ``__call__`` (image/video conditioning encodes and the default ``vae_dtype``). The ancestral loop of
   distilled stage 1 follows (``model_dtype=self.dtype``), and so do noise tensors (latent dtype).
2. ``ti2vid_two_stages_hq.res2s_audio_video_denoising_loop`` is wrapped with ``model_dtype=float32``: HQ
   passes the loop without ``model_dtype``, whose default is bfloat16 (latents cast to bf16 every step).
3. The transformer is built in the stage's dtype: ``DiffusionStage._build_transformer`` is wrapped to pass
   ``dtype=self._dtype``. The reference's standard (non-streaming) path builds it with no dtype
   (``utils/blocks.py:480-482``, called at ``:545``), i.e. in the FILE's dtype -- bfloat16 for every published
   2.5 file and for the smoke bundle -- whatever the pipeline dtype is (only the streaming path passes it).
4. LoRA fusion: every pipeline is given ``quantization=QuantizationPolicy(fuse_rule=FLOAT32_FUSE_RULE)``
   (its public argument; no sd_ops, module_ops or configurator, so nothing else changes). The default
   ``bf16_fuse_rule`` computes ``(B * strength) @ A`` in bf16 and rounds ``W + delta`` to the file's bf16;
   this rule keeps the first (the aggregation dtype stays bf16) and drops the rounding: ``W + delta`` is
   added and kept in float32. (With a float32 aggregation the reference would also cast A and B to float32
   before their product, ``ltx_core/loader/fuse_loras.py:189-203``, a float32 delta that neither
   reference release nor our pipelines compute.)
5. Nothing is needed for the vocoder: built in float32 (by 1.), its ``autocast("cpu", float32)`` is refused
   by torch with a warning and the float32 input meets float32 weights.

Every model the reference builds is checked to hold only float32 floating tensors (``check_built_float32``);
the script stops otherwise. Prompt enhancement stays off; every request gives ``num_frames`` except
``distilled_auto_duration`` (the duration head picks it); one CPU thread and ``MKL_CBWR=AUTO,STRICT``, like
our tests. Left as the reference has it: its memory-efficient conv VAE decoder (``utils/blocks.py:1059,1089-1095``,
in-place norms), whose frames are 1-2 ulp from ltx-core's plain decoder.

What it writes into OUT_DIR:

* ``pipelines.safetensors``: per case ``<case>.frames`` (float16 [F, H, W, 3] in [0, 1]: what the
  pipeline's frame iterator yields, before any uint8/mp4 encoding), ``<case>.audio`` (float32
  [channels, samples], the returned ``Audio``'s waveform) and, for cases with images, ``<case>.image_pixels.<i>``
  (float32 [1, 3, 1, H, W]): each conditioning image as the reference prepared it for its VAE encoder
  (observed in ``utils.helpers.load_image_and_preprocess``, not changed), so that a test can check everything
  downstream of the image preparation on its own.
* ``pipelines_inputs/``: the media the requests read (two PNGs, an H.264+PCM clip, a wav), written once
  and reused (an encoder version must not change them under the fixtures).
* ``pipelines_manifest.json``: upstream commit, ``pip freeze``, the bundle's sizes and sha256s, the
  float32 patches, each case's arguments (paths as ``$BUNDLE/...`` / ``$INPUTS/...``) and float32
  statistics of its outputs (sha256 of the float32 frames and of their uint8 truncation
  ``(x * 255).to(uint8)``, mean/std/min/max, audio sha256 and stats).
"""

from __future__ import annotations

import os

# Before torch loads MKL: float32 matmuls whose result does not depend on the buffers' memory alignment (by
# default MKL picks kernels by alignment, so the same product can differ in the last bit from one run or
# code path to another). Our test runs under the same setting (tests/conftest.py).
os.environ["MKL_CBWR"] = "AUTO,STRICT"

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: media_inputs, shared with the parity test

from ltx25_requests import CLASSES, decode_arguments, resolve
from ltx_core.loader.fuse_loras import FuseRule
from ltx_core.loader.primitives import StateDict
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.quantization import QuantizationPolicy
from make_ltx25_goldens import provenance, require_reference
from media_inputs import write_clip, write_image, write_wav
from safetensors.torch import save

GENERATOR = "tests/golden/make_ltx25_pipeline_goldens.py"
FIXTURE = "pipelines.safetensors"
MANIFEST = "pipelines_manifest.json"
INPUTS = "pipelines_inputs"

#: The bundle the fixtures are made on: our LTX-2.5 writer with REAL_CHANNEL_SIZES, seed 0.
BUNDLE_SIZES = {"video_latent_channels": 128, "audio_z_channels": 8, "transformer_layers": 4,
                "decoder_noise": True, "attention_heads": 2}  # fmt: skip
BUNDLE_SEED = 0

PROMPT = "a red fox runs through fresh snow, camera follows"
NEGATIVE = "blurry, low quality"
SEED = 42
FPS = 24.0
FRAMES = 9
STEPS = 3
STG_BLOCKS = [1]  # the bundle has 4 blocks; the 2.5 default (28) does not exist in it
GUIDED_VIDEO = {"cfg_scale": 3.0, "stg_scale": 1.0, "stg_blocks": STG_BLOCKS, "rescale_scale": 0.7,
                "modality_scale": 3.0, "skip_step": 0}  # fmt: skip
GUIDED_AUDIO = {**GUIDED_VIDEO, "cfg_scale": 7.0}
HQ_VIDEO = {"cfg_scale": 3.0, "stg_scale": 0.0, "stg_blocks": [], "rescale_scale": 0.45, "modality_scale": 3.0,
            "skip_step": 0}  # fmt: skip
HQ_AUDIO = {**HQ_VIDEO, "cfg_scale": 7.0, "rescale_scale": 1.0}


# --------------------------------------------------------------------------- the requests


def _model(distilled: bool) -> dict[str, str]:
    """The split files of the bundle, as ModelPaths.from_split / our pipelines' keyword arguments name them."""
    kind = "distilled" if distilled else "dev"
    return {
        "transformer_path": f"$BUNDLE/diffusion_models/ltx-2.5-smoke-{kind}-transformer.safetensors",
        "text_encoder_path": "$BUNDLE/text_encoders/gemma4-smoke-with-proj-ltx-2.5.safetensors",
        "video_vae_path": "$BUNDLE/vae/ltx-2.5-smoke-video-vae-conv.safetensors",
        "audio_vae_path": "$BUNDLE/vae/ltx-2.5-smoke-audio-vae.safetensors",
        "duration_head_path": "$BUNDLE/model_patches/ltx-2.5-smoke-duration-head.safetensors",
    }


UPSAMPLER = "$BUNDLE/latent_upscale_models/ltx-2.5-smoke-latent-spatial-upscaler-x2.safetensors"
DISTILLED_LORA = "$BUNDLE/loras/ltx-2.5-smoke-distilled-lora.safetensors"
IC_LORA = "$BUNDLE/loras/ltx-2.5-smoke-ic-lora.safetensors"
IMAGE, IMAGE_2 = "$INPUTS/image.png", "$INPUTS/image2.png"
CLIP, AUDIO = "$INPUTS/clip.mov", "$INPUTS/audio.wav"


def cases() -> dict[str, dict]:
    """Per case: pipeline module, model files, constructor and call arguments (JSON values), and what it covers."""
    distilled_init = {"spatial_upsampler_path": UPSAMPLER, "loras": []}
    two_stage_init = {"distilled_lora": [[DISTILLED_LORA, 0.8]], "spatial_upsampler_path": UPSAMPLER, "loras": []}
    common = {"seed": SEED, "height": 64, "width": 64, "num_frames": FRAMES, "frame_rate": FPS}
    tall = {**common, "height": 128}  # non-square: a height/width mix-up shows
    guided = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "num_inference_steps": STEPS,
              "video_guider_params": GUIDED_VIDEO, "audio_guider_params": GUIDED_AUDIO}  # fmt: skip
    # fmt: off
    return {
        "distilled_t2v": {
            "pipeline": "distilled", "model": _model(True), "init": distilled_init,
            "call": {"prompt": PROMPT, **common, "images": []},
            "covers": "distilled stage 1 Euler-ancestral (noise seed + 10000), stage 2 Euler, stage-2 audio",
        },
        "distilled_i2v": {
            "pipeline": "distilled", "model": _model(True), "init": distilled_init,
            "call": {"prompt": PROMPT, **tall, "images": [[IMAGE, 0, 1.0]]},
            "covers": "image at frame 0 (CRF left unset: resolved from the VAE's model_version), 128x64",
        },
        "distilled_auto_duration": {
            "pipeline": "distilled", "model": _model(True), "init": distilled_init,
            "call": {"prompt": PROMPT, **common, "num_frames": {"auto_duration": [0.25, 1.5]}, "images": []},
            "covers": "num_frames from the duration head (AutoDuration 0.25-1.5 s)",
        },
        "ti2vid_two_stages_t2v": {
            "pipeline": "ti2vid_two_stages", "model": _model(False), "init": two_stage_init,
            "call": {**guided, **common, "images": []},
            "covers": "guided stage 1 (CFG, STG, modality, rescale, float32 guidance), distilled LoRA 0.8 in "
            "stage 2, decoded audio from stage 1",
        },
        "ti2vid_two_stages_i2v": {
            "pipeline": "ti2vid_two_stages", "model": _model(False), "init": two_stage_init,
            "call": {**guided, **tall, "images": [[IMAGE, 0, 1.0, 18]]},
            "covers": "image at frame 0 (CRF 18), 128x64",
        },
        "ti2vid_two_stages_hq": {
            "pipeline": "ti2vid_two_stages_hq", "model": _model(False),
            "init": {**two_stage_init, "distilled_lora": [[DISTILLED_LORA, 1.0]],
                     "distilled_lora_strength_stage_1": 0.25, "distilled_lora_strength_stage_2": 0.5},
            "call": {**guided, **common, "num_inference_steps": 2, "video_guider_params": HQ_VIDEO,
                     "audio_guider_params": HQ_AUDIO, "images": []},
            "covers": "res2s both stages (float64 SDE noise on CPU), scheduler on the stage-1 latent, LoRA both stages",
        },
        "ti2vid_one_stage": {
            "pipeline": "ti2vid_one_stage", "model": _model(False), "init": {"loras": []},
            "call": {**guided, **common, "images": [[IMAGE_2, 8, 0.8, 18]]},
            "covers": "one guided stage; an image at the last frame (a keyframe of one pixel frame)",
        },
        "ic_lora": {
            "pipeline": "ic_lora", "model": _model(True), "init": {**distilled_init, "loras": [[IC_LORA, 1.0]]},
            "call": {"prompt": PROMPT, **common, "images": [], "video_conditioning": [[CLIP, 1.0]]},
            "covers": "IC-LoRA reference video (appended tokens), plain Euler stage 1, no LoRA in stage 2",
        },
        "keyframe_interpolation": {
            "pipeline": "keyframe_interpolation", "model": _model(False), "init": two_stage_init,
            "call": {**guided, **common, "images": [[IMAGE, 0, 1.0, 18], [IMAGE_2, FRAMES - 1, 1.0, 18]]},
            "covers": "both images as guiding latents (keyframes), guided stage 1",
        },
        "a2vid_two_stage": {
            "pipeline": "a2vid_two_stage", "model": _model(False), "init": two_stage_init,
            "call": {**{k: v for k, v in guided.items() if k != "audio_guider_params"}, **common, "images": [],
                     "audio_path": AUDIO, "audio_max_duration": FRAMES / FPS},
            "covers": "frozen soundtrack (audio sigma 0), output audio = the input waveform; audio_max_duration "
                      "= num_frames / frame_rate as the reference CLI passes it (its API's None reads the whole file)",
        },
        "retake": {
            "pipeline": "retake", "model": _model(True), "init": {"loras": [], "distilled": True},
            "call": {"video_path": CLIP, "prompt": PROMPT, "start_time": 0.2, "end_time": 0.5, "seed": SEED},
            "covers": "distilled retake of 0.2-0.5 s of a 17-frame clip with its PCM audio (temporal region masks)",
        },
    }
    # fmt: on


# --------------------------------------------------------------------------- input media


def ensure_inputs(folder: Path) -> dict[str, str]:
    """The request media, written only where missing (the fixtures depend on their exact bytes); their sha256s."""
    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[Path], None]] = {
        "image.png": partial(write_image, shade=90),
        "image2.png": partial(write_image, shade=200),
        "clip.mov": write_clip,
        "audio.wav": partial(write_wav, seconds=0.6, rate=16000),
    }
    for name, write in writers.items():
        if not (folder / name).exists():
            write(folder / name)
    return {name: sha256_file(folder / name) for name in sorted(writers)}


# --------------------------------------------------------------------------- float32


class _Float32Torch(types.ModuleType):
    """``torch`` as a pipeline module sees it (patch 1): ``torch.bfloat16`` is float32, the rest is torch."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> object:
        return torch.float32 if name == "bfloat16" else getattr(torch, name)


def _float32_fuse(key: str, weight: torch.Tensor, deltas: torch.Tensor, model_sd: StateDict) -> dict[str, torch.Tensor]:
    """Patch 4: ``W + delta`` added and kept in float32 (the default rule rounds it to the weight's bf16)."""
    del model_sd
    return {key: deltas.to(torch.float32) + weight.to(torch.float32)}


FLOAT32_FUSE_RULE = FuseRule(aggregation_dtype=torch.bfloat16, fuse_fn=_float32_fuse)
FLOAT32_POLICY = QuantizationPolicy(fuse_rule=FLOAT32_FUSE_RULE)

PATCHES = {
    "torch.bfloat16 -> float32 in the pipeline module": "the module global `torch` of ltx_pipelines.<pipeline> is a "
    "proxy whose `bfloat16` is torch.float32: self.dtype in __init__ (dtype of every block built), the local "
    "dtype in __call__ (conditioning encodes, default vae_dtype)",
    "transformer dtype": "ltx_pipelines.utils.blocks.DiffusionStage._build_transformer wrapped to pass "
    "dtype=self._dtype (the standard path builds with dtype=None: the file's bf16; utils/blocks.py:480-482)",
    "res2s model_dtype": "ltx_pipelines.ti2vid_two_stages_hq.res2s_audio_video_denoising_loop wrapped with "
    "model_dtype=torch.float32 (HQ passes none; the default is bfloat16)",
    "LoRA fusion": "quantization=QuantizationPolicy(fuse_rule=FuseRule(bf16 aggregation as the default, "
    "W + delta added and kept in float32)) passed to every pipeline (the default bf16_fuse_rule rounds the fused "
    "weight to bf16)",
    "vocoder": "no patch: built in float32, its autocast('cpu', float32) is refused by torch (a warning) and "
    "float32 meets float32",
    "checked": "every model built (SingleGPUModelBuilder.build) holds only float32 floating tensors",
}


def check_built_float32(model: torch.nn.Module) -> None:
    """Stop if a model the reference built kept a floating tensor that is not float32."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise SystemExit(f"{type(model).__name__}.{name} was built in {tensor.dtype}, not float32")


@contextmanager
def float32_reference(module: types.ModuleType) -> Iterator[list[str]]:
    """Patches 1-3 for one pipeline module, and the float32 check of every model built; yields the models built."""
    from ltx_pipelines.utils.blocks import DiffusionStage

    built: list[str] = []
    original_build = SingleGPUModelBuilder.build
    original_transformer = DiffusionStage._build_transformer

    def transformer_in_stage_dtype(self: DiffusionStage, **kwargs: object) -> torch.nn.Module:
        return original_transformer(self, dtype=self._dtype, **kwargs)

    def checked_build(self: SingleGPUModelBuilder, *args: object, **kwargs: object) -> torch.nn.Module:
        model = original_build(self, *args, **kwargs)
        check_built_float32(model)
        built.append(type(model).__name__)
        return model

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(module, "torch", _Float32Torch()))
        stack.enter_context(mock.patch.object(SingleGPUModelBuilder, "build", checked_build))
        stack.enter_context(mock.patch.object(DiffusionStage, "_build_transformer", transformer_in_stage_dtype))
        if hasattr(module, "res2s_audio_video_denoising_loop"):
            loop = partial(module.res2s_audio_video_denoising_loop, model_dtype=torch.float32)
            stack.enter_context(mock.patch.object(module, "res2s_audio_video_denoising_loop", loop))
        yield built


# --------------------------------------------------------------------------- running a case


def run_case(case: dict, bundle: Path, inputs: Path) -> dict[str, object]:
    """One request through the reference pipeline (float32, CPU): frames, audio, frame count, models built."""
    from ltx_pipelines.utils.model_paths import ModelPaths
    from ltx_pipelines.utils.types import AutoDuration

    from ltx_pipelines.utils.args import ImageConditioningInput

    module = importlib.import_module(f"ltx_pipelines.{case['pipeline']}")
    cls = getattr(module, CLASSES[case["pipeline"]])
    model_paths = ModelPaths.from_split(**resolve(case["model"], bundle, inputs))
    init = decode_arguments(resolve(case["init"], bundle, inputs), ImageConditioningInput, AutoDuration)
    call = decode_arguments(resolve(case["call"], bundle, inputs), ImageConditioningInput, AutoDuration)
    with float32_reference(module) as built, recorded_image_pixels(inputs) as pixels, torch.inference_mode():
        pipeline = cls(model_paths=model_paths, device=torch.device("cpu"), quantization=FLOAT32_POLICY, **init)
        video, audio, *_ = pipeline(**call)
        frames = torch.cat([chunk.float().cpu() for chunk in video], dim=0)
    return {"frames": frames, "audio": audio.waveform.float().cpu(), "sampling_rate": int(audio.sampling_rate),
            "num_frames": frames.shape[0], "models_built": built, "image_pixels": pixels}  # fmt: skip


@contextmanager
def recorded_image_pixels(inputs: Path) -> Iterator[list[tuple[dict, torch.Tensor]]]:
    """Observe (not change) every conditioning image the reference prepares: (which image at which size, the
    [1, 3, 1, H, W] pixels it encodes). Our test feeds these to our pipeline to check all that follows them."""
    from ltx_pipelines.utils import helpers

    original = helpers.load_image_and_preprocess
    seen: list[tuple[dict, torch.Tensor]] = []

    def recording(image_path: str, height: int, width: int, **kwargs: object) -> torch.Tensor:
        pixels = original(image_path=image_path, height=height, width=width, **kwargs)
        where = {"path": f"$INPUTS/{Path(image_path).relative_to(inputs)}", "height": height, "width": width}
        seen.append((where, pixels.detach().float().cpu().contiguous()))
        return pixels

    with mock.patch.object(helpers, "load_image_and_preprocess", recording):
        yield seen


def output_stats(frames: torch.Tensor, audio: torch.Tensor) -> dict[str, object]:
    """Float32 statistics of a case's outputs (the fixture keeps the frames as float16)."""
    levels = (frames * 255.0).to(torch.uint8)
    return {
        "frames_shape": list(frames.shape),
        "frames_sha256_float32": sha256_tensor(frames),
        "frames_sha256_uint8": sha256_tensor(levels),
        "frames_mean": float(frames.mean()), "frames_std": float(frames.std()),
        "frames_min": float(frames.min()), "frames_max": float(frames.max()),
        "audio_shape": list(audio.shape),
        "audio_sha256_float32": sha256_tensor(audio),
        "audio_mean": float(audio.mean()), "audio_std": float(audio.std()),
        "audio_min": float(audio.min()), "audio_max": float(audio.max()),
    }  # fmt: skip


# --------------------------------------------------------------------------- provenance


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256_tensor(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def bundle_record(bundle: Path) -> dict[str, object]:
    """The bundle's description and per-file sha256; refuse a bundle other than the real-channel one."""
    description = json.loads((bundle / "bundle.json").read_text())
    if description.get("model_version") != "2.5.0" or description.get("sizes") != BUNDLE_SIZES:
        raise SystemExit(
            f"{bundle} is not the real-channel LTX-2.5 bundle (sizes {description.get('sizes')}); make it "
            "with: python -m ltx_pipelines.smoke_model --model-version 2.5 --real-channels DIR"
        )
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    writer = "ltx_pipelines.smoke_model.ltx25.build_ltx25_smoke_bundle(root, seed=0, sizes=REAL_CHANNEL_SIZES)"
    return {"writer": writer, "seed": description["seed"], "sizes": description["sizes"],
            "sha256": {str(p.relative_to(bundle)): sha256_file(p) for p in files}}  # fmt: skip


def save_deterministic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors' file with its JSON header in sorted key order (the library writes it in hash order)."""
    blob = save(tensors)
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + length :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the real-channel LTX-2.5 smoke bundle (written by our package)")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--cases", nargs="*", help="only these cases (printed, nothing written)")
    args = parser.parse_args()
    require_reference()
    torch.set_num_threads(1)
    bundle = args.bundle.resolve()
    record = bundle_record(bundle)
    inputs = args.out_dir / INPUTS
    input_hashes = ensure_inputs(inputs)
    requests = cases()
    names = args.cases or list(requests)
    tensors: dict[str, torch.Tensor] = {}
    results: dict[str, dict] = {}
    for name in names:
        started = time.perf_counter()
        out = run_case(requests[name], bundle, inputs.resolve())
        seconds = time.perf_counter() - started
        tensors[f"{name}.frames"] = out["frames"].to(torch.float16).contiguous()
        tensors[f"{name}.audio"] = out["audio"].contiguous()
        tensors.update({f"{name}.image_pixels.{i}": pixels for i, (_, pixels) in enumerate(out["image_pixels"])})
        results[name] = {**requests[name], "outputs": {"num_frames": out["num_frames"],
                         "sampling_rate": out["sampling_rate"], **output_stats(out["frames"], out["audio"])},
                         "image_pixels": [where for where, _ in out["image_pixels"]],
                         "models_built": out["models_built"]}  # fmt: skip
        print(f"{name:26s} {tuple(out['frames'].shape)} audio {tuple(out['audio'].shape)} in {seconds:.1f} s",
              flush=True)  # fmt: skip
    if args.cases:
        return
    path = args.out_dir / FIXTURE
    save_deterministic(tensors, path)
    manifest = {
        **provenance("outputs of the reference 1.2.0's pipelines on the real-channel LTX-2.5 smoke bundle (float32, CPU)", GENERATOR, ("ltx-core", "ltx-pipelines", "torch", "av")),
        "threads": 1,
        "float32_patches": PATCHES,
        "bundle": record,
        "inputs": {"folder": INPUTS, "sha256": input_hashes},
        "fixture": {"file": FIXTURE, "sha256": sha256_file(path),
                    "tensors": "<case>.frames float16 [F,H,W,3] in [0,1]; <case>.audio float32 [channels, samples]; "
                               "<case>.image_pixels.<i> float32 [1,3,1,H,W]: the i-th conditioning image as the "
                               "reference prepared it (which one: the case's image_pixels list)"},
        "cases": results,
    }  # fmt: skip
    (args.out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and {args.out_dir / MANIFEST}")


if __name__ == "__main__":
    main()
