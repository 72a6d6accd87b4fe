"""Reading the LTX-2.5 golden fixtures (made by the reference 1.2.0: see the make_ltx25_*_goldens.py scripts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

GOLDEN = Path(__file__).resolve().parent / "ltx25"
TEXT_MANIFEST = json.loads((GOLDEN / "text_encoder.json").read_text())
TEXT_ENCODER = GOLDEN / TEXT_MANIFEST["text_encoder"]["file"]
PROMPTS = TEXT_MANIFEST["prompts"]
#: float32 agreement with the reference asked of every component.
TOLERANCE = 1e-5


def golden(file: str | Path, prompt: str) -> dict[str, torch.Tensor]:
    """The reference's tensors for one prompt, stored in ``file`` under ``golden.<prompt>.``."""
    prefix = f"golden.{prompt}."
    with safe_open(str(GOLDEN / file), framework="pt") as f:
        return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118


def rel_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


def check_stats(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """Sum, sum of |x| and sum of x^2 over the whole tensor (every row, not only the stored ones)."""
    x = ours.double()
    total, absolute, squares = reference.tolist()
    assert abs(float(x.sum()) - total) <= TOLERANCE * absolute
    assert float(x.abs().sum()) == pytest.approx(absolute, rel=TOLERANCE)
    assert float((x * x).sum()) == pytest.approx(squares, rel=TOLERANCE)
