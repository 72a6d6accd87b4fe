"""Small assertions shared by the test modules."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_pipelines import ImageConditioningInput
from ltx_pipelines.engine import cli
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.utils.errors import InputError, OutputExistsError


def probe_mp4(path: Path) -> dict:
    """Frame count, fps, size and audio facts of a written mp4, read back with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        # Read the stream's facts while its container is open (PyAV frees them on close).
        fps, width, height = float(video.average_rate), video.width, video.height
        codec, pix_fmt = video.codec_context.name, video.codec_context.pix_fmt
    with av.open(str(path)) as container:
        audio_streams = container.streams.audio
        audio_duration = 0.0
        if audio_streams:
            stream = audio_streams[0]
            samples = sum(frame.samples for frame in container.decode(audio=0))
            audio_duration = samples / stream.rate
        return {
            "frames": frames,
            "fps": fps,
            "width": width,
            "height": height,
            "codec": codec,
            "pix_fmt": pix_fmt,
            "has_audio": bool(audio_streams),
            "audio_codec": audio_streams[0].codec_context.name if audio_streams else None,
            "audio_duration": audio_duration,
            "metadata": dict(container.metadata),
        }


def check_mp4(path: Path, *, frames: int, fps: float, width: int, height: int, prompt: str, seed: int) -> dict:
    """Assert a written mp4 is playable h264+aac of the asked size, length and metadata; return its probe."""
    info = probe_mp4(path)
    assert info["frames"] == frames
    assert info["fps"] == pytest.approx(fps)
    assert (info["width"], info["height"]) == (width, height)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["has_audio"] and info["audio_codec"] == "aac"
    assert info["audio_duration"] == pytest.approx(frames / fps, abs=0.15)
    assert info["metadata"]["prompt"] == prompt
    assert info["metadata"]["seed"] == str(seed)
    return info


def write_picture(
    path: Path, *, width: int, height: int, across: int, down: int, box: tuple[int, int, int, int]
) -> Path:
    """Write a picture: channel `across` ramps up left to right, channel `down` ramps down top to bottom,
    and the rows/columns box (top, bottom, left, right) is white."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., across] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., down] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    top, bottom, left, right = box
    pixels[top:bottom, left:right] = 255
    Image.fromarray(pixels).save(path)
    return path


def write_unmatched_lora(path: Path) -> Path:
    """Write a LoRA whose one module exists in no model (loading it must be refused)."""
    save_file(
        {
            "diffusion_model.nonexistent.lora_A.weight": torch.zeros(4, 8, dtype=torch.bfloat16),
            "diffusion_model.nonexistent.lora_B.weight": torch.zeros(8, 4, dtype=torch.bfloat16),
        },
        str(path),
    )
    return path


def lora_delta(path: Path, module: str, strength: float) -> torch.Tensor:
    """strength * B @ A for one module, straight from the file."""
    with safe_open(str(path), framework="pt") as f:
        a = f.get_tensor(f"diffusion_model.{module}.lora_A.weight").float()
        b = f.get_tensor(f"diffusion_model.{module}.lora_B.weight").float()
    return strength * b @ a


def call_overrides(case, paths) -> dict:  # noqa: ANN001
    """A bad-request case as call keyword arguments: a dict as is, or an image case named by `paths` key."""
    if case == "missing_image":
        return dict(images=[ImageConditioningInput(str(paths["missing_image"]), 0, 1.0)])
    if isinstance(case, str) and case.startswith("image_frame_"):
        return dict(images=[ImageConditioningInput(str(paths["image"]), int(case.rsplit("_", 1)[1]), 1.0)])
    return case


def assert_api_refuses_request(generate, fresh, tmp_path: Path, fragment: str, overrides: dict) -> None:  # noqa: ANN001
    """`generate(fresh, ...)` raises InputError with `fragment`, loads no file and writes no output."""
    output = tmp_path / "out.mp4"
    with pytest.raises(InputError, match=re.escape(fragment)):
        generate(fresh, output_path=output, **overrides)
    assert fresh.ledger.files_loaded == []
    assert not output.exists()


def assert_api_keeps_existing_output(generate, fresh, tmp_path: Path, not_mp4: str) -> None:  # noqa: ANN001
    """An existing output is refused untouched, a non-.mp4 name is refused, and nothing is loaded or written."""
    output = tmp_path / "taken.mp4"
    output.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        generate(fresh, output_path=output)
    with pytest.raises(InputError, match=r"must end in \.mp4"):
        generate(fresh, output_path=tmp_path / not_mp4)
    assert output.read_bytes() == b"precious"
    assert fresh.ledger.files_loaded == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]


def assert_cli_refuses(main, argv: list[str], fragment: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """The CLI exits 2 with one `error: ` line holding `fragment`, no traceback, and writes nothing."""
    with pytest.raises(SystemExit) as exited:
        cli.run_cli(main, argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and fragment in error_lines[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def assert_cli_keeps_existing_output(main, argv: list[str], output: Path, capsys) -> None:  # noqa: ANN001
    """With `output` already there, the CLI exits 2 with an `Output file` error and leaves the file alone."""
    output.write_bytes(b"precious")
    with pytest.raises(SystemExit) as exited:
        cli.run_cli(main, argv)
    assert exited.value.code == 2
    assert "error: Output file" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"


def two_stage_files(bundle, distilled_lora_strength: float) -> dict:  # noqa: ANN001
    """A two-stage pipeline's file arguments from the smoke bundle, with its distilled LoRA at the given strength."""
    return dict(
        checkpoint_path=bundle.checkpoint,
        distilled_lora=comfy_lora(bundle.distilled_lora, distilled_lora_strength),
        spatial_upsampler_path=bundle.spatial_upsampler,
        gemma_root=bundle.gemma_root,
    )


#: A chat template in Gemma's turn markup, written out with the tiny tokenizer's words (it has no turn tokens).
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] }} : {{ message['content'] }} . "
    "{% endfor %}{% if add_generation_prompt %}model : {% endif %}"
)


def write_dense_gemma4(folder: Path, seed: int = 0, **text_config: object) -> Path:
    """A tiny random dense Gemma 4 instruct folder (``model_type`` gemma4): config, weights, tokenizer, chat template.

    The tokenizer and text sizes are the LTX-2.5 smoke encoder's; ``text_config`` overrides (e.g. MoE switches).
    """
    import json

    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    from ltx_pipelines.smoke_model import ltx25_text_encoder as smoke

    vocab = smoke.VOCAB
    text = {**smoke.gemma4_config()["text_config"], "model_type": "gemma4_text", "hidden_size_per_layer_input": 0,
            "use_bidirectional_attention": None, **text_config}  # fmt: skip
    media = {f"{name}_id": vocab.index(token) for name, token in smoke.MEDIA_TOKENS.items() if name.startswith(("boi",
             "eoi", "image"))}  # fmt: skip
    config = {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"], "text_config": text,
              "vision_config": {"model_type": "gemma4_vision", "hidden_size": 16, "intermediate_size": 32,
                                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                                "head_dim": 8, "patch_size": 4, "pooling_kernel_size": 2},
              "audio_config": None, "tie_word_embeddings": True, **media}  # fmt: skip
    torch.manual_seed(seed)
    Gemma4ForConditionalGeneration(Gemma4Config.from_dict(config)).save_pretrained(str(folder))
    (folder / "tokenizer.json").write_text(smoke.tokenizer_json())
    tokenizer_config = {**smoke.tokenizer_config(), "chat_template": GEMMA4_CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return folder
