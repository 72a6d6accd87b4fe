"""The image-conditioning CRF: left out, it is the model's (33 for LTX-2 and 2.3, 18 from 2.4 on, read from the
video VAE file as the reference 1.2.0 does); given, it wins. Nothing is loaded here: the files are header stand-ins."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from models.test_files import ltx25_download, write

from ltx_pipelines.engine.cli import base_parser
from ltx_pipelines.engine.conditioning import ImageConditioningInput, check_image_inputs, encode_image
from ltx_pipelines.engine.pipeline_base import PipelineBase
from ltx_pipelines.models.files import ModelFiles, resolve_model_files
from ltx_pipelines.serve.catalog import PIPELINES
from ltx_pipelines.serve.requests import JobRequest, call_kwargs
from ltx_pipelines.utils.errors import InputError


def model_files(root: Path, version: str, vae_version: str | None = None) -> ModelFiles:
    """A monolithic checkpoint before 2.5, the split download from 2.5 on (its VAE re-versioned if asked)."""
    if version < "2.5":
        return resolve_model_files(checkpoint_path=write(root / "checkpoint.safetensors", "checkpoint", version))
    f = ltx25_download(root)
    vae = f["video_vae"] if vae_version is None else write(root / "vae.safetensors", "video_vae", vae_version)
    return resolve_model_files(transformer_path=f["dev"], text_encoder_path=f["text_encoder"],
                               video_vae_path=vae, audio_vae_path=f["audio_vae"])  # fmt: skip


def resolved(files: ModelFiles, images: list) -> list[ImageConditioningInput]:
    """What a pipeline of these files makes of the call's ``images`` (PipelineBase.image_inputs)."""
    return PipelineBase.image_inputs(SimpleNamespace(files=files), images)


@pytest.mark.parametrize(("version", "crf"), [("2.0.0", 33), ("2.3.0", 33), ("2.5.0", 18)])
def test_an_omitted_crf_is_the_models(tmp_path: Path, version: str, crf: int) -> None:
    files = model_files(tmp_path, version)
    assert files.image_crf == crf
    assert resolved(files, [("a.png", 0, 1.0)]) == [ImageConditioningInput("a.png", 0, 1.0, crf)]


@pytest.mark.parametrize("version", ["2.0.0", "2.3.0", "2.5.0"])
@pytest.mark.parametrize("given", [0, 18, 33, 40])
def test_an_explicit_crf_wins(tmp_path: Path, version: str, given: int) -> None:
    images = [ImageConditioningInput("a.png", 0, 1.0, given), ("b.png", 8, 0.5, given)]
    assert [image.crf for image in resolved(model_files(tmp_path, version), images)] == [given, given]


def test_a_vae_file_without_a_version_gets_ltx_2s_crf_as_in_the_reference(tmp_path: Path) -> None:
    files = model_files(tmp_path, "2.5.0", vae_version="")
    assert files.generation.name == "LTX-2.5" and files.image_crf == 33


def test_an_unresolved_crf_is_never_encoded() -> None:
    with pytest.raises(ValueError, match="unresolved"):
        encode_image(None, ImageConditioningInput("a.png", 0, 1.0), 64, 64)


def test_checks_accept_an_unset_crf_and_refuse_one_out_of_range(make_image) -> None:
    image = str(make_image())
    check_image_inputs([ImageConditioningInput(image, 0, 1.0)], 9)
    with pytest.raises(InputError, match="CRF 52; use 0"):
        check_image_inputs([ImageConditioningInput(image, 0, 1.0, 52)], 9)


@pytest.mark.parametrize(("values", "crf"), [(["i.png", "0", "1"], None), (["i.png", "8", "0.5", "23"], 23)])
def test_the_cli_leaves_an_omitted_crf_to_the_model(values: list[str], crf: int | None) -> None:
    parser = base_parser("test", height=64, width=64, size_multiple=32)
    args = parser.parse_args(["--prompt", "p", "--output-path", "o.mp4", "--image", *values])
    assert [image.crf for image in args.images] == [crf]


def test_a_server_request_without_crf_leaves_it_to_the_model(tmp_path: Path) -> None:
    request = JobRequest.model_validate({"prompt": "p", "pipeline": "distilled", "images": [{"frame_idx": 0}]})
    image = tmp_path / "image_0.png"
    kwargs = call_kwargs(request, PIPELINES["distilled"], None, {"image_0": image}, tmp_path / "o.mp4")
    assert kwargs["images"] == [ImageConditioningInput(str(image), 0, 1.0, None)]
    assert resolved(model_files(tmp_path, "2.5.0"), kwargs["images"])[0].crf == 18
