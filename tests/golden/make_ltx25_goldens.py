"""Golden fixtures for the LTX-2.5 transformer, computed by the reference implementation itself.

The reference is the upstream LTX-2 repository at release 1.2.0 (ltx-core / ltx-pipelines 1.2.0,
the first release that runs LTX-2.5). This script runs in the reference's own Python environment
and imports only the reference, torch and safetensors -- never our package -- so the numbers it
writes are the reference's. Our tests (``tests/models/ltx25/``) load the result and check that
our LTX-2.5 transformer, built on ltx-core 1.0.0, reproduces them.

Regenerate (float32 on CPU, deterministic, a few seconds)::

    bash scripts/reference_env.sh /path/to/LTX-2.git /work/refenv      # once: builds the env
    /work/refenv/venv/bin/python tests/golden/make_ltx25_goldens.py tests/golden/ltx25

What it writes into OUT_DIR:

* ``transformer.safetensors``: a tiny random LTX-2.5 transformer in the layout of the published
  split file (``diffusion_models/ltx-2.5-22b-*-transformer-bf16.safetensors``): tensors named
  ``model.diffusion_model.<module>``, header metadata ``config`` (JSON with a ``transformer``
  section) and ``model_version``. Next to the weights, under ``golden.<case>.``, each case's
  inputs and the reference's outputs (velocity and x0 of both modalities). Loaders that keep only
  ``model.diffusion_model.`` keys never see them.
* ``manifest.json``: the upstream commit, the environment's ``pip freeze``, the config, what each
  case is, and sha256 digests (of the file and of each case's tensors).

The tiny model turns on every LTX-2.5 feature: gated attention, cross-attention AdaLN with the
prompt AdaLN, no video feed-forward biases, a non-zero keyframe embedding, and the audio<->video
cross-attention AdaLN that reads each modality's own per-token timesteps. ``rope_type`` is left
out of the config on purpose, so the fixture also pins the 1.2.0 default (split; 1.0.0 defaulted
to interleaved). There is no caption projection inside the transformer: LTX-2.5 (like 2.3) ships
it in the text-encoder file (``caption_proj_before_connector``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning.types.keyframe_cond import VideoConditionByKeyframeIndex
from ltx_core.conditioning.types.keyframe_slots import VideoGeneratedKeyframeSlots
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer.model import X0Model
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, LatentState, VideoLatentShape
from ltx_pipelines.utils.helpers import modality_from_latent_state
from safetensors.torch import save

UPSTREAM_VERSION = "1.2.0"
PREFIX = "model.diffusion_model."
SEED = 2025
BATCH = 2
VIDEO_SHAPE = VideoLatentShape(batch=BATCH, channels=8, frames=3, height=2, width=3)  # 18 tokens, 6 per frame
AUDIO_SHAPE = AudioLatentShape(batch=BATCH, channels=2, frames=5, mel_bins=2)  # 5 tokens of 4 channels
FPS = 24.0
PROMPT_TOKENS = 5
SIGMA = torch.tensor([0.8, 0.55])  # one noise level per sample, so per-sample handling is visible

# The 1.2.0 configurator asserts these values (``check_config_value``); a real file carries them. Read from our
# package's data file by its path: our package cannot be imported in the reference's environment.
CONFIG_FILE = Path(__file__).resolve().parents[2] / "src/ltx_pipelines/models/ltx25/transformer_config.json"
_ASSERTED = json.loads(CONFIG_FILE.read_text())["fixed_values"]

TRANSFORMER_CONFIG = {
    **_ASSERTED,
    "num_layers": 2,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "in_channels": VIDEO_SHAPE.channels,
    "out_channels": VIDEO_SHAPE.channels,
    "cross_attention_dim": 16,
    "audio_num_attention_heads": 2,  # 1.2.0 requires the video and audio head counts to be equal
    "audio_attention_head_dim": 4,
    "audio_in_channels": AUDIO_SHAPE.channels * AUDIO_SHAPE.mel_bins,
    "audio_out_channels": AUDIO_SHAPE.channels * AUDIO_SHAPE.mel_bins,
    "audio_cross_attention_dim": 8,
    "norm_eps": 1e-6,
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20],
    "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000,
    "frequencies_precision": "float64",
    "apply_gated_attention": True,
    "cross_attention_adaln": True,
    "use_prompt_adaln_single": True,
    "ff_bias": False,
    "audio_ff_bias": True,
    "use_keyframes_abs_pos_embedding": True,
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}
CONFIG = {"transformer": TRANSFORMER_CONFIG}
MODEL_VERSION = "2.5.0"


def build_model(transformer_config: dict) -> torch.nn.Module:
    """The reference's own LTX transformer, built the way its loader builds it (from metadata)."""
    metadata = {"config": {"transformer": transformer_config}, "model_version": MODEL_VERSION}
    return LTXModelConfigurator.from_metadata(metadata).to(dtype=torch.float32).eval()


def _init_std(name: str, shape: torch.Size) -> tuple[float, float]:
    """(mean, std) for a parameter: O(1) activations everywhere, so every feature moves the output."""
    if name.endswith("keyframes_abs_pos_embedding"):
        return 0.0, 0.5
    if "scale_shift_table" in name:
        return 0.0, 0.2
    if name.endswith(("q_norm.weight", "k_norm.weight")):
        return 1.0, 0.1
    if name.endswith(".bias"):
        return 0.0, 0.05
    return 0.0, float(shape[-1]) ** -0.5


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded random weights, drawn in sorted name order (independent of module construction order)."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            param = params[name]
            mean, std = _init_std(name, param.shape)
            param.copy_(mean + std * torch.randn(param.shape, generator=generator))


def video_tools() -> VideoLatentTools:
    return VideoLatentTools(VideoLatentPatchifier(patch_size=1), VIDEO_SHAPE, fps=FPS)


def audio_tools() -> AudioLatentTools:
    return AudioLatentTools(AudioPatchifier(patch_size=1), AUDIO_SHAPE)


def with_random_latent(state: LatentState, generator: torch.Generator) -> LatentState:
    """A noised-looking latent: the transformer's input values are arbitrary; only the layout matters."""
    return replace(state, latent=torch.randn(state.latent.shape, generator=generator))


def contexts(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    video = torch.randn(BATCH, PROMPT_TOKENS, TRANSFORMER_CONFIG["cross_attention_dim"], generator=generator)
    audio = torch.randn(BATCH, PROMPT_TOKENS, TRANSFORMER_CONFIG["audio_cross_attention_dim"], generator=generator)
    return video, audio


def first_frame_clean(state: LatentState) -> LatentState:
    """Image-to-video: the first latent frame is given, so its tokens are not denoised (timestep 0)."""
    mask = state.denoise_mask.clone()
    mask[:, : VIDEO_SHAPE.height * VIDEO_SHAPE.width] = 0.0
    return replace(state, denoise_mask=mask)


def keyframe_state(generator: torch.Generator) -> LatentState:
    """A given keyframe appended as guidance (unmarked) and one generated keyframe slot (marked)."""
    tools = video_tools()
    state = tools.create_initial_state("cpu", torch.float32)
    keyframe = torch.randn(BATCH, VIDEO_SHAPE.channels, 1, VIDEO_SHAPE.height, VIDEO_SHAPE.width, generator=generator)
    state = VideoConditionByKeyframeIndex(keyframes=keyframe, frame_idx=16, strength=1.0).apply_to(state, tools)
    state = VideoGeneratedKeyframeSlots(pixel_frame_indices=[4]).apply_to(state, tools)
    return state


def perturbations_for(case: str, num_blocks: int) -> BatchedPerturbationConfig | None:
    """Sample 0 untouched; sample 1 cut the way guidance passes cut it (STG and modality isolation)."""
    if case != "perturbed":
        return None
    cut = PerturbationConfig(
        [
            Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [1]),
            Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [0]),
            Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
            Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None),
        ]
    )
    return BatchedPerturbationConfig([PerturbationConfig.empty(), cut], num_blocks=num_blocks, dtype=torch.float32)


CASES = {
    "t2v": "text-to-video+audio: every token of both modalities at its sample's sigma",
    "i2v": "image conditioning: video tokens of latent frame 0 have timestep 0 (denoise mask 0)",
    "a2v": "audio-to-video: audio frozen (timesteps 0 and Modality.sigma 0), video denoised",
    "keyframes": "18 target tokens + 6 appended given-keyframe tokens (pixel frame 16, strength 1, unmarked, "
    "timestep 0) + 6 generated-keyframe-slot tokens (pixel frame 4, marked); keyframes_mask from the reference",
    "i2v_no_prompt_adaln": "an i2v-style input (own random values) through the same weights built with "
    "use_prompt_adaln_single=false (prompt_adaln_single.* not loaded: the text cross-attention K/V "
    "modulation is the static table only)",
    "perturbed": "a t2v-style input (own random values) with sample 1 perturbed: video self-attn skipped in "
    "block 1, audio self-attn in block 0, audio->video and video->audio cross-attention in every block "
    "(sample 0 untouched)",
}
NO_PROMPT_ADALN = {"use_prompt_adaln_single": False}


def case_states(case: str, generator: torch.Generator) -> tuple[LatentState, LatentState, bool]:
    """(video state, audio state, audio frozen) of a case, built with the reference's latent tools."""
    video = video_tools().create_initial_state("cpu", torch.float32)
    audio = audio_tools().create_initial_state("cpu", torch.float32)
    frozen = False
    if case in ("i2v", "i2v_no_prompt_adaln"):
        video = first_frame_clean(video)
    elif case == "a2v":
        audio, frozen = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask)), True
    elif case == "keyframes":
        video = keyframe_state(generator)
    return with_random_latent(video, generator), with_random_latent(audio, generator), frozen


def run_case(case: str, models: dict[str, torch.nn.Module], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One case's inputs and the reference's outputs, as named tensors."""
    video_state, audio_state, frozen = case_states(case, generator)
    video_context, audio_context = contexts(generator)
    video = modality_from_latent_state(video_state, video_context, SIGMA.clone())
    audio_sigma = torch.zeros_like(SIGMA) if frozen else SIGMA.clone()
    audio = modality_from_latent_state(audio_state, audio_context, audio_sigma)
    model = models["no_prompt_adaln" if case == "i2v_no_prompt_adaln" else "main"]
    perturbations = perturbations_for(case, model.num_blocks)
    with torch.no_grad():
        video_velocity, audio_velocity = model(video, audio, perturbations)
        video_x0, audio_x0 = X0Model(model)(video, audio, perturbations)
    tensors = {
        "video.latent": video.latent,
        "video.sigma": video.sigma,
        "video.timesteps": video.timesteps,
        "video.positions": video.positions,
        "video.context": video.context,
        "video.keyframes_mask": video.keyframes_mask,
        "audio.latent": audio.latent,
        "audio.sigma": audio.sigma,
        "audio.timesteps": audio.timesteps,
        "audio.positions": audio.positions,
        "audio.context": audio.context,
        "out.video_velocity": video_velocity,
        "out.audio_velocity": audio_velocity,
        "out.video_x0": video_x0,
        "out.audio_x0": audio_x0,
    }
    if video.attention_mask is not None:
        tensors["video.attention_mask"] = video.attention_mask
    if perturbations is not None:
        tensors["perturbations.keep"] = perturbations.block_masks.to(torch.float32)  # [type, block, sample]
    return {f"golden.{case}.{name}": t.detach().contiguous().to(torch.float32) for name, t in tensors.items()}


def check_sensitivity(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Refuse to write a fixture in which the keyframe embedding would not change the numbers."""
    video_state, audio_state, _ = case_states("t2v", generator)
    video_context, audio_context = contexts(generator)
    video = modality_from_latent_state(video_state, video_context, SIGMA.clone())
    audio = modality_from_latent_state(audio_state, audio_context, SIGMA.clone())
    with torch.no_grad():
        marked, _ = model(video, audio, None)
        unmarked, _ = model(replace(video, keyframes_mask=None), audio, None)
    change = float((marked - unmarked).norm() / marked.norm())
    if change < 1e-2:
        raise RuntimeError(f"the keyframe embedding moves the output by only {change:.2e}")


def save_deterministic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors' file, with its JSON header re-serialized in sorted key order.

    The library writes the metadata map in hash order, so two runs give different bytes for the same
    content; data offsets in the header are relative to the end of the header, so re-serializing it
    changes nothing else.
    """
    blob = save(tensors, metadata=metadata)
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + length :])


def sha256_of(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].numpy().tobytes())
    return digest.hexdigest()


def upstream_commit() -> str:
    """The snapshot commit ``scripts/reference_env.sh`` recorded next to this environment."""
    versions = Path(sys.prefix).parent / "versions.txt"
    if versions.is_file():
        for line in versions.read_text().splitlines():
            if line.startswith("# snapshot "):
                return line.removeprefix("# snapshot ").strip()
    return "unknown (no versions.txt beside the environment)"


def output_folder(description: str) -> Path:
    """The folder named on the command line, made, once the reference is known to be importable (deterministic ops)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    require_reference()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    return out_dir


def provenance(what: str, generator: str, packages: tuple[str, ...] = ("ltx-core", "ltx-pipelines", "torch")) -> dict:
    """The head of every golden manifest: what it holds, the script, the reference's release and the environment."""
    return {
        "what": what,
        "generator": generator,
        "upstream": {"repository": "Lightricks/LTX-2", "release": UPSTREAM_VERSION, "commit": upstream_commit()},
        "python": sys.version.split()[0],
        "versions": {name: importlib.metadata.version(name) for name in packages},
        "packages": pip_freeze(),
    }


def pip_freeze() -> list[str]:
    run = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def require_reference() -> None:
    """Refuse to run on anything but the reference: the fixture must hold the reference's numbers."""
    import ltx_pipelines

    repository = Path(__file__).resolve().parents[2]
    if Path(ltx_pipelines.__file__).resolve().is_relative_to(repository):
        raise SystemExit(f"ltx_pipelines comes from {repository}, not the reference: run with the reference's python")
    for package in ("ltx-core", "ltx-pipelines"):
        if importlib.metadata.version(package) != UPSTREAM_VERSION:
            raise SystemExit(f"{package} is {importlib.metadata.version(package)}, expected {UPSTREAM_VERSION}")


def main() -> None:
    out_dir = output_folder(__doc__.splitlines()[0])
    torch.manual_seed(SEED)

    main_model = build_model(TRANSFORMER_CONFIG)
    randomize(main_model, SEED)
    weights = {PREFIX + k: v.detach().clone().contiguous() for k, v in main_model.state_dict().items()}
    variant = build_model({**TRANSFORMER_CONFIG, **NO_PROMPT_ADALN})
    variant.load_state_dict(main_model.state_dict(), strict=False)  # the same weights, minus prompt_adaln_single
    models = {"main": main_model, "no_prompt_adaln": variant}
    check_sensitivity(main_model, torch.Generator().manual_seed(SEED + 1))

    tensors: dict[str, torch.Tensor] = dict(weights)
    case_digests = {}
    for index, case in enumerate(CASES):
        case_tensors = run_case(case, models, torch.Generator().manual_seed(SEED + 100 + index))
        case_digests[case] = sha256_of(case_tensors)
        tensors.update(case_tensors)

    path = out_dir / "transformer.safetensors"
    save_deterministic(tensors, path, {"config": json.dumps(CONFIG), "model_version": MODEL_VERSION})
    manifest = {
        **provenance(
            "tiny random LTX-2.5 transformer, its inputs and the reference's outputs (float32, CPU)",
            "tests/golden/make_ltx25_goldens.py",
        ),
        "seed": SEED,
        "model_version": MODEL_VERSION,
        "config": CONFIG,
        "weights_prefix": PREFIX,
        "shapes": {"video": list(VIDEO_SHAPE), "audio": list(AUDIO_SHAPE), "fps": FPS, "sigma": SIGMA.tolist()},
        "cases": {
            case: {
                "description": text,
                "tensors_prefix": f"golden.{case}.",
                "config_overrides": NO_PROMPT_ADALN if case == "i2v_no_prompt_adaln" else {},
                "sha256": case_digests[case],
            }
            for case, text in CASES.items()
        },
        "files": {path.name: hashlib.sha256(path.read_bytes()).hexdigest()},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and {out_dir / 'manifest.json'}")


if __name__ == "__main__":
    main()
