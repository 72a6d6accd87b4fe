"""The memory pre-flight: which offload mode `auto` picks at which thresholds, and what it refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ltx_pipelines.memory import preflight
from ltx_pipelines.memory.budget import (
    ComponentSizes,
    OWN_CROSS_ADALN_WIDTHS,
    ModelSizes,
    StageLoad,
    TransformerSizes,
    pass_state_bytes,
    stage_activation_bytes,
    diffusion_decoder_bytes,
    text_encoder_sizes,
    transformer_sizes,
    vae_decode_bytes,
)
from ltx_pipelines.memory.host import GIB, HostMemory
from ltx_pipelines.memory.offload import OffloadMode
from ltx_pipelines.memory.preflight import MemoryRequest, plan_memory, plan_with_policy
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_tiling import TileSizes, plan_working_set_bytes
from ltx_pipelines.utils.errors import InputError


def gemma_3_12b_header() -> dict[str, tuple[str, tuple[int, ...]]]:
    """The bf16 tensors of Gemma 3 12B (its published config), named as in its files: 22.7 GiB in all."""
    width, ff, vocab, q, kv = 3840, 15360, 262208, 16 * 256, 8 * 256
    layer = {"self_attn.q_proj.weight": (q, width), "self_attn.k_proj.weight": (kv, width),
             "self_attn.v_proj.weight": (kv, width), "self_attn.o_proj.weight": (width, q),
             "self_attn.q_norm.weight": (256,), "self_attn.k_norm.weight": (256,),
             "mlp.gate_proj.weight": (ff, width), "mlp.up_proj.weight": (ff, width),
             "mlp.down_proj.weight": (width, ff),
             **{f"{n}_layernorm.weight": (width,) for n in ("input", "post_attention", "pre_feedforward",
                                                              "post_feedforward")}}  # fmt: skip
    tensors = {f"language_model.model.layers.{i}.{k}": v for i in range(48) for k, v in layer.items()}
    tensors["language_model.model.embed_tokens.weight"] = (vocab, width)
    tensors["language_model.model.norm.weight"] = (width,)
    vision = 1152  # SigLIP so400m: 27 layers, 4304 wide, 896 px in 14 px patches
    tensors["vision_tower.vision_model.embeddings.position_embedding.weight"] = (4096, vision)
    tensors["vision_tower.vision_model.embeddings.patch_embedding.weight"] = (vision, 3, 14, 14)
    for i in range(27):
        for name, shape in (("self_attn.q_proj", (vision, vision)), ("self_attn.k_proj", (vision, vision)),
                            ("self_attn.v_proj", (vision, vision)), ("self_attn.out_proj", (vision, vision)),
                            ("mlp.fc1", (4304, vision)), ("mlp.fc2", (vision, 4304))):  # fmt: skip
            tensors[f"vision_tower.vision_model.encoder.layers.{i}.{name}.weight"] = shape
            tensors[f"vision_tower.vision_model.encoder.layers.{i}.{name}.bias"] = (shape[0],)
    tensors["multi_modal_projector.mm_input_projection_weight"] = (vision, width)
    return {name: ("BF16", shape) for name, shape in tensors.items()}


GEMMA = text_encoder_sizes([gemma_3_12b_header()], num_layers=48, compute_bytes=2)
# The LTX-2 19B figures (bf16): 48 blocks of 0.73 GiB, 0.7 GiB outside them; Gemma 3 12B from its shapes.
SIZES = ModelSizes(
    transformer=TransformerSizes(blocks=int(35 * GIB), block=int(35 * GIB / 48), rest=int(0.7 * GIB), num_blocks=48,
                                 video_width=4096, audio_width=2048),  # fmt: skip
    components=ComponentSizes(video_decoder=int(0.8 * GIB), video_encoder=int(0.6 * GIB),
                              audio_decoder=int(0.2 * GIB), upsampler=int(0.5 * GIB)),  # fmt: skip
    text_encoder=GEMMA,
)
# The default two-stage generation: stage 1 at 512x768 (6 144 tokens, 4 passes), stage 2 at 1024x1536.
REQUEST = MemoryRequest(
    stages=(StageLoad("stage 1", 6144, 126, 4), StageLoad("stage 2", 24576, 126, 1)),
    height=1024, width=1536, num_frames=121, has_loras=True,
)  # fmt: skip
PLENTY = HostMemory(int(200 * GIB), "MemAvailable")


def plan(free_gib: float, requested: OffloadMode = OffloadMode.AUTO, host: HostMemory = PLENTY, **kw):  # noqa: ANN003, ANN201
    return plan_memory(sizes=SIZES, request=REQUEST, requested=requested, free_gpu=int(free_gib * GIB), host=host, **kw)


def test_a_large_gpu_keeps_everything_resident() -> None:
    p = plan(80)
    assert p.offload is OffloadMode.NONE and p.ff_chunk is None and not p.stream_text_encoder


def test_just_too_small_for_resident_chunks_the_feed_forward_first() -> None:
    resident = SIZES.transformer.total + stage_activation_bytes(
        REQUEST.stages[1], SIZES.transformer, 2, batched=False, ff_chunk=None)  # fmt: skip
    p = plan((resident + 0.75 * GIB) / GIB - 0.3)
    assert p.offload is OffloadMode.NONE and p.ff_chunk == 4096


@pytest.mark.parametrize("free_gib", [24, 16])
def test_consumer_cards_stream_from_pinned_host_memory(free_gib) -> None:  # noqa: ANN001
    p = plan(free_gib)
    assert p.offload is OffloadMode.CPU
    assert p.stream_text_encoder  # 22.7 GiB of Gemma never fits on these
    assert p.gpu_peak <= p.gpu_budget
    assert "auto" in p.reason


def test_six_gib_streams_chunks_compacts_and_tiles_the_default_size() -> None:
    """An 8 GB card (about 6 GiB usable) gets the default two-stage video with every lever pulled."""
    p = plan(6)
    assert p.offload is OffloadMode.CPU and p.ff_chunk is not None and p.compact_timesteps
    assert p.stream_text_encoder and p.vae_tiling is not None and p.gpu_peak <= p.gpu_budget


def test_five_gib_refuses_the_default_size_before_loading_and_says_what_to_change() -> None:
    with pytest.raises(InputError) as e:
        plan(5)
    assert "stage 2" in str(e.value) and "--height/--width" in str(e.value)


def test_short_host_memory_makes_auto_choose_disk() -> None:
    p = plan(16, host=HostMemory(int(20 * GIB), "MemAvailable"))
    assert p.offload is OffloadMode.DISK and "short" in p.reason


def test_an_explicit_cpu_is_obeyed_even_with_little_host_memory_reported() -> None:
    """Some machines report a small MemTotal and grow on use: the user may know better."""
    p = plan(16, requested=OffloadMode.CPU, host=HostMemory(int(8 * GIB), "MemAvailable"))
    assert p.offload is OffloadMode.CPU and p.reason == "asked for"


def test_max_gpu_memory_caps_a_large_gpu() -> None:
    assert plan(80, max_gpu_memory=16).offload is OffloadMode.CPU


def test_an_impossible_request_is_refused_with_the_figures_and_what_to_change() -> None:
    with pytest.raises(InputError) as e:
        plan(80, max_gpu_memory=2)
    message = str(e.value)
    assert "GiB" in message and "--max-gpu-memory 2" in message
    assert "--quantization" in message and "--num-frames" in message


def test_explicit_resident_that_does_not_fit_suggests_offload() -> None:
    with pytest.raises(InputError, match="--offload cpu"):
        plan(24, requested=OffloadMode.NONE)


def test_on_the_cpu_nothing_is_planned_but_an_explicit_mode_streams() -> None:
    cpu = dict(sizes=SIZES, request=REQUEST, free_gpu=None, host=PLENTY)
    assert plan_memory(requested=OffloadMode.AUTO, **cpu).offload is OffloadMode.NONE
    assert plan_memory(requested=OffloadMode.DISK, **cpu).offload is OffloadMode.DISK


def test_fp8_halves_what_streaming_needs_to_pin() -> None:
    assert plan(16, fp8=True).host_peak == 2 * SIZES.transformer.blocks  # one FP8 copy per LoRA set (two)
    assert plan(16).host_peak == SIZES.transformer.blocks


def test_gemma_sizes_from_the_header_split_layers_embedding_and_what_stays_on_the_device() -> None:
    assert GEMMA.total / GIB == pytest.approx(22.70, abs=0.01)
    assert GEMMA.layer / GIB == pytest.approx(0.4175, abs=0.001) and GEMMA.num_layers == 48
    assert GEMMA.embedding / GIB == pytest.approx(1.875, abs=0.001)  # 262 208 x 3840, shared with the lm_head
    assert GEMMA.rest / GIB == pytest.approx(0.785, abs=0.01)  # vision tower, projector, final norm
    assert GEMMA.streamed(2) == GEMMA.rest + 2 * GEMMA.layer


# A request whose transformer needs next to nothing: what is left to decide is Gemma.
TINY_REQUEST = MemoryRequest(stages=(StageLoad("stage 1", 256, 26, 1),), height=64, width=64, num_frames=9)
TINY_TRANSFORMER = TransformerSizes(blocks=0, block=0, rest=0, num_blocks=0, video_width=64, audio_width=64)


def plan_gemma(free_gib: float):  # noqa: ANN201
    sizes = ModelSizes(TINY_TRANSFORMER, SIZES.components, GEMMA)
    return plan_memory(sizes=sizes, request=TINY_REQUEST, requested=OffloadMode.AUTO, free_gpu=int(free_gib * GIB),
                       host=PLENTY)  # fmt: skip


def test_streamed_gemma_counts_two_layers_and_the_rest_but_not_the_embedding(monkeypatch) -> None:  # noqa: ANN001
    for name in ("EMBEDDINGS_ACTIVATIONS", "STAGED_EMBEDDINGS_ACTIVATIONS"):  # Gemma's threshold alone
        monkeypatch.setattr(preflight, name, 0)
    need = GEMMA.streamed(2) + 1.5 * GIB  # + the activations of two long prompts
    assert plan_gemma(6).stream_text_encoder  # 3.1 GiB streamed: fits a 6 GiB card
    assert plan_gemma((need + 0.75 * GIB) / GIB + 0.01).stream_text_encoder  # just enough: the embedding is not counted
    with pytest.raises(InputError, match=f"{need / GIB:.1f} GiB of GPU memory even streamed by layer"):
        plan_gemma((need + 0.75 * GIB) / GIB - 0.05)


def test_vae_tiles_leave_room_for_the_whole_frame_blend_buffers() -> None:
    """ltx-core's tiled decode blends each temporal slice into whole-frame buffers: they count too."""
    request = MemoryRequest(stages=(StageLoad("stage 1", 1536, 126, 1),), height=1024, width=1536, num_frames=121)
    p = plan_memory(sizes=SIZES, request=request, requested=OffloadMode.AUTO, free_gpu=int(5 * GIB), host=PLENTY)
    s, t = p.vae_tiling.spatial_config, p.vae_tiling.temporal_config
    frames = min(t.tile_size_in_frames, request.num_frames)
    tile = vae_decode_bytes(frames, s.tile_size_in_pixels, s.tile_size_in_pixels, request.height, request.width)
    assert tile + SIZES.components.video_decoder <= p.gpu_budget
    # The largest tiles would fit counted alone, but not with the blend buffers of 64 whole frames.
    assert vae_decode_bytes(64, 512, 512) + SIZES.components.video_decoder <= p.gpu_budget
    assert t.tile_size_in_frames < 64


def test_text_connectors_count_for_the_embeddings_processor_not_the_streamed_transformer() -> None:
    header = {
        "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight": ("BF16", (64, 64)),
        "model.diffusion_model.patchify_proj.weight": ("BF16", (64, 128)),
        "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.ff.weight": ("BF16", (256, 64)),
        "text_embedding_projection.aggregate_embed.weight": ("BF16", (64, 512)),
    }
    t = transformer_sizes(header, {}, 2)
    assert t.rest == 2 * 64 * 128 and t.total == 2 * 64 * 64 + 2 * 64 * 128  # the connector is not in it
    c = ComponentSizes.from_header(header, 2)
    assert c.connectors == 2 * 256 * 64 and c.feature_extractor == 2 * 64 * 512


SMALL_REQUEST = MemoryRequest(stages=(StageLoad("stage 1", 1536, 126, 1),), height=256, width=384, num_frames=33)
WITH_PROCESSOR = ModelSizes(
    transformer=SIZES.transformer,
    components=replace(SIZES.components, feature_extractor=int(1.35 * GIB), connectors=int(1.32 * GIB)),
    text_encoder=GEMMA,
)


@pytest.mark.parametrize(("free_gib", "staged"), [(8, False), (5.8, True)])
def test_the_embeddings_processor_runs_in_parts_only_when_it_does_not_fit_whole(free_gib, staged) -> None:  # noqa: ANN001
    p = plan_memory(sizes=WITH_PROCESSOR, request=SMALL_REQUEST, requested=OffloadMode.AUTO,
                    free_gpu=int(free_gib * GIB), host=PLENTY)  # fmt: skip
    assert p.stage_embeddings is staged
    assert ("embeddings processor one part at a time" in p.describe()) is staged


def test_a_budget_without_room_for_one_part_of_the_processor_is_refused() -> None:
    with pytest.raises(InputError, match="embeddings processor"):
        plan_memory(sizes=WITH_PROCESSOR, request=SMALL_REQUEST, requested=OffloadMode.CPU,
                    free_gpu=int(4.2 * GIB), host=PLENTY)  # fmt: skip


def test_a_resident_load_leaves_room_for_the_connectors_it_moves_in_and_drops() -> None:
    need = SIZES.transformer.total + int(1.32 * GIB)  # more than the small request's activations
    tight = plan_memory(sizes=WITH_PROCESSOR, request=SMALL_REQUEST, requested=OffloadMode.AUTO,
                        free_gpu=need + int(0.75 * GIB) - int(0.2 * GIB), host=PLENTY)  # fmt: skip
    assert tight.offload is OffloadMode.CPU


def policy_plan(free_gib: float, keep: bool = True, host: HostMemory = PLENTY, **kw):  # noqa: ANN003, ANN201
    return plan_with_policy(keep=keep, sizes=WITH_PROCESSOR, request=REQUEST, requested=OffloadMode.AUTO,
                            free_gpu=int(free_gib * GIB), host=host, **kw)  # fmt: skip


def kept_bytes(sizes: ModelSizes) -> int:
    c = sizes.components
    return (c.video_decoder + c.video_encoder + c.audio_decoder + c.upsampler + c.embeddings_processor
            + sizes.text_encoder.total)  # fmt: skip


def test_a_card_that_holds_every_model_keeps_them_all_loaded() -> None:
    """An H200 (139 GiB) holds Gemma and the transformer together: nothing is reloaded between stages."""
    p = policy_plan(139)
    assert p.keep_models and p.offload is OffloadMode.NONE and "every model stays loaded" in p.describe()
    assert p.gpu_peak + kept_bytes(WITH_PROCESSOR) <= p.gpu_budget


@pytest.mark.parametrize("free_gib", [48, 24, 6])
def test_keeping_models_never_moves_the_transformer_off_the_gpu_nor_compacts(free_gib) -> None:  # noqa: ANN001
    """Where they do not all fit (48 GiB: the transformer alone fits), each is freed after use instead."""
    kept, low = policy_plan(free_gib), policy_plan(free_gib, keep=False)
    assert not kept.keep_models
    assert (kept.offload, kept.ff_chunk, kept.compact_timesteps) == (low.offload, low.ff_chunk, low.compact_timesteps)


def test_tiles_leave_room_for_every_model_kept_loaded() -> None:
    """The whole video would decode in the budget alone, but not beside 60 GiB of models kept loaded."""
    request = replace(REQUEST, height=512, width=768, num_frames=121)
    whole = vae_decode_bytes(121, 512, 768) + WITH_PROCESSOR.components.video_decoder
    free = (WITH_PROCESSOR.transformer.total + kept_bytes(WITH_PROCESSOR) + preflight.EMBEDDINGS_ACTIVATIONS
            + int(0.75 * GIB) + int(2 * GIB))  # fmt: skip
    assert whole < free - int(0.75 * GIB)
    p = plan_with_policy(keep=True, sizes=WITH_PROCESSOR, request=request, requested=OffloadMode.AUTO, free_gpu=free,
                         host=PLENTY)  # fmt: skip
    assert p.keep_models and p.vae_tiling is not None


def test_fp8_with_loras_kept_loaded_counts_the_second_transformer() -> None:
    sizes = replace(WITH_PROCESSOR, transformer=replace(SIZES.transformer, blocks=int(17.5 * GIB),
                                                        block=int(17.5 * GIB / 48), rest=int(0.35 * GIB)))  # fmt: skip
    free = sizes.transformer.total + kept_bytes(sizes) + 14 * GIB  # room for activations, not for a second copy
    one = plan_with_policy(keep=True, sizes=sizes, request=replace(REQUEST, has_loras=False), requested=OffloadMode.AUTO,
                           free_gpu=free, host=PLENTY, fp8=True)  # fmt: skip
    two = plan_with_policy(keep=True, sizes=sizes, request=REQUEST, requested=OffloadMode.AUTO, free_gpu=free,
                           host=PLENTY, fp8=True)  # fmt: skip
    assert one.keep_models and not two.keep_models


def test_models_are_not_kept_without_host_memory_for_the_originals_of_a_swapped_lora() -> None:
    short = HostMemory(int(30 * GIB), "MemAvailable")  # the 35 GiB of blocks' originals would not fit
    assert not policy_plan(139, host=short).keep_models
    no_loras = plan_with_policy(keep=True, sizes=WITH_PROCESSOR, request=replace(REQUEST, has_loras=False),
                                requested=OffloadMode.AUTO, free_gpu=int(139 * GIB), host=short)  # fmt: skip
    assert no_loras.keep_models


@pytest.mark.parametrize("compact", [False, True])
def test_per_token_cross_adaln_rows_add_four_widths_unless_compact(compact) -> None:  # noqa: ANN001
    """LTX-2.5 keeps 4 audio<->video AdaLN coefficients per token in each pass's state; compact makes them one row."""
    own = replace(SIZES.transformer, per_token_cross_adaln=True)
    before = pass_state_bytes(6144, 126, SIZES.transformer, 2, compact=compact)
    after = pass_state_bytes(6144, 126, own, 2, compact=compact)
    width = 2 * (6144 * own.video_width + 126 * own.audio_width)
    assert after - before == (0 if compact else OWN_CROSS_ADALN_WIDTHS * width)


# -- LTX-2.5's diffusion video decoder ------------------------------------------------------------------------

DIFFUSION = replace(SIZES, diffusion_decoder=DiffusionDecoderConfig())  # the published layout's defaults
SHORT_STAGES = (StageLoad("stage 1", 1536, 126, 1),)


def diffusion_plan(free_gib: float, height: int = 1024, width: int = 1536, frames: int = 121):  # noqa: ANN201
    request = MemoryRequest(stages=SHORT_STAGES, height=height, width=width, num_frames=frames)
    return plan_memory(sizes=DIFFUSION, request=request, requested=OffloadMode.AUTO, free_gpu=int(free_gib * GIB),
                       host=PLENTY)  # fmt: skip


def test_a_large_card_decodes_the_diffusion_decoder_whole() -> None:
    assert diffusion_plan(200).vae_tiling is None


@pytest.mark.parametrize("free_gib", [16, 6])
def test_diffusion_decoder_tiles_fit_what_is_left_after_its_weights(free_gib: float) -> None:
    p = diffusion_plan(free_gib)
    tiles = p.vae_tiling
    assert isinstance(tiles, TileSizes)
    config = DIFFUSION.diffusion_decoder
    used = plan_working_set_bytes(config, 121, 1024, 1536, tiles)
    assert used + DIFFUSION.components.video_decoder <= p.gpu_budget
    assert "diffusion decoder tiles" in p.describe()


def test_4k_under_6_gib_is_refused_before_loading_with_what_to_change() -> None:
    with pytest.raises(InputError, match=r"whole video.*--vae-decoder conv.*--max-gpu-memory"):
        diffusion_plan(6, height=2176, width=3840)
    assert isinstance(diffusion_plan(16, height=2176, width=3840).vae_tiling, TileSizes)


def test_diffusion_decoder_weights_count_what_the_decoder_keeps() -> None:
    header = {
        "decoder.conv_in.weight": ("BF16", (1024, 128)),
        "decoder.coarse_head.weight": ("BF16", (512, 512)),  # the preview head: dropped at load
        "encoder.conv_in.conv.weight": ("BF16", (128, 48, 3, 3, 3)),
        "per_channel_statistics.std-of-means": ("F32", (128,)),
    }
    assert diffusion_decoder_bytes(header, 2) == 2 * 1024 * 128 + 2 * 128
