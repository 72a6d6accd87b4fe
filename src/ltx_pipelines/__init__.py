"""Ready-to-use inference pipelines for Lightricks' LTX-2 audio+video model.

Pipeline classes are imported lazily so that light entry points (the smoke-model
builder, ``--help``) start fast.
"""

from importlib import import_module

_EXPORTS = {
    "TI2VidOneStagePipeline": "ltx_pipelines.ti2vid_one_stage",
    "TI2VidTwoStagesPipeline": "ltx_pipelines.ti2vid_two_stages",
    "TI2VidTwoStagesHQPipeline": "ltx_pipelines.ti2vid_two_stages_hq",
    "DistilledPipeline": "ltx_pipelines.distilled",
    "ICLoraPipeline": "ltx_pipelines.ic_lora",
    "KeyframeInterpolationPipeline": "ltx_pipelines.keyframe_interpolation",
    "A2VidPipelineTwoStage": "ltx_pipelines.a2vid_two_stage",
    "RetakePipeline": "ltx_pipelines.retake",
    "ImageConditioningInput": "ltx_pipelines.engine.conditioning",
    "GenerationResult": "ltx_pipelines.engine.pipeline_base",
    "ModelLedger": "ltx_pipelines.engine.model_ledger",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ltx_pipelines' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
