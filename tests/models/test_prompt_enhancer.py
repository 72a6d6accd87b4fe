"""models/prompt_enhancer.py: which Gemma a prompt-enhancer folder holds, and a dense Gemma 4 rewriting prompts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ltx_pipelines.models.prompt_enhancer import (
    GEMMA3,
    GEMMA4,
    GEMMA4_MAX_NEW_TOKENS,
    PAD_MULTIPLE,
    Gemma4PromptEnhancer,
    build_gemma4_enhancer,
    inspect_prompt_enhancer,
)
from ltx_pipelines.utils.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
MESSAGES = [{"role": "system", "content": "write video prompts ."}, {"role": "user", "content": "a red fox runs"}]


@pytest.fixture(scope="module")
def enhancer(dense_gemma4: Path) -> Gemma4PromptEnhancer:
    return build_gemma4_enhancer(dense_gemma4, torch.device("cpu"), torch.float32)


def test_a_gemma3_and_a_dense_gemma4_folder_are_enhancers(smoke_bundle, dense_gemma4: Path) -> None:  # noqa: ANN001
    gemma3, gemma4 = inspect_prompt_enhancer(smoke_bundle.gemma_root), inspect_prompt_enhancer(dense_gemma4)
    assert (gemma3.family, gemma4.family) == (GEMMA3, GEMMA4)
    assert gemma3.rewrites_images and not gemma4.rewrites_images


def _set_config(**changes: object) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key.startswith("text_"):
                config["text_config"][key[len("text_") :]] = value
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return change


REFUSED = {
    "mixture of experts": (_set_config(text_enable_moe_block=True), "mixture-of-experts"),
    "gemma4_unified": (_set_config(model_type="gemma4_unified"), "only encodes"),
    "another model": (_set_config(model_type="llama"), "model_type is 'llama'"),
    "no tokenizer": (lambda folder: (folder / "tokenizer.json").unlink(), "no tokenizer.json"),
    "no chat template": (lambda folder: (folder / "tokenizer_config.json").write_text("{}"), "no chat template"),
    "no weights": (lambda folder: (folder / "model.safetensors").unlink(), "no weights"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_cannot_rewrite_prompts_is_refused(case: str, dense_gemma4: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(dense_gemma4, tmp_path / "gemma"))
    change, why = REFUSED[case]
    change(folder)
    with pytest.raises(InputError, match=rf"--prompt-enhancer-gemma-root {folder}: .*{why}.*dense Gemma 4"):
        inspect_prompt_enhancer(folder)


def test_a_file_is_not_a_folder(dense_gemma4: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        inspect_prompt_enhancer(dense_gemma4 / "model.safetensors")


def test_the_chat_prompt_is_left_padded_to_a_multiple_of_8(enhancer: Gemma4PromptEnhancer) -> None:
    ids, mask = enhancer._chat_inputs(MESSAGES)
    pad = int((mask == 0).sum())
    assert ids.shape[1] % PAD_MULTIPLE == 0 and pad < PAD_MULTIPLE and not mask[0, pad:].eq(0).any()
    assert ids[0, :pad].eq(enhancer.tokenizer.pad_token_id).all()
    assert ids[0, pad] == enhancer.tokenizer.bos_token_id  # written once, by the chat template


def test_generation_is_greedy_bounded_and_the_padding_changes_nothing(
    enhancer: Gemma4PromptEnhancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    original = enhancer.model.generate

    def generate(**kwargs: object) -> torch.Tensor:
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(enhancer.model, "generate", generate)
    text = enhancer.enhance_t2v("a red fox runs", max_new_tokens=10, system_prompt="write video prompts .", seed=1)
    assert text and text == enhancer.enhance_t2v("a red fox runs", max_new_tokens=10, system_prompt="write video "
                                                 "prompts .", seed=2)  # greedy: the seed changes nothing  # fmt: skip
    assert calls[0]["do_sample"] is False and calls[0]["no_repeat_ngram_size"] == 5
    ids, mask = calls[0]["input_ids"], calls[0]["attention_mask"]
    pad = int((mask == 0).sum())
    unpadded = original(input_ids=ids[:, pad:], attention_mask=mask[:, pad:], max_new_tokens=10, do_sample=False,
                        no_repeat_ngram_size=5)  # fmt: skip
    assert enhancer.tokenizer.decode(unpadded[0, ids.shape[1] - pad :], skip_special_tokens=True) == text
    enhancer.enhance_t2v("a red fox runs", system_prompt="write video prompts .")
    assert calls[-1]["max_new_tokens"] == GEMMA4_MAX_NEW_TOKENS  # the reference's bound for Gemma 4


def test_images_are_refused(enhancer: Gemma4PromptEnhancer) -> None:
    with pytest.raises(InputError, match="text prompts only"):
        enhancer.enhance_i2v("a fox", image=torch.zeros(3, 8, 8))
