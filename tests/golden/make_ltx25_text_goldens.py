"""Golden fixtures for LTX-2.5's text path (Gemma 4 + embeddings processor), computed by the reference itself.

Like ``make_ltx25_goldens.py`` (whose helpers it reuses), this runs in the reference's own environment (LTX-2
release 1.2.0) and imports only the reference, torch and safetensors, so every number it writes is the
reference's. Our tests (``tests/models/ltx25/test_text_encoder.py``, ``test_text_embeddings.py``) check that our
text path reproduces them.

Regenerate (float32 on CPU, deterministic, a few seconds)::

    .venv/bin/python -c "from pathlib import Path; from ltx_pipelines.smoke_model.ltx25_text_encoder import \\
        write_packed_text_encoder as w; w(Path('tests/golden/ltx25/text_encoder.safetensors'), 2025)"
    /work/refenv/venv/bin/python tests/golden/make_ltx25_text_goldens.py tests/golden/ltx25

Its input, ``text_encoder.safetensors``, is written by OUR smoke writer (``ltx_pipelines.smoke_model.
ltx25_text_encoder.write_packed_text_encoder``, seed 2025, widths 32 / 16; the reference env does not have our
package, so the file is made first with ours and committed): a two-layer ``gemma4_unified`` in the packed layout
of the published ``text_encoders/gemma4-*-ltx-2.5-*.safetensors`` (ComfyUI-flat keys, ``gemma_config``
metadata, ``tokenizer_json`` and ``hf_asset__*`` tensors, the feature extractor's projections). The reference
loads it with its own loader, tokenizer, processor and feature extractor. This script never rewrites it, nor
``transformer.safetensors``, ``manifest.json`` or the duration-head files.

What it writes into OUT_DIR:

* ``text_connectors.safetensors`` and ``text_connectors_plain.safetensors``: the transformer side of the text
  path, in the layout of the published split transformer file: header metadata ``config`` (a ``transformer``
  section with the connector and width keys, nothing else), ``model_version`` 2.5.0 and
  ``gemma_source_checkpoint`` naming the text encoder's ``gemma_version``; tensors
  ``model.diffusion_model.{video,audio}_embeddings_connector.*`` (seeded random). The first turns on every
  1.2.0 connector switch (gated attention, no feed-forward biases, float64 RoPE grid, max_pos 4096, a one-layer
  audio connector) and leaves ``rope_type`` out (pins the 1.2.0 default, split); the second keeps the
  defaults (biases, no gating, float32 grid, max_pos [1]) apart from the sizes. Each file gets the reference's
  ``PromptEncoder`` (the split ``ModelPaths``: transformer file first, then the text encoder) run on the
  prompts, and its goldens under ``golden.<prompt>.`` next to the weights:
  ``input_ids`` / ``attention_mask`` (the reference's tokenizer, int32), ``hidden.<l>.tail`` (the last 48 positions of
  each of Gemma's N + 1 hidden states) and ``hidden.stats`` (per state: sum, sum of |x|, sum of x^2, over all
  1024 x D values, float64), ``features.{video,audio}.tail`` and ``.stats`` (the V2 feature extractor),
  ``context.{video,audio}.{head,tail}`` (first and last 48 rows of the final contexts) and ``.stats``, and
  ``context.mask`` (the mask the reference returns). Tokens, hidden states and features are the same for both
  files (the text encoder is shared) and are stored in the first only.
* ``text_encoder.json``: the upstream commit and environment, the prompts, the configs, the digests of every
  input and output file and of each prompt's tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EmbeddingsProcessorConfigurator
from ltx_pipelines.utils.blocks import PromptEncoder
from ltx_pipelines.utils.model_paths import ModelPaths
from make_ltx25_goldens import (
    provenance,
    require_reference,
    save_deterministic,
    sha256_of,
)
from safetensors import safe_open

SEED = 2507
TEXT_ENCODER = "text_encoder.safetensors"
TEXT_ENCODER_WRITER = {"function": "ltx_pipelines.smoke_model.ltx25_text_encoder.write_packed_text_encoder",
                       "seed": 2025, "video_width": 32, "audio_width": 16}  # fmt: skip
MODEL_VERSION = "2.5.0"
ROWS = 48  # rows kept of each 1024-row tensor, at each end
_LONG = " ".join(["the camera slowly pans across a golden field at dawn ,"] * 100)  # ~1100 tokens: truncated
PROMPTS = {
    "fox": "A red fox runs through fresh snow at dawn, the camera slowly tracks it.",
    "blank": "   ",  # stripped to nothing: BOS alone
    "unknown": "  Close up: an old man smiles; zebra quokka!  ",  # words out of the vocabulary, punctuation
    "long": _LONG,
}
V2 = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}
WIDTHS = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 8,
}  # fmt: skip  (video width 32, audio 16: the text encoder's projections)
CONNECTORS = {
    "text_connectors": {
        **WIDTHS, **V2,
        "connector_num_attention_heads": 2, "connector_attention_head_dim": 16, "connector_num_layers": 2,
        "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 8,
        "audio_connector_num_layers": 1,
        "connector_positional_embedding_max_pos": [4096], "connector_apply_gated_attention": True,
        "connector_ff_bias": False, "frequencies_precision": "float64",
    },
    "text_connectors_plain": {
        **WIDTHS, **V2,
        "connector_num_attention_heads": 4, "connector_attention_head_dim": 8, "connector_num_layers": 1,
        "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 8,
    },
}  # fmt: skip


def gemma_version_of(path: Path) -> str:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["gemma_config"])["gemma_version"]


def connector_weights(transformer_config: dict, text_encoder: Path, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random connectors, shaped by the reference's own configurator (names as in a transformer file)."""
    configurator = EmbeddingsProcessorConfigurator.with_gemma_model_path(str(text_encoder))
    metadata = {"config": {"transformer": transformer_config}, "model_version": MODEL_VERSION,
                "gemma_source_checkpoint": {"gemma_version": gemma_version_of(text_encoder)}}  # fmt: skip
    processor: EmbeddingsProcessor = configurator.from_metadata(metadata)
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, value in sorted(processor.state_dict().items()):
        if not name.startswith(("video_connector.", "audio_connector.")):
            continue
        modality, rest = name.split("_connector.", 1)
        scale = 0.05 if name.endswith(".bias") else float(value.shape[-1]) ** -0.5
        offset = 1.0 if name.endswith(("q_norm.weight", "k_norm.weight")) else 0.0
        drawn = offset + scale * torch.randn(value.shape, generator=generator)
        weights[f"model.diffusion_model.{modality}_embeddings_connector.{rest}"] = drawn.contiguous()
    return weights


def stats(tensor: torch.Tensor) -> torch.Tensor:
    x = tensor.detach().to(torch.float64)
    return torch.stack([x.sum(), x.abs().sum(), (x * x).sum()])


def text_encoder_goldens(tokens: dict, hidden: tuple, features: tuple) -> dict[str, torch.Tensor]:
    """What the text encoder and the feature extractor give (the same for every connector file)."""
    video_features, audio_features = features
    out = {
        "input_ids": tokens["ids"].to(torch.int32),
        "attention_mask": tokens["mask"].to(torch.int32),
        "hidden.stats": torch.stack([stats(h) for h in hidden]),
        "features.video.tail": video_features[:, -ROWS:],
        "features.video.stats": stats(video_features),
        "features.audio.tail": audio_features[:, -ROWS:],
        "features.audio.stats": stats(audio_features),
    }
    out.update({f"hidden.{layer}.tail": h[:, -ROWS:] for layer, h in enumerate(hidden)})
    return out


def prompt_goldens(name: str, shared: dict[str, torch.Tensor], output: object) -> dict[str, torch.Tensor]:
    """One prompt's tensors, under ``golden.<name>.``: ``shared`` (text encoder, features) and the contexts."""
    out = {
        **shared,
        "context.video.head": output.video_encoding[:, :ROWS],
        "context.video.tail": output.video_encoding[:, -ROWS:],
        "context.video.stats": stats(output.video_encoding),
        "context.audio.head": output.audio_encoding[:, :ROWS],
        "context.audio.tail": output.audio_encoding[:, -ROWS:],
        "context.audio.stats": stats(output.audio_encoding),
        "context.mask": output.attention_mask.to(torch.int32),
    }
    return {f"golden.{name}.{key}": value.detach().contiguous() for key, value in out.items()}


def tokens_of(encoder: torch.nn.Module, prompt: str) -> dict[str, torch.Tensor]:
    pairs = encoder.tokenizer.tokenize_with_weights(prompt)["gemma"]
    return {"ids": torch.tensor([[int(t) for t, _ in pairs]]), "mask": torch.tensor([[int(w) for _, w in pairs]])}


def run_reference(connectors: Path, text_encoder: Path, with_text_encoder: bool) -> tuple[dict, list]:
    """The reference's PromptEncoder on every prompt, and its pieces run one by one for the intermediate values."""
    paths = ModelPaths.from_split(transformer_path=str(connectors), text_encoder_path=str(text_encoder))
    encoder = PromptEncoder(paths, dtype=torch.float32, device=torch.device("cpu"))
    prompts = list(PROMPTS.values())
    with torch.no_grad():
        outputs = encoder(prompts)
        gemma = encoder._build_text_encoder()
        left = [n for n, t in (*gemma.named_parameters(), *gemma.named_buffers()) if t.is_meta]
        if left:
            raise RuntimeError(f"the reference left Gemma tensors unloaded: {left}")
        hidden = gemma.encode(prompts)
        processor = encoder._build_embeddings_processor()
        tensors = {}
        for (name, prompt), (states, mask), output in zip(PROMPTS.items(), hidden, outputs, strict=True):
            again = processor.process_hidden_states(states, mask)
            if not torch.equal(again.video_encoding, output.video_encoding):
                raise RuntimeError("the processor alone gives other contexts than the PromptEncoder")
            shared = {}
            if with_text_encoder:
                features = processor.feature_extractor(states, mask)
                shared = text_encoder_goldens(tokens_of(gemma, prompt), states, features)
            tensors.update(prompt_goldens(name, shared, output))
    return tensors, [len(states) for states, _ in hidden]


def write_connectors(out_dir: Path, name: str, transformer_config: dict, seed: int, with_text_encoder: bool) -> dict:
    text_encoder = out_dir / TEXT_ENCODER
    weights = connector_weights(transformer_config, text_encoder, seed)
    path = out_dir / f"{name}.safetensors"
    metadata = {
        "config": json.dumps({"transformer": transformer_config}),
        "model_version": MODEL_VERSION,
        "gemma_source_checkpoint": json.dumps(
            {"ltx_version": MODEL_VERSION, "gemma_version": gemma_version_of(text_encoder)}
        ),
    }
    save_deterministic(weights, path, metadata)  # weights first: the reference must load them from the file
    tensors, num_states = run_reference(path, text_encoder, with_text_encoder)
    save_deterministic({**weights, **tensors}, path, metadata)
    again, _ = run_reference(path, text_encoder, with_text_encoder)
    for key, value in tensors.items():
        if key.startswith("golden.") and not torch.allclose(again[key].double(), value.double(), rtol=1e-6, atol=1e-7):
            raise RuntimeError(f"{path} gives another {key} once the golden tensors are in it")
    prompts = {prompt: sha256_of({k: v for k, v in tensors.items() if k.startswith(f"golden.{prompt}.")})
               for prompt in PROMPTS}  # fmt: skip
    return {"file": path.name, "config": {"transformer": transformer_config}, "seed": seed,
            "hidden_states": num_states[0], "prompts_sha256": prompts,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    require_reference()
    if not (out_dir / TEXT_ENCODER).is_file():
        raise SystemExit(f"{out_dir / TEXT_ENCODER} is missing: write it with our smoke writer (see the docstring)")
    torch.use_deterministic_algorithms(True)
    files = {name: write_connectors(out_dir, name, config, SEED + i, with_text_encoder=i == 0)
             for i, (name, config) in enumerate(CONNECTORS.items())}  # fmt: skip
    manifest = {
        **provenance(
            "LTX-2.5 text path (packed Gemma 4 -> V2 features -> 1.2.0 connectors) on a tiny packed text encoder: "
            "the reference's tokens, hidden states, features and contexts (float32, CPU)",
            "tests/golden/make_ltx25_text_goldens.py",
            ("ltx-core", "ltx-pipelines", "torch", "transformers", "tokenizers"),
        ),
        "text_encoder": {
            "file": TEXT_ENCODER,
            "writer": TEXT_ENCODER_WRITER,
            "gemma_version": gemma_version_of(out_dir / TEXT_ENCODER),
            "sha256": hashlib.sha256((out_dir / TEXT_ENCODER).read_bytes()).hexdigest(),
        },
        "prompts": PROMPTS,
        "rows_kept": ROWS,
        "connectors": files,
    }
    path = out_dir / "text_encoder.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    sizes = ", ".join(f"{f['file']} ({(out_dir / f['file']).stat().st_size} bytes)" for f in files.values())
    print(f"wrote {sizes} and {path}")


if __name__ == "__main__":
    main()
