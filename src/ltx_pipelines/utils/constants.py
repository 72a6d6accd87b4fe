"""Default values of the LTX-2 pipelines (facts of the model, not tuning of ours)."""

from dataclasses import dataclass, field, replace

from ltx_core.components.guiders import MultiModalGuiderParams

DEFAULT_SEED = 10
DEFAULT_NUM_FRAMES = 121
DEFAULT_FRAME_RATE = 24.0
DEFAULT_NUM_INFERENCE_STEPS = 40
LTX_2_3_NUM_INFERENCE_STEPS = 30
DEFAULT_HQ_NUM_INFERENCE_STEPS = 15
DEFAULT_IMAGE_CRF = 33
# From LTX-2.4 on, conditioning images are re-compressed more lightly by default (the reference 1.2.0's gate).
LTX_2_4_IMAGE_CRF = 18
DEFAULT_LORA_STRENGTH = 1.0
# As the reference's --distilled-lora (the docs' examples pass 0.8 explicitly).
DEFAULT_DISTILLED_LORA_STRENGTH = DEFAULT_LORA_STRENGTH

# One-stage pipelines generate at this size; two-stage pipelines output twice it.
DEFAULT_1_STAGE_HEIGHT = 512
DEFAULT_1_STAGE_WIDTH = 768
DEFAULT_2_STAGE_HEIGHT = 1024
DEFAULT_2_STAGE_WIDTH = 1536
DEFAULT_HQ_HEIGHT = 1088
DEFAULT_HQ_WIDTH = 1920

# The distilled model's fixed schedules.
DISTILLED_SIGMA_VALUES = [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0]
STAGE_2_DISTILLED_SIGMA_VALUES = [0.909375, 0.725, 0.421875, 0.0]

DEFAULT_STG_BLOCK = 29
LTX_2_3_STG_BLOCK = 28

DEFAULT_VIDEO_GUIDER_PARAMS = MultiModalGuiderParams(
    cfg_scale=3.0,
    stg_scale=1.0,
    rescale_scale=0.7,
    modality_scale=3.0,
    skip_step=0,
    stg_blocks=[DEFAULT_STG_BLOCK],
)
DEFAULT_AUDIO_GUIDER_PARAMS = MultiModalGuiderParams(
    cfg_scale=7.0,
    stg_scale=1.0,
    rescale_scale=0.7,
    modality_scale=3.0,
    skip_step=0,
    stg_blocks=[DEFAULT_STG_BLOCK],
)

# The HQ two-stage pipeline (res_2s sampler): no STG, stronger rescale, distilled LoRA in both stages.
DEFAULT_HQ_VIDEO_GUIDER_PARAMS = MultiModalGuiderParams(
    cfg_scale=3.0,
    stg_scale=0.0,
    rescale_scale=0.45,
    modality_scale=3.0,
    skip_step=0,
    stg_blocks=[],
)
DEFAULT_HQ_AUDIO_GUIDER_PARAMS = MultiModalGuiderParams(
    cfg_scale=7.0,
    stg_scale=0.0,
    rescale_scale=1.0,
    modality_scale=3.0,
    skip_step=0,
    stg_blocks=[],
)
# Audio-to-video keeps the given soundtrack fixed: no audio guidance (its passes would change nothing).
A2VID_AUDIO_GUIDER_PARAMS = MultiModalGuiderParams()

DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_1 = 0.25
DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_2 = 0.5

# Our own wording: the usual failure modes of video diffusion, to steer away from.
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, low resolution, pixelated, compression artifacts, noise, grain, "
    "overexposed, underexposed, washed-out colors, oversaturated, flickering, jittery or stuttering motion, "
    "warped or melting shapes, distorted faces, extra or missing limbs, deformed hands, unnatural poses, "
    "morphing objects, inconsistent lighting, frozen frames, abrupt cuts, watermark, logo, subtitles, text overlay, "
    "static image, cartoonish, low quality, amateur footage, distorted audio, muffled sound, background hiss, "
    "off-sync speech, silence"
)


@dataclass(frozen=True)
class PipelineParams:
    """A pipeline's command-line defaults, in the reference's shape (its parser builders take one)."""

    seed: int = DEFAULT_SEED
    stage_1_height: int = DEFAULT_1_STAGE_HEIGHT
    stage_1_width: int = DEFAULT_1_STAGE_WIDTH
    num_frames: int = DEFAULT_NUM_FRAMES
    frame_rate: float = DEFAULT_FRAME_RATE
    num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS
    video_guider_params: MultiModalGuiderParams = field(default_factory=lambda: replace(DEFAULT_VIDEO_GUIDER_PARAMS))
    audio_guider_params: MultiModalGuiderParams = field(default_factory=lambda: replace(DEFAULT_AUDIO_GUIDER_PARAMS))

    @property
    def stage_2_height(self) -> int:
        return 2 * self.stage_1_height

    @property
    def stage_2_width(self) -> int:
        return 2 * self.stage_1_width


LTX_2_PARAMS = PipelineParams()
LTX_2_3_PARAMS = replace(
    LTX_2_PARAMS,
    num_inference_steps=LTX_2_3_NUM_INFERENCE_STEPS,
    video_guider_params=replace(DEFAULT_VIDEO_GUIDER_PARAMS, stg_blocks=[LTX_2_3_STG_BLOCK]),
    audio_guider_params=replace(DEFAULT_AUDIO_GUIDER_PARAMS, stg_blocks=[LTX_2_3_STG_BLOCK]),
)
LTX_2_3_HQ_PARAMS = PipelineParams(
    stage_1_height=DEFAULT_HQ_HEIGHT // 2,
    stage_1_width=DEFAULT_HQ_WIDTH // 2,
    num_inference_steps=DEFAULT_HQ_NUM_INFERENCE_STEPS,
    video_guider_params=replace(DEFAULT_HQ_VIDEO_GUIDER_PARAMS),
    audio_guider_params=replace(DEFAULT_HQ_AUDIO_GUIDER_PARAMS),
)
