"""The golden pipeline requests, from the manifest's JSON values to the objects a pipeline takes.

``make_ltx25_pipeline_goldens.py`` runs each request through the reference 1.2.0 (in the reference's environment) and
writes it into ``pipelines_manifest.json``; ``tests/test_ltx25_pipelines.py`` reads the requests from there and runs
them through ours. Both decode them here. Only ltx-core names that both ltx-core releases have are imported; each
side passes in its own package's image input and auto-duration types.
"""

from __future__ import annotations

from pathlib import Path

from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

#: The class of each pipeline module (the reference's names, which ours keep).
CLASSES = {
    "distilled": "DistilledPipeline",
    "ti2vid_two_stages": "TI2VidTwoStagesPipeline",
    "ti2vid_two_stages_hq": "TI2VidTwoStagesHQPipeline",
    "ti2vid_one_stage": "TI2VidOneStagePipeline",
    "ic_lora": "ICLoraPipeline",
    "keyframe_interpolation": "KeyframeInterpolationPipeline",
    "a2vid_two_stage": "A2VidPipelineTwoStage",
    "retake": "RetakePipeline",
}


def resolve(value: object, bundle: Path, inputs: Path) -> object:
    """JSON request values with their ``$BUNDLE`` / ``$INPUTS`` paths made absolute."""
    if isinstance(value, str):
        return value.replace("$BUNDLE", str(bundle)).replace("$INPUTS", str(inputs))
    if isinstance(value, list):
        return [resolve(v, bundle, inputs) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, bundle, inputs) for k, v in value.items()}
    return value


def decode_arguments(values: dict, image_input: type, auto_duration: type) -> dict:
    """JSON request values -> the objects the pipelines take (``image_input``, ``auto_duration``: the package's own)."""
    decoded = {}
    for key, value in values.items():
        if key.endswith("_guider_params"):
            value = MultiModalGuiderParams(**value)
        elif key in ("loras", "distilled_lora"):
            value = [LoraPathStrengthAndSDOps(path, strength, LTXV_LORA_COMFY_RENAMING_MAP) for path, strength in value]
        elif key == "images":
            value = [image_input(*image) for image in value]
        elif key == "video_conditioning":
            value = [tuple(item) for item in value]
        elif key == "num_frames" and isinstance(value, dict):
            value = auto_duration(*value["auto_duration"])
        decoded[key] = value
    return decoded
