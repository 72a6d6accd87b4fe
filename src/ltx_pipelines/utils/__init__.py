"""Leaf helpers that anything may use and that use nothing of ours, and the reference package's import paths.

* ``errors`` / ``validation`` - bad input refused with a message; ``constants`` - defaults and parameter sets
* ``media_io`` - images, video and audio files; ``progress`` - stage and step reporting; ``aliases`` - old names
* ``args``, ``model_ledger`` and the names below - the reference's import paths, re-exported from ``engine``
"""

from importlib import import_module

_EXPORTS = {
    "euler_denoising_loop": "ltx_pipelines.engine.denoising",
    "gradient_estimating_euler_denoising_loop": "ltx_pipelines.engine.denoising",
    "res2s_denoising_loop": "ltx_pipelines.engine.denoising",
    "cleanup_memory": "ltx_pipelines.engine.model_ledger",
    "ModelLedger": "ltx_pipelines.engine.model_ledger",
    "MemoryPolicy": "ltx_pipelines.engine.model_ledger",
    "ImageConditioningInput": "ltx_pipelines.engine.conditioning",
    "image_conditionings_by_replacing_latent": "ltx_pipelines.engine.conditioning",
    "image_conditionings_by_adding_guiding_latent": "ltx_pipelines.engine.conditioning",
    "encode_prompts": "ltx_pipelines.engine.prompts",
    "PromptEmbeddings": "ltx_pipelines.engine.guidance",
    "MultiModalGuidedDenoiser": "ltx_pipelines.engine.guidance",
    "ConditionalDenoiser": "ltx_pipelines.engine.guidance",
    "InputError": "ltx_pipelines.utils.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ltx_pipelines.utils' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
