"""Parity with the reference package: the same request run by ltx-pipelines 1.0.0 and by us.

The pieces the parity test (and a person chasing a difference) needs:

* :func:`install_reference`: the published ``ltx-pipelines==1.0.0`` wheel, installed with
  ``pip install --target`` into a cache folder (never into the venv: it has our package's name),
  together with the transformers 4.57 it was built for (and that version's tokenizers and
  huggingface-hub): ours runs on transformers 5. It shares the venv's ltx-core, torch and PyAV.
* :func:`parity_bundle`: the smoke model with the real latent channel counts (the reference
  hard-codes 128 video / 8 audio channels), in LTX-2's or LTX-2.3's layout, plus the input files the requests use.
* :func:`cases`: one request per pipeline, in the reference's own argument names, with tiny
  sizes and explicit settings.
* :func:`run_reference` (a subprocess, see ``reference_runner.py``) and :func:`run_ours`
  (in-process, the same arguments, bfloat16 as the reference hard-codes) and :func:`differences`.

Run by hand to see the differences of some pipelines (on the LTX-2.3 bundle with ``--model-version 2.3.0``)::

    PYTHONPATH=src:tests python -m parity.harness retake ti2vid_two_stages_hq
    PYTHONPATH=src:tests python -m parity.harness --model-version 2.3.0 keyframe_interpolation
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from media_inputs import write_clip, write_image, write_wav

REFERENCE = "ltx-pipelines==1.0.0"
REFERENCE_WHEEL = "ltx_pipelines-1.0.0-py3-none-any.whl"
#: Installed beside the reference, first on its path: ltx-core 1.0.0's Gemma code (which the reference uses)
#: needs transformers 4.57. The ranges are transformers 4.57's own; huggingface-hub 0.x talks HTTP through
#: requests, which the venv (hub 1.x) does not have.
REFERENCE_TRANSFORMERS = (
    "transformers>=4.57,<4.58",
    "tokenizers>=0.22.0,<=0.23.0",
    "huggingface-hub>=0.34.0,<1.0",
    "requests>=2",
    "charset-normalizer>=2",
    "urllib3>=1.21.1",
    "idna>=2.5",
    "certifi>=2017.4.17",
)
#: The install folder under the cache: named for its transformers, so an older install without it is not reused.
REFERENCE_FOLDER = "reference-transformers-4.57"
RUNNER = Path(__file__).with_name("reference_runner.py")
PIPELINES = (
    "ti2vid_one_stage",
    "ti2vid_two_stages",
    "ti2vid_two_stages_hq",
    "distilled",
    "ic_lora",
    "keyframe_interpolation",
    "a2vid_two_stage",
    "retake",
)
CLASSES = {
    "ti2vid_one_stage": "TI2VidOneStagePipeline",
    "ti2vid_two_stages": "TI2VidTwoStagesPipeline",
    "ti2vid_two_stages_hq": "TI2VidTwoStagesHQPipeline",
    "distilled": "DistilledPipeline",
    "ic_lora": "ICLoraPipeline",
    "keyframe_interpolation": "KeyframeInterpolationPipeline",
    "a2vid_two_stage": "A2VidPipelineTwoStage",
    "retake": "RetakePipeline",
}

logger = logging.getLogger(__name__)


class ReferenceUnavailable(RuntimeError):
    """The package index could not be reached (or the wheel not installed): the parity test skips."""


# --------------------------------------------------------------------------- the reference install


def default_cache() -> Path:
    return Path(os.environ.get("LTX_PARITY_CACHE", Path.home() / ".cache" / "ltx-parity"))


def install_reference(cache: Path) -> Path:
    """The reference's import root (``<cache>/reference-transformers-4.57``), installed on first use and reused after.

    The folder holds the reference wheel and its own transformers 4.57 (see ``REFERENCE_TRANSFORMERS``),
    installed without dependencies: everything else comes from the venv.
    """
    target = cache / REFERENCE_FOLDER
    if (target / "ltx_pipelines" / "retake.py").is_file() and (target / "transformers" / "__init__.py").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    download = subprocess.run(
        [*pip, "download", "--no-deps", "--timeout", "20", "--retries", "1", "-d", str(wheels), REFERENCE],
        capture_output=True, text=True,
    )  # fmt: skip
    if download.returncode != 0:
        raise ReferenceUnavailable(f"could not download {REFERENCE}: {download.stderr.strip()[-400:]}")
    staging = Path(tempfile.mkdtemp(prefix=".reference-", dir=cache))
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--timeout", "20", "--retries", "1", "--target", str(staging),
         str(wheels / REFERENCE_WHEEL), *REFERENCE_TRANSFORMERS],
        capture_output=True, text=True,
    )  # fmt: skip
    if install.returncode != 0:
        raise ReferenceUnavailable(f"could not install {REFERENCE}: {install.stderr.strip()[-400:]}")
    staging.rename(target)  # complete installs only: a second run never sees half a package
    return target


# --------------------------------------------------------------------------- bundle and inputs


@dataclass(frozen=True)
class ParityFiles:
    """The real-channel bundle and the media the requests read."""

    bundle: object  # ltx_pipelines.smoke_model.SmokeBundle
    image: Path
    second_image: Path
    clip: Path  # 64x64, 17 frames at 24 fps, with a stereo PCM track: retake source, IC-LoRA reference
    audio: Path  # 1 s of stereo 44.1 kHz wav: audio-to-video soundtrack


#: The bundles the parity test runs, by model version: LTX-2's layout and LTX-2.3's (``smoke_model.ltx23``).
#: One folder per layout: a new name whenever the smoke writer changes a version's files (the 2.3 bundle gained
#: LTX-2.3's bandwidth-extension vocoder), so an older bundle in the cache is never compared against.
BUNDLE_FOLDERS = {"2.0.0": "bundle-real-channels", "2.3.0": "bundle-real-channels-2.3-bwe"}


def parity_bundle(cache: Path, model_version: str = "2.0.0") -> ParityFiles:
    """The real-channel smoke bundle of ``model_version`` (built once under ``cache``) and the requests' media."""
    from ltx_pipelines.smoke_model import REAL_CHANNEL_SIZES, ensure_smoke_bundle

    folder = cache / BUNDLE_FOLDERS[model_version]
    return media_files(ensure_smoke_bundle(folder, sizes=REAL_CHANNEL_SIZES, model_version=model_version), cache)


def media_files(bundle: object, cache: Path) -> ParityFiles:
    """The requests' images, clip and soundtrack (written under ``cache/media`` once), with ``bundle``."""
    media = cache / "media"
    media.mkdir(parents=True, exist_ok=True)
    files = ParityFiles(bundle, media / "image.png", media / "image2.png", media / "clip.mov", media / "audio.wav")
    if not files.image.exists():
        write_image(files.image, shade=90)
        write_image(files.second_image, shade=200)
    if not files.clip.exists():
        write_clip(files.clip)
    if not files.audio.exists():
        write_wav(files.audio, seconds=1.0, rate=44100)
    return files


# --------------------------------------------------------------------------- the requests

PROMPT = "a red fox runs through fresh snow, camera follows"
NEGATIVE = "blurry, low quality"
SEED = 42
SIZE = 64
FRAMES = 9
FPS = 24.0
STEPS = 3
GUIDED_VIDEO = {"cfg_scale": 3.0, "stg_scale": 1.0, "stg_blocks": [1], "rescale_scale": 0.7, "modality_scale": 3.0,
                "skip_step": 0}  # fmt: skip
GUIDED_AUDIO = {**GUIDED_VIDEO, "cfg_scale": 7.0}
HQ_VIDEO = {"cfg_scale": 3.0, "stg_scale": 0.0, "stg_blocks": [], "rescale_scale": 0.45, "modality_scale": 3.0,
            "skip_step": 0}  # fmt: skip
HQ_AUDIO = {**HQ_VIDEO, "cfg_scale": 7.0, "rescale_scale": 1.0}


def cases(files: ParityFiles) -> dict[str, dict]:
    """Per pipeline: constructor and call arguments, as a reference user writes them (JSON values)."""
    b = files.bundle
    common = {"seed": SEED, "height": SIZE, "width": SIZE, "num_frames": FRAMES, "frame_rate": FPS}
    guided = {"prompt": PROMPT, "negative_prompt": NEGATIVE, **common, "num_inference_steps": STEPS,
              "video_guider_params": GUIDED_VIDEO, "audio_guider_params": GUIDED_AUDIO}  # fmt: skip
    full = {"checkpoint_path": str(b.checkpoint), "gemma_root": str(b.gemma_root), "loras": []}
    two_stage = {
        **full, "distilled_lora": [[str(b.distilled_lora), 0.8]], "spatial_upsampler_path": str(b.spatial_upsampler)
    }
    distilled = {"distilled_checkpoint_path": str(b.distilled_checkpoint), "gemma_root": str(b.gemma_root),
                 "spatial_upsampler_path": str(b.spatial_upsampler), "loras": []}  # fmt: skip
    keyframes = [[str(files.image), 0, 1.0, 33], [str(files.second_image), FRAMES - 1, 1.0, 33]]
    return {
        "ti2vid_one_stage": {"init": full, "call": {**guided, "images": []}},
        "ti2vid_two_stages": {"init": two_stage, "call": {**guided, "images": []}},
        "ti2vid_two_stages_hq": {
            "init": {**two_stage, "distilled_lora_strength_stage_1": 0.25, "distilled_lora_strength_stage_2": 0.5},
            "call": {**guided, "video_guider_params": HQ_VIDEO, "audio_guider_params": HQ_AUDIO, "images": []},
        },
        "distilled": {"init": distilled, "call": {"prompt": PROMPT, **common, "images": []}},
        "ic_lora": {
            "init": {**distilled, "loras": [[str(b.ic_lora), 1.0]]},
            "call": {"prompt": PROMPT, **common, "images": [], "video_conditioning": [[str(files.clip), 1.0]]},
        },
        "keyframe_interpolation": {"init": two_stage, "call": {**guided, "images": keyframes}},
        "a2vid_two_stage": {
            "init": two_stage,
            "call": {**{k: v for k, v in guided.items() if k != "audio_guider_params"}, "images": [],
                     "audio_path": str(files.audio)},
        },  # fmt: skip
        "retake": {
            "init": full,
            "call": {"video_path": str(files.clip), "prompt": PROMPT, "start_time": 0.36, "end_time": 0.5, "seed": SEED,
                     "negative_prompt": NEGATIVE, "num_inference_steps": STEPS, "video_guider_params": GUIDED_VIDEO,
                     "audio_guider_params": GUIDED_AUDIO},
        },  # fmt: skip
    }


# --------------------------------------------------------------------------- running both


@dataclass(frozen=True)
class Output:
    frames: torch.Tensor  # uint8 [F, H, W, 3]
    audio: torch.Tensor  # float32 [channels, samples]
    sampling_rate: int
    seconds: float


def reference_env(reference: Path) -> dict[str, str]:
    """The reference first on the path, our src nowhere on it."""
    ours = str(Path(__file__).resolve().parents[2] / "src")
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(ours)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(reference), *inherited]), "OMP_NUM_THREADS": "1"}


def run_reference(
    reference: Path, files: ParityFiles, names: list[str], workdir: Path, introspect: bool = False, timeout: float = 600
) -> tuple[dict[str, Output], dict | None]:
    """Run the reference for ``names`` in one subprocess; return its outputs (and its CLI/signature report)."""
    requests = cases(files)
    runs = [
        {"name": n, "module": n, "cls": CLASSES[n], **requests[n], "out": str(workdir / f"reference-{n}.pt")}
        for n in names
    ]
    report_path = workdir / "reference-api.json"
    spec = {
        "reference": str(reference),
        "gemma_config": str(files.bundle.gemma_root / "config.json"),
        "checkpoint": str(files.bundle.checkpoint),
        "introspect": str(report_path) if introspect else None,
        "runs": runs,
    }
    spec_path = workdir / "reference-spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(spec_path)], env=reference_env(reference), cwd=workdir,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the reference failed:\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}")
    elapsed = time.perf_counter() - started
    outputs = {}
    for run in runs:
        saved = torch.load(run["out"])
        outputs[run["name"]] = Output(saved["frames"], saved["audio"], saved["sampling_rate"], elapsed / len(runs))
    report = json.loads(report_path.read_text()) if introspect else None
    return outputs, report


def run_ours(name: str, files: ParityFiles) -> Output:
    """Our pipeline, built and called with the reference's arguments (+ bfloat16, which the reference hard-codes)."""
    import importlib

    request = cases(files)[name]
    module = importlib.import_module(f"ltx_pipelines.{name}")
    cls = getattr(module, CLASSES[name])
    started = time.perf_counter()
    pipeline = cls(**decode_arguments(request["init"]), device="cpu", dtype=torch.bfloat16)
    result = pipeline(**decode_arguments(request["call"]))
    audio = result.audio
    return Output(result.frames, audio.waveform.float(), audio.sampling_rate, time.perf_counter() - started)


def decode_arguments(values: dict) -> dict:
    """JSON request values -> the objects the pipelines take (same rules as reference_runner.decode_value)."""
    from ltx_core.components.guiders import MultiModalGuiderParams
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

    from ltx_pipelines.utils.args import ImageConditioningInput

    decoded = {}
    for key, value in values.items():
        if key.endswith("_guider_params") and value is not None:
            value = MultiModalGuiderParams(**value)
        elif key in ("loras", "distilled_lora"):
            value = [LoraPathStrengthAndSDOps(path, strength, LTXV_LORA_COMFY_RENAMING_MAP) for path, strength in value]
        elif key == "images":
            value = [ImageConditioningInput(*image) for image in value]
        elif key == "video_conditioning":
            value = [tuple(item) for item in value]
        decoded[key] = value
    return decoded


@dataclass(frozen=True)
class Difference:
    """How far our output is from the reference's: frames in levels of 255, audio in waveform units."""

    video_max: int
    video_mean: float
    audio_max: float
    audio_mean: float
    audio_samples: int  # compared (the shorter of the two tracks)

    def __str__(self) -> str:
        return (
            f"video max {self.video_max:3d} mean {self.video_mean:7.4f} | "
            f"audio max {self.audio_max:.5f} mean {self.audio_mean:.6f} over {self.audio_samples} samples"
        )


def differences(ours: Output, reference: Output) -> Difference:
    if ours.frames.shape != reference.frames.shape:
        raise AssertionError(
            f"frame shapes differ: ours {tuple(ours.frames.shape)}, reference {tuple(reference.frames.shape)}"
        )
    if ours.sampling_rate != reference.sampling_rate or ours.audio.shape[0] != reference.audio.shape[0]:
        raise AssertionError(
            f"audio formats differ: ours {tuple(ours.audio.shape)} at {ours.sampling_rate} Hz, "
            f"reference {tuple(reference.audio.shape)} at {reference.sampling_rate} Hz"
        )
    video = (ours.frames.to(torch.int16) - reference.frames.to(torch.int16)).abs()
    n = min(ours.audio.shape[-1], reference.audio.shape[-1])
    audio = (ours.audio[..., :n] - reference.audio[..., :n]).abs()
    return Difference(int(video.max()), float(video.float().mean()), float(audio.max()), float(audio.mean()), n)


def main(argv: list[str]) -> None:
    version = "2.0.0"
    if argv[:1] == ["--model-version"]:
        version, argv = argv[1], argv[2:]
    names = argv or list(PIPELINES)
    torch.set_num_threads(1)
    cache = default_cache()
    reference = install_reference(cache)
    files = parity_bundle(cache, version)
    with tempfile.TemporaryDirectory() as tmp:
        theirs, _ = run_reference(reference, files, names, Path(tmp))
    for name in names:
        ours = run_ours(name, files)
        print(f"{name:24s} {differences(ours, theirs[name])}  (ours {ours.seconds:.1f} s)", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1:])


# --------------------------------------------------------------------------- our API, described like the reference's


def our_parser(module_name: str) -> "argparse.ArgumentParser":
    """The parser our module's main() builds (captured when it parses; nothing runs)."""
    import argparse
    import importlib

    class Captured(Exception):
        pass

    module = importlib.import_module(f"ltx_pipelines.{module_name}")
    original = argparse.ArgumentParser.parse_args
    captured: list[argparse.ArgumentParser] = []

    def capture(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        captured.append(self)
        raise Captured

    argparse.ArgumentParser.parse_args = capture  # scoped: restored below
    try:
        module.main([])
    except Captured:
        return captured[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError(f"ltx_pipelines.{module_name}.main() never parsed its arguments")
