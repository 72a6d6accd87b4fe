"""Small media files the pipeline requests condition on: two images, a clip with sound, a soundtrack.

Shared by the 1.0.0 parity harness (which runs our package) and the LTX-2.5 golden script (which runs in the
reference's environment): both import it with ``tests/`` on the path, and its bytes must not change, since
committed fixtures were made from them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_image(path: Path, shade: int) -> None:
    from PIL import Image

    w, h = 96, 80
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    pixels[..., 2] = shade
    pixels[20:40, 24:48] = 255
    Image.fromarray(pixels).save(path)


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def write_clip(path: Path, frames: int = 17, fps: int = 24, size: int = 64, audio_rate: int = 16000) -> None:
    """H.264 video and 16-bit PCM audio (a little longer than the video, as AAC padding would make it).

    PCM, not AAC: the reference reads audio after a seek to the start, which makes FFmpeg's AAC decoder
    lose its warm-up and decode the first 36 ms differently; ours decodes them as written.
    """
    x = np.linspace(0, 255, size, dtype=np.float32)
    audio = (tone(frames / fps + 0.1, audio_rate) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="mov") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("pcm_s16le", rate=audio_rate, layout="stereo")
        for i in range(frames):
            rgb = np.stack([np.roll(x, 3 * i)[None, :].repeat(size, 0), x[:, None].repeat(size, 1),
                            np.full((size, size), 40.0 + 10 * i)], -1).astype(np.uint8)  # fmt: skip
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T).reshape(1, -1), format="s16", layout="stereo")
        chunk.sample_rate = audio_rate
        chunk.pts = 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))


def write_wav(path: Path, seconds: float, rate: int) -> None:
    samples = tone(seconds, rate)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        pcm = (samples.T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
