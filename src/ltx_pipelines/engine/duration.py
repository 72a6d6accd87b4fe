"""Auto duration: the clip's length predicted from the prompt (LTX-2.5's duration head), within a range.

A request asks for it with ``num_frames=AutoDuration(min_seconds, max_seconds)`` (``--auto-duration MIN MAX``);
leaving the frame count out does the same when the model has a duration head, and gives the default length
otherwise. Until the prompt is encoded the request is checked and planned at the longest length the range
allows; then the head's prediction settles it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltx_pipelines.models.ltx25.duration_head import DEFAULT_MAX_SECONDS, DEFAULT_MIN_SECONDS, frames_for_seconds
from ltx_pipelines.utils.errors import InputError

#: Frames of the VAE's temporal grid: frame counts are 8k + 1.
_STRIDE = 8


@dataclass(frozen=True)
class AutoDuration:
    """Let the duration head choose the length, between ``min_seconds`` and ``max_seconds``."""

    min_seconds: float = DEFAULT_MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS

    def check(self, frame_rate: float) -> None:
        """Refuse a range that cannot give a valid length (before anything loads)."""
        if not (math.isfinite(self.min_seconds) and math.isfinite(self.max_seconds)):
            raise InputError(f"--auto-duration needs finite seconds; got {self.min_seconds:g} {self.max_seconds:g}.")
        if self.min_seconds <= 0 or self.min_seconds > self.max_seconds:
            raise InputError(f"--auto-duration MIN MAX needs 0 < MIN <= MAX; got {self.min_seconds:g} "
                             f"{self.max_seconds:g}.")  # fmt: skip
        low, high = round(self.min_seconds * frame_rate), round(self.max_seconds * frame_rate)
        if not any((frames - 1) % _STRIDE == 0 for frames in range(max(low, 1), high + 1)):
            raise InputError(
                f"--auto-duration {self.min_seconds:g} {self.max_seconds:g} at {frame_rate:g} fps holds no valid "
                f"frame count (8k+1: 9, 17, 25, ...): widen the range."
            )

    def longest(self, frame_rate: float) -> int:
        """The most frames a prediction can give: what the request is checked and planned with."""
        return frames_for_seconds(self.max_seconds, frame_rate, self.min_seconds, self.max_seconds)


__all__ = ["AutoDuration"]
