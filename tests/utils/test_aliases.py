"""Tests for ltx_pipelines.utils.aliases: the reference's keyword names, accepted beside ours."""

from __future__ import annotations

import inspect

import pytest

from ltx_pipelines.utils.aliases import aliases_of, reference_names


@reference_names(distilled_checkpoint_path="checkpoint_path")
def build(checkpoint_path: str, gemma_root: str = "g") -> tuple[str, str]:
    return checkpoint_path, gemma_root


def test_either_name_reaches_our_parameter() -> None:
    assert build("a") == build(checkpoint_path="a") == build(distilled_checkpoint_path="a") == ("a", "g")
    assert list(inspect.signature(build).parameters) == ["checkpoint_path", "gemma_root"]  # ours stay documented
    assert aliases_of(build) == {"distilled_checkpoint_path": "checkpoint_path"}
    assert aliases_of(len) == {}


def test_both_names_at_once_is_refused() -> None:
    with pytest.raises(TypeError, match="both checkpoint_path= and distilled_checkpoint_path="):
        build(checkpoint_path="a", distilled_checkpoint_path="b")
