"""Prompt enhancement: the Gemma text encoder rewrites a short prompt into a detailed one.

LTX-2 was trained on long, concrete captions (subjects, motion, camera, light, sound);
a one-line user prompt leaves most of that to chance. Gemma -- already loaded to encode
the prompt -- expands it with ltx-core's ``enhance_t2v`` (text only) or ``enhance_i2v``
(text + the first conditioning image), guided by the system prompts below (ours).
Sampling is seeded, so the same seed gives the same rewrite.

A separate folder (``--prompt-enhancer-gemma-root``) rewrites instead when given: LTX-2.5's Gemma 4
unified text encoder only encodes, so it is the only way to enhance with a 2.5 model. A Gemma 3 folder
rewrites as above; a dense Gemma 4 instruct folder (``models.prompt_enhancer``) as the reference 1.2.0 runs
one: greedy, up to 600 new tokens, text prompts only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import torch

from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.models.gemma3 import generation_positions_from_mask
from ltx_pipelines.models.prompt_enhancer import Gemma4PromptEnhancer
from ltx_pipelines.utils.constants import DEFAULT_SEED
from ltx_pipelines.utils.media_io import load_image

logger = logging.getLogger(__name__)

#: Upper bound on the tokens Gemma may add; enough for a rich paragraph, short of the encoder's context.
DEFAULT_ENHANCE_MAX_NEW_TOKENS = 256

T2V_SYSTEM_PROMPT = """\
You turn short ideas into prompts for a text-to-video model that also generates the soundtrack.
Rewrite the user's idea as one paragraph of plain present-tense prose, 80 to 160 words, that a
camera operator and a sound recordist could shoot from. Keep every element the user asked for and
do not contradict it. Describe, in this order: the main subject and how it looks; what it does,
step by step, over a few seconds; the setting and the background; the light and the colours; the
camera (framing, angle, lens feel, whether and how it moves); and finally what is heard (speech in
quotes with who says it, ambient sound, music, effects). Be concrete and visual; prefer nouns and
verbs to adjectives. No lists, no headings, no camera jargon the picture cannot show, no mention of
"video", "prompt" or "scene description". Output only the paragraph."""

I2V_SYSTEM_PROMPT = """\
You write prompts for an image-to-video model that also generates the soundtrack. The attached
image is the first frame of the video; the user says what should happen. Write one paragraph of
plain present-tense prose, 80 to 160 words. Start from what the image shows -- subjects, their
clothes and look, the place, the light, the framing -- and stay faithful to it: do not add or
remove people or objects that would contradict the frame. Then describe the motion the user asked
for as it unfolds over a few seconds, how the camera behaves (static, pan, push-in, handheld), and
what is heard (speech in quotes with who says it, ambient sound, music, effects). Be concrete; no
lists, no headings, no mention of "image", "frame", "video" or "prompt". Output only the paragraph."""


def enhance_prompt(
    ledger: ModelLedger,
    prompt: str,
    image_path: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    max_new_tokens: int | None = None,
) -> str:
    """Return Gemma's rewrite of ``prompt`` (seeded); the original prompt if Gemma returns nothing.

    ``max_new_tokens`` None: the enhancer's own bound (Gemma 3: ``DEFAULT_ENHANCE_MAX_NEW_TOKENS``; Gemma 4: 600).
    """
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1; got {max_new_tokens}.")
    image = load_image(image_path) if image_path is not None else None
    started = time.perf_counter()
    name = ledger.prompt_enhancer_name()
    with ledger.use(name) as text_encoder, _rng_fork_safe_on(ledger.device), _generation_positions(text_encoder):
        if not isinstance(text_encoder, Gemma4PromptEnhancer):
            max_new_tokens = max_new_tokens or DEFAULT_ENHANCE_MAX_NEW_TOKENS
        if image is None:
            text = text_encoder.enhance_t2v(
                prompt, max_new_tokens=max_new_tokens, system_prompt=T2V_SYSTEM_PROMPT, seed=seed
            )
        else:
            text = text_encoder.enhance_i2v(
                prompt, image=image, max_new_tokens=max_new_tokens, system_prompt=I2V_SYSTEM_PROMPT, seed=seed
            )
    if name != "text_encoder" and ledger.device.type == "cuda":
        ledger.release(name)  # a separate enhancer is not part of the memory plan: it never stays on the GPU
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())  # metadata-safe, one line
    if not text:
        logger.warning("Prompt enhancement returned nothing; keeping the original prompt.")
        return prompt
    logger.info("Enhanced prompt (%.1f s, seed %d): %s", time.perf_counter() - started, seed, text)
    return text


def maybe_enhance_prompt(
    ledger: ModelLedger,
    prompt: str,
    enabled: bool,
    images: Sequence[object] = (),
    seed: int = DEFAULT_SEED,
) -> tuple[str, dict[str, str]]:
    """(prompt to encode, metadata to store): the pipelines' one-line hook for ``enhance_prompt=True``.

    ``images`` are ImageConditioningInput-like (``.path``, ``.frame_idx``); the earliest one in the
    video is shown to Gemma, since the rewrite should describe how the video opens.
    """
    if not enabled:
        return prompt, {}
    first = min(images, key=lambda image: image.frame_idx, default=None)
    enhanced = enhance_prompt(ledger, prompt, first.path if first is not None else None, seed, max_new_tokens=None)
    return enhanced, {"enhanced_prompt": enhanced}


def _generation_positions(enhancer: torch.nn.Module) -> object:
    """Gemma 3 (ltx-core's encoder, padded at the end): positions as transformers 4.57 made them. Gemma 4 pads on
    the left, which transformers 5 numbers right by itself."""
    if isinstance(enhancer, Gemma4PromptEnhancer):
        return nullcontext()
    return generation_positions_from_mask(enhancer.model)


@contextmanager
def _rng_fork_safe_on(device: torch.device) -> Iterator[None]:
    """Let ltx-core's enhancement run on machines without CUDA.

    ltx-core 1.0's ``GemmaTextEncoder._enhance`` calls ``torch.random.fork_rng(devices=[model device])``
    with fork_rng's default ``device_type="cuda"``, which initialises CUDA and fails on a CPU-only host.
    While the model is not on CUDA, CPU devices are dropped from that list; fork_rng always saves and
    restores the CPU generator anyway, so the seeding behaves exactly as on a GPU.
    """
    if device.type == "cuda":
        yield
        return
    original = torch.random.fork_rng

    def fork_rng(devices: object = None, *args: object, **kwargs: object) -> object:
        kept = [d for d in (devices or []) if torch.device(d).type == "cuda"]
        return original(kept, *args, **kwargs)

    with mock.patch.object(torch.random, "fork_rng", fork_rng):
        yield


__all__ = [
    "DEFAULT_ENHANCE_MAX_NEW_TOKENS",
    "I2V_SYSTEM_PROMPT",
    "T2V_SYSTEM_PROMPT",
    "enhance_prompt",
    "maybe_enhance_prompt",
]
