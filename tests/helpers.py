"""Small assertions shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import av


def probe_mp4(path: Path) -> dict:
    """Frame count, fps, size and audio facts of a written mp4, read back with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        # Read the stream's facts while its container is open (PyAV frees them on close).
        fps, width, height = float(video.average_rate), video.width, video.height
        codec, pix_fmt = video.codec_context.name, video.codec_context.pix_fmt
    with av.open(str(path)) as container:
        audio_streams = container.streams.audio
        audio_duration = 0.0
        if audio_streams:
            stream = audio_streams[0]
            samples = sum(frame.samples for frame in container.decode(audio=0))
            audio_duration = samples / stream.rate
        return {
            "frames": frames,
            "fps": fps,
            "width": width,
            "height": height,
            "codec": codec,
            "pix_fmt": pix_fmt,
            "has_audio": bool(audio_streams),
            "audio_codec": audio_streams[0].codec_context.name if audio_streams else None,
            "audio_duration": audio_duration,
            "metadata": dict(container.metadata),
        }
