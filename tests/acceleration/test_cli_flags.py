"""--compile and --step-cache: on every pipeline's command line, passed to the pipeline, checked first."""

from __future__ import annotations

import pytest
from helpers import assert_cli_refuses

from ltx_pipelines.acceleration.options import AccelerationOptions
from ltx_pipelines.distilled import main as distilled_main
from ltx_pipelines.engine import cli
from ltx_pipelines.utils.errors import InputError


def parse(*flags: str):  # noqa: ANN202
    parser = cli.base_parser("test", height=64, width=64, size_multiple=32)
    required = ["--checkpoint-path", "c", "--gemma-root", "g", "--prompt", "p", "--output-path", "o.mp4"]
    return parser.parse_args([*required, *flags])


def test_flags_reach_the_pipeline_constructor() -> None:
    assert {k: cli.model_kwargs(parse())[k] for k in ("compile", "step_cache")} == {"compile": None, "step_cache": None}
    kwargs = cli.model_kwargs(parse("--compile", "--step-cache", "0.05"))
    assert (kwargs["compile"], kwargs["step_cache"]) == (True, 0.05)
    assert cli.model_kwargs(parse("--no-compile"))["compile"] is False


def test_compile_defaults_off_on_the_cpu() -> None:
    options = AccelerationOptions()
    assert not options.compiles("cpu") and not options.enabled("cpu")
    assert AccelerationOptions(compile=True).compiles("cpu")
    assert AccelerationOptions(step_cache=0.0).enabled("cpu") is False


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_a_bad_threshold_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match="--step-cache"):
        AccelerationOptions(step_cache=bad)


def test_cli_refuses_a_bad_threshold_early(smoke_bundle, tmp_path, capsys, no_model_builds) -> None:  # noqa: ANN001
    argv = ["--checkpoint-path", str(smoke_bundle.distilled_checkpoint), "--gemma-root", str(smoke_bundle.gemma_root),
            "--spatial-upsampler-path", str(smoke_bundle.spatial_upsampler), "--prompt", "x",
            "--output-path", str(tmp_path / "out.mp4"), "--step-cache", "-1"]  # fmt: skip
    assert_cli_refuses(distilled_main, argv, "--step-cache", tmp_path, capsys)
