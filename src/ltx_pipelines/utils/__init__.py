"""Shared mechanics of the pipelines, one module each:

* ``model_ledger`` - building models from files, and the memory policy
* ``prompts`` - prompt encoding; ``conditioning`` - images and keyframes
* ``denoising`` - sampling loops; ``guidance`` - denoise functions and multimodal guidance
* ``stages`` - denoise / upsample / decode stages; ``pipeline_base`` - what pipelines share
* ``media_io`` - images, video and audio files; ``cli`` - command-line flags
* ``checkpoints`` / ``validation`` / ``errors`` - checks before any model loads
"""

from importlib import import_module

_EXPORTS = {
    "euler_denoising_loop": "ltx_pipelines.utils.denoising",
    "gradient_estimating_euler_denoising_loop": "ltx_pipelines.utils.denoising",
    "res2s_denoising_loop": "ltx_pipelines.utils.denoising",
    "cleanup_memory": "ltx_pipelines.utils.model_ledger",
    "ModelLedger": "ltx_pipelines.utils.model_ledger",
    "MemoryPolicy": "ltx_pipelines.utils.model_ledger",
    "ImageConditioningInput": "ltx_pipelines.utils.conditioning",
    "image_conditionings_by_replacing_latent": "ltx_pipelines.utils.conditioning",
    "image_conditionings_by_adding_guiding_latent": "ltx_pipelines.utils.conditioning",
    "encode_prompts": "ltx_pipelines.utils.prompts",
    "PromptEmbeddings": "ltx_pipelines.utils.guidance",
    "MultiModalGuidedDenoiser": "ltx_pipelines.utils.guidance",
    "ConditionalDenoiser": "ltx_pipelines.utils.guidance",
    "InputError": "ltx_pipelines.utils.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ltx_pipelines.utils' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
