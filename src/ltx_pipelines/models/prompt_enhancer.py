"""The separate prompt enhancer (``--prompt-enhancer-gemma-root``): which Gemma a folder holds, and Gemma 4's.

A Gemma 3 folder is built like the text encoder (``models.gemma``, ltx-core's ``GemmaTextEncoder``). A dense
Gemma 4 instruct folder (``model_type`` ``gemma4``, e.g. gemma-4-E2B-it) is built by transformers itself and
generates as the reference 1.2.0 runs a Gemma 4 enhancer: greedy, no n-gram of 5 tokens repeated, up to 600 new
tokens, the chat prompt left-padded to a multiple of 8 tokens. It rewrites text prompts only: transformers'
Gemma 4 image processor needs torchvision, which this package does not install, so image-conditioned
enhancement needs a Gemma 3 enhancer. Everything else (Gemma 4 unified, which only encodes; Gemma 4 with
mixture-of-experts blocks; other model types) is refused, naming the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_pipelines.utils.errors import InputError

GEMMA3, GEMMA4 = "gemma3", "gemma4"
#: The reference 1.2.0's generation settings for a Gemma 4 enhancer.
GEMMA4_MAX_NEW_TOKENS = 600
GEMMA4_NO_REPEAT_NGRAM_SIZE = 5
#: The chat prompt is left-padded to a multiple of this many tokens (as the reference does).
PAD_MULTIPLE = 8
_SUPPORTED = "a generative Gemma 3 folder or a dense Gemma 4 instruct folder (model_type 'gemma4')"


@dataclass(frozen=True)
class EnhancerFolder:
    """A checked prompt-enhancer folder: its Gemma family and Hugging Face config."""

    root: Path
    family: str
    config: dict

    @property
    def rewrites_images(self) -> bool:
        """Whether it can enhance image-conditioned prompts (the Gemma 3 path shows it the first image)."""
        return self.family == GEMMA3


def _refuse(root: Path, why: str) -> InputError:
    return InputError(f"--prompt-enhancer-gemma-root {root}: {why} The prompt enhancer must be {_SUPPORTED}.")


def _top_config(root: Path) -> dict:
    """The folder's own config.json ({} when absent: a Gemma 3 download may keep it deeper)."""
    path = root / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise _refuse(root, f"config.json is not valid JSON ({e}).") from e


def _check_gemma4(root: Path, config: dict) -> None:
    """A dense Gemma 4 with weights, a tokenizer and a chat template."""
    text = config.get("text_config") or {}
    if text.get("enable_moe_block") or text.get("num_experts"):
        raise _refuse(root, "a Gemma 4 with mixture-of-experts blocks is not supported (only dense Gemma 4).")
    if not any(root.glob("*.safetensors")):
        raise _refuse(root, "no weights (*.safetensors) in the folder.")
    if not (root / "tokenizer.json").is_file():
        raise _refuse(root, "no tokenizer.json in the folder.")
    tokenizer_config = root / "tokenizer_config.json"
    has_template = (root / "chat_template.jinja").is_file() or (
        tokenizer_config.is_file() and "chat_template" in json.loads(tokenizer_config.read_text())
    )
    if not has_template:
        raise _refuse(root, "no chat template (chat_template.jinja, or chat_template in tokenizer_config.json).")


def inspect_prompt_enhancer(root: str | Path) -> EnhancerFolder:
    """Which Gemma the folder holds, refusing what cannot rewrite prompts (before anything loads)."""
    from ltx_pipelines.models.gemma import find_gemma_files

    root = Path(root).expanduser()
    if not root.is_dir():
        raise _refuse(root, "not a folder.")
    config = _top_config(root)
    model_type = config.get("model_type")
    if model_type == GEMMA4:
        _check_gemma4(root, config)
        return EnhancerFolder(root, GEMMA4, config)
    if model_type == "gemma4_unified":
        raise _refuse(root, "Gemma 4 unified (LTX-2.5's text encoder) only encodes prompts.")
    if model_type not in (GEMMA3, None):  # None: a Gemma 3 download with its config deeper in the folder
        raise _refuse(root, f"its model_type is {model_type!r}.")
    try:
        files = find_gemma_files(root)
    except InputError as e:
        raise _refuse(root, str(e)) from e
    return EnhancerFolder(root, GEMMA3, files.config)


class Gemma4PromptEnhancer(torch.nn.Module):
    """A dense Gemma 4 instruct model that rewrites prompts (the ``enhance_t2v`` of ltx-core's Gemma encoder)."""

    def __init__(self, model: torch.nn.Module, tokenizer: object):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    def enhance_t2v(
        self, prompt: str, max_new_tokens: int | None = None, system_prompt: str = "", seed: int = 0  # noqa: ARG002
    ) -> str:
        """Greedy, so the seed changes nothing (taken for the same call as Gemma 3's)."""
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": f"user prompt: {prompt}"}]
        ids, mask = self._chat_inputs(messages)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens or GEMMA4_MAX_NEW_TOKENS,
                do_sample=False, no_repeat_ngram_size=GEMMA4_NO_REPEAT_NGRAM_SIZE, temperature=None, top_p=None,
                top_k=None, pad_token_id=self._pad_id(),
            )  # fmt: skip
        return self.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)

    def enhance_i2v(self, prompt: str, image: object, **kwargs: object) -> str:  # noqa: ARG002
        raise InputError("A Gemma 4 prompt enhancer rewrites text prompts only; use a Gemma 3 enhancer with images.")

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else 0

    def _chat_inputs(self, messages: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of the chat prompt (the template writes BOS), left-padded to ``PAD_MULTIPLE``."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        pad = -ids.shape[1] % PAD_MULTIPLE
        ids = torch.cat([torch.full((1, pad), self._pad_id(), dtype=ids.dtype), ids], dim=1)
        mask = torch.ones_like(ids)
        mask[:, :pad] = 0
        device = next(self.model.parameters()).device
        return ids.to(device), mask.to(device)


def build_gemma4_enhancer(root: Path, device: torch.device, dtype: torch.dtype) -> Gemma4PromptEnhancer:
    """Load a checked dense Gemma 4 folder with transformers (weights, tokenizer, chat template)."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    model = AutoModelForImageTextToText.from_pretrained(str(root), dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    return Gemma4PromptEnhancer(model.to(device).eval(), tokenizer)


__all__ = ["GEMMA3", "GEMMA4", "GEMMA4_MAX_NEW_TOKENS", "EnhancerFolder", "Gemma4PromptEnhancer",
           "build_gemma4_enhancer", "inspect_prompt_enhancer"]  # fmt: skip
