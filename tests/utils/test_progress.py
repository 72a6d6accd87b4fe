"""Progress events, cancellation and validate-only calls, on the distilled smoke pipeline."""

from __future__ import annotations

import pytest

from ltx_pipelines import DistilledPipeline
from ltx_pipelines.utils import progress
from ltx_pipelines.utils.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
REQUEST = dict(prompt="a lighthouse at dusk", seed=3, height=128, width=128, num_frames=9, frame_rate=24.0)


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> DistilledPipeline:
    return DistilledPipeline(
        checkpoint_path=smoke_bundle.distilled_checkpoint,
        gemma_root=smoke_bundle.gemma_root,
        spatial_upsampler_path=smoke_bundle.spatial_upsampler,
    )


def test_events_cover_every_stage_and_step(pipeline):
    events: list[progress.ProgressEvent] = []
    with progress.listen(events.append):
        pipeline(**REQUEST)
    starts = [e.stage for e in events if e.kind == "stage_start"]
    assert starts == ["text encoding", "stage 1", "upsample", "stage 2", "decode video", "decode audio"]
    steps = [(e.stage, e.step, e.total) for e in events if e.kind == "step"]
    assert steps == [("stage 1", i, 8) for i in range(1, 9)] + [("stage 2", i, 3) for i in range(1, 4)]
    ends = [e.stage for e in events if e.kind == "stage_end"]
    assert ends == starts


def test_no_listener_outside_the_context(pipeline):
    events = []
    with progress.listen(events.append):
        pass
    pipeline(**REQUEST)
    assert events == []


def test_cancel_stops_at_the_next_step_and_writes_nothing(pipeline, tmp_path):
    seen = []

    def cancel_at_third_step(event: progress.ProgressEvent) -> None:
        seen.append(event)
        if event.kind == "step" and event.step == 3:
            raise progress.GenerationCancelled("stop")

    out = tmp_path / "cancelled.mp4"
    with progress.listen(cancel_at_third_step), pytest.raises(progress.GenerationCancelled):
        pipeline(**REQUEST, output_path=out)
    assert [e.step for e in seen if e.kind == "step"] == [1, 2, 3]
    assert not any(e.stage == "stage 2" for e in seen)
    assert list(tmp_path.iterdir()) == []


def test_validate_accepts_a_good_request_without_loading(smoke_bundle, no_model_builds):
    fresh = DistilledPipeline(
        checkpoint_path=smoke_bundle.distilled_checkpoint,
        gemma_root=smoke_bundle.gemma_root,
        spatial_upsampler_path=smoke_bundle.spatial_upsampler,
    )
    fresh.validate(**REQUEST)
    assert fresh.ledger.files_loaded == []


def test_validate_refuses_what_the_call_refuses(smoke_bundle, no_model_builds):
    fresh = DistilledPipeline(
        checkpoint_path=smoke_bundle.distilled_checkpoint,
        gemma_root=smoke_bundle.gemma_root,
        spatial_upsampler_path=smoke_bundle.spatial_upsampler,
    )
    with pytest.raises(InputError, match="8k\\+1|8k \\+ 1"):
        fresh.validate(**{**REQUEST, "num_frames": 10})
