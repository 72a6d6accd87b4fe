"""The server's model flags: monolithic or split files, or a downloaded folder (no server is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx_pipelines.serve.catalog import PIPELINES, ServedFiles
from ltx_pipelines.serve.settings import build_parser, settings_from_args


def settings(*argv: str):  # noqa: ANN201
    parser = build_parser()
    return settings_from_args(parser.parse_args(list(argv)), parser)


def test_model_dir_finds_the_full_and_the_distilled_model(smoke_bundle, tmp_path: Path) -> None:
    files = settings("--model-dir", str(smoke_bundle.root), "--data-dir", str(tmp_path)).files
    assert (files.checkpoint, files.distilled_checkpoint) == (str(smoke_bundle.checkpoint),
                                                              str(smoke_bundle.distilled_checkpoint))  # fmt: skip
    assert files.gemma_root == str(smoke_bundle.gemma_root)
    assert files.spatial_upsampler == str(smoke_bundle.spatial_upsampler)
    assert [Path(lora.path) for lora in files.distilled_lora] == [smoke_bundle.distilled_lora]
    assert all(not spec.missing(files) for name, spec in PIPELINES.items() if name != "ic_lora")


def test_a_flag_given_wins_over_the_folder(smoke_bundle, tmp_path: Path) -> None:
    files = settings("--model-dir", str(smoke_bundle.root), "--checkpoint-path", str(smoke_bundle.distilled_checkpoint),
                     "--data-dir", str(tmp_path)).files  # fmt: skip
    assert files.checkpoint == str(smoke_bundle.distilled_checkpoint)


@pytest.mark.parametrize("argv", [[], ["--gemma-root", "{gemma}"], ["--model-dir", "{empty}"]])
def test_no_model_is_refused_with_what_to_give(smoke_bundle, tmp_path: Path, argv: list[str], capsys) -> None:
    (tmp_path / "empty").mkdir()
    values = {"gemma": str(smoke_bundle.gemma_root), "empty": str(tmp_path / "empty")}
    with pytest.raises(SystemExit):
        settings(*[a.format(**values) for a in argv], "--data-dir", str(tmp_path))
    error = capsys.readouterr().err
    assert "--checkpoint-path" in error or "holds no LTX transformer" in error


def test_split_files_enable_the_pipelines_of_their_model() -> None:
    split = {"text_encoder": "te", "video_vae": "vae", "audio_vae": "audio"}
    only_distilled = ServedFiles(distilled_transformer="dit", spatial_upsampler="up", **split)
    assert only_distilled.model_paths(distilled=True) == {"transformer_path": "dit", "text_encoder_path": "te",
                                                          "video_vae_path": "vae", "audio_vae_path": "audio"}  # fmt: skip
    assert PIPELINES["distilled"].missing(only_distilled) == []
    (missing,) = PIPELINES["ti2vid_one_stage"].missing(only_distilled)
    assert "--transformer-path with --text-encoder-path" in missing
    assert "--checkpoint-path with --gemma-root" in missing


def test_compile_flags_reach_the_pipelines_and_warm_up_follows_the_device(smoke_bundle, tmp_path: Path) -> None:
    from ltx_pipelines.serve.worker import WorkerPool

    served = settings("--smoke", str(smoke_bundle.root), "--data-dir", str(tmp_path))
    assert (served.files.compile, served.files.compile_cache, served.files.attention, served.warm_up) == \
        (None, None, "auto", None)  # fmt: skip
    served = settings("--smoke", str(smoke_bundle.root), "--data-dir", str(tmp_path), "--no-compile",
                      "--compile-cache", str(tmp_path / "cc"), "--attention", "8bit", "--warm-up")  # fmt: skip
    kwargs = PIPELINES["distilled"].model_kwargs(served.files)
    assert (kwargs["compile"], kwargs["compile_cache"], kwargs["attention"]) == (False, str(tmp_path / "cc"), "8bit")
    assert served.warm_up is True
    pool = WorkerPool.__new__(WorkerPool)
    pool.warm_up = None
    assert pool.warms_up("cuda:0") and not pool.warms_up("cpu")  # off in tests (CPU workers)
    pool.warm_up = False
    assert not pool.warms_up("cuda:0")


def test_warm_up_runs_the_default_job_and_keeps_its_models(smoke_bundle, tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from ltx_pipelines.serve import worker as worker_module
    from ltx_pipelines.serve.requests import JobRequest
    from ltx_pipelines.serve.storage import DataDir

    served = settings("--smoke", str(smoke_bundle.root), "--data-dir", str(tmp_path))
    small = lambda spec: JobRequest(pipeline=spec.name, prompt="warm-up", height=64, width=64, num_frames=9,  # noqa: E731
                                    num_inference_steps=1)  # fmt: skip
    monkeypatch.setattr(worker_module, "warm_up_request", small)
    data = DataDir(tmp_path)
    data.create()
    worker = worker_module.Worker("cpu", SimpleNamespace(files=served.files, data=data))
    assert worker.warm_up() is not None
    assert worker.status()["pipeline"] == "ti2vid_two_stages"  # resident for the first job
    assert not list(tmp_path.glob(".warm-up-*"))  # nothing kept


@pytest.mark.parametrize(("choice", "expected"), [("auto", None), ("conv", "conv"), ("diffusion", "diffusion")])
def test_vae_decoder_reaches_the_pipelines_keyword_arguments(smoke_bundle, tmp_path: Path, choice: str,
                                                             expected: str | None) -> None:  # fmt: skip
    files = settings("--checkpoint-path", str(smoke_bundle.checkpoint), "--gemma-root", str(smoke_bundle.gemma_root),
                     "--vae-decoder", choice, "--data-dir", str(tmp_path)).files  # fmt: skip
    assert files.vae_decoder == choice
    assert files.model_paths(distilled=False).get("vae_decoder") == expected


def test_an_unknown_vae_decoder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        settings("--vae-decoder", "natten", "--data-dir", str(tmp_path))
