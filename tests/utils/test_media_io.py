"""Tests for ltx_pipelines.utils.media_io; all media is generated on the fly."""

from __future__ import annotations

import json
import math
import os
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from ltx_core.types import Audio
from PIL import Image

from ltx_pipelines.utils.errors import InputError, OutputExistsError
from ltx_pipelines.utils.media_io import (
    MediaInfo,
    VideoClip,
    check_output_path,
    compress_like_video,
    encode_video,
    image_to_tensor,
    load_image,
    load_image_conditioning,
    probe_media,
    read_audio,
    read_video,
    resize_and_center_crop,
    video_to_tensor,
    write_video,
)

FPS = 24
H, W = 64, 96
NUM_FRAMES = 24


# --------------------------------------------------------------------------- helpers


def gradient_image(width: int, height: int) -> Image.Image:
    """A smooth colourful picture (codecs change it a little, not a lot)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def make_frames(num: int = NUM_FRAMES, height: int = H, width: int = W) -> torch.Tensor:
    """uint8 [F, H, W, 3] frames whose brightness rises over time."""
    frames = np.zeros((num, height, width, 3), dtype=np.uint8)
    for i in range(num):
        frames[i, ..., 0] = 20 + i * 8
        frames[i, ..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        frames[i, ..., 2] = 128
    return torch.from_numpy(frames)


def sine(seconds: float, rate: int, channels: int, freq: float = 440.0) -> torch.Tensor:
    """float32 [channels, samples] sine at half scale."""
    t = torch.arange(round(seconds * rate), dtype=torch.float32) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(channels, 1)


def write_wav(path: Path, waveform: torch.Tensor, rate: int) -> Path:
    """Write a 16-bit PCM wav with the standard library."""
    pcm = (waveform.clamp(-1, 1).T.numpy() * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(waveform.shape[0])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def video_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mp4 with stereo audio and metadata, shared by the read-back tests."""
    path = tmp_path_factory.mktemp("vid") / "clip.mp4"
    audio = Audio(waveform=sine(NUM_FRAMES / FPS, 48000, 2), sampling_rate=48000)
    write_video(path, make_frames(), FPS, audio=audio, metadata={"prompt": "a red fox", "seed": "42"})
    return path


# --------------------------------------------------------------------------- images


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    gradient_image(40, 20).save(path, exif=exif)
    image = load_image(path)
    assert image.size == (20, 40)
    assert image.mode == "RGB"


@pytest.mark.parametrize("suffix", [".png", ".webp", ".bmp"])
def test_load_image_reads_common_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    Image.new("RGBA", (30, 10), (10, 200, 30, 255)).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (30, 10)
    assert image.getpixel((5, 5))[:2] == pytest.approx((10, 200), abs=3)


def test_load_image_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(InputError, match="nope.png"):
        load_image(missing)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(InputError, match="junk.png"):
        load_image(junk)


def test_resize_and_center_crop_keeps_the_centre() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (80, 30, 120, 70))  # red square in the middle
    out = resize_and_center_crop(image, 64, 64)
    assert out.size == (64, 64)
    r, g, b = out.getpixel((32, 32))
    assert r > 200 and b < 50
    assert out.getpixel((2, 32))[2] > 200  # edges still blue: sides were cropped, not squeezed
    assert resize_and_center_crop(image, 90, 30).size == (30, 90)


def test_compress_like_video() -> None:
    image = gradient_image(65, 33)  # odd size on purpose
    assert compress_like_video(image, 0) is image
    out = compress_like_video(image, 40)
    assert out.size == image.size and out.mode == "RGB"
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(image, dtype=np.int16))
    assert diff.max() > 0  # artifacts were added
    assert diff.mean() < 12  # but the picture is still the same picture


def test_image_to_tensor_shape_and_range() -> None:
    image = Image.new("RGB", (8, 4), (0, 255, 0))
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 1, 4, 8) and tensor.dtype == torch.float32
    assert tensor[0, 0].max() == -1.0 and tensor[0, 1].min() == 1.0


def test_load_image_conditioning(tmp_path: Path) -> None:
    path = tmp_path / "cond.png"
    gradient_image(120, 80).save(path)
    tensor = load_image_conditioning(path, height=64, width=32, crf=33)
    assert tensor.shape == (1, 3, 1, 64, 32)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


@pytest.mark.parametrize(("size", "crf"), [((97, 81), 18), ((96, 80), 0), ((1, 7), 33)])
def test_load_image_conditioning_compressed_first(tmp_path: Path, size: tuple[int, int], crf: int) -> None:
    """LTX-2.5's order (the reference's): round trip at the source size (odd edges dropped; none at crf 0 or for a
    side under 2 pixels), then bilinear to cover the target and a centre crop."""
    path = tmp_path / "cond.png"
    gradient_image(*size).save(path)
    tensor = load_image_conditioning(path, height=64, width=32, crf=crf, compress_first=True)
    assert tensor.shape == (1, 3, 1, 64, 32) and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    if crf == 0:  # plain bilinear of the file's pixels
        pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).float().permute(2, 0, 1)[None]
        scale = max(64 / size[1], 32 / size[0])
        h, w = math.ceil(size[1] * scale), math.ceil(size[0] * scale)
        resized = torch.nn.functional.interpolate(pixels, size=(h, w), mode="bilinear", align_corners=False)
        top, left = (h - 64) // 2, (w - 32) // 2
        expected = resized[:, :, top : top + 64, left : left + 32].unsqueeze(2) / 127.5 - 1.0
        assert torch.equal(tensor, expected)


# --------------------------------------------------------------------------- writing video


def test_write_video_round_trip(video_with_audio: Path) -> None:
    with av.open(str(video_with_audio)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (video.width, video.height) == (W, H)
        assert float(video.average_rate) == pytest.approx(FPS)
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.channels == 2 and audio.rate == 48000
        frames = sum(1 for _ in container.decode(video=0))
        assert frames == NUM_FRAMES
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        assert audio_seconds == pytest.approx(video_seconds, abs=0.1)
        metadata = dict(container.metadata)
    assert json.loads(metadata["comment"]) == {"prompt": "a red fox", "seed": "42"}
    assert metadata.get("prompt") == "a red fox"


def test_write_video_streams_chunks_and_trims_long_audio(tmp_path: Path) -> None:
    frames = make_frames(20)
    long_audio = Audio(waveform=sine(3.0, 16000, 1), sampling_rate=16000)  # longer than the video
    out = write_video(tmp_path / "sub" / "chunks.mp4", (c for c in frames.split(7)), FPS, audio=long_audio)
    assert out == tmp_path / "sub" / "chunks.mp4"
    info = probe_media(out)
    assert info.has_video and info.has_audio and info.num_frames == 20
    assert (info.width, info.height) == (W, H)
    assert read_audio(out).waveform.shape[1] / 16000 == pytest.approx(20 / FPS, abs=0.1)


def test_write_video_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="exists"):
        write_video(path, make_frames(2), FPS)
    assert path.read_bytes() == b"precious"
    write_video(path, make_frames(2), FPS, overwrite=True)
    assert probe_media(path).num_frames == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    def chunks():
        yield make_frames(4)
        raise KeyboardInterrupt

    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        write_video(path, chunks(), FPS, audio=Audio(sine(1.0, 16000, 1), 16000))
    assert list(tmp_path.iterdir()) == []


def test_write_video_rejects_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="even"):
        write_video(tmp_path / "odd.mp4", make_frames(2, 33, 64), FPS)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- reading audio / video


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2)])
def test_read_audio_wav(tmp_path: Path, rate: int, channels: int) -> None:
    path = write_wav(tmp_path / "a.wav", sine(1.5, rate, channels), rate)
    audio = read_audio(path)
    assert audio.sampling_rate == rate
    assert audio.waveform.dtype == torch.float32
    assert audio.waveform.shape == (channels, round(1.5 * rate))
    assert audio.waveform.abs().max() == pytest.approx(0.5, abs=0.01)


def test_read_audio_window_and_errors(tmp_path: Path) -> None:
    rate = 16000
    ramp = torch.linspace(-1, 1, 2 * rate).unsqueeze(0)
    path = write_wav(tmp_path / "ramp.wav", ramp, rate)
    window = read_audio(path, start_time=0.5, max_duration=0.25)
    assert window.waveform.shape == (1, rate // 4)
    assert window.waveform[0, 0].item() == pytest.approx(ramp[0, rate // 2].item(), abs=1e-3)
    assert read_audio(path, start_time=1.5).waveform.shape == (1, rate // 2)
    with pytest.raises(InputError, match="beyond the end"):
        read_audio(path, start_time=5.0)
    with pytest.raises(InputError):
        read_audio(path, start_time=-1.0)
    with pytest.raises(InputError):
        read_audio(path, max_duration=-1.0)
    with pytest.raises(InputError, match="missing.wav"):
        read_audio(tmp_path / "missing.wav")


def test_read_audio_from_video(video_with_audio: Path, tmp_path: Path) -> None:
    audio = read_audio(video_with_audio)
    assert audio.sampling_rate == 48000 and audio.waveform.shape[0] == 2
    assert audio.waveform.shape[1] / 48000 == pytest.approx(NUM_FRAMES / FPS, abs=0.1)
    silent = write_video(tmp_path / "silent.mp4", make_frames(2), FPS)
    with pytest.raises(InputError, match="no audio stream"):
        read_audio(silent)


def test_read_video(video_with_audio: Path) -> None:
    clip = read_video(video_with_audio)
    assert isinstance(clip, VideoClip)
    assert clip.frames.shape == (NUM_FRAMES, H, W, 3) and clip.frames.dtype == torch.uint8
    assert clip.fps == pytest.approx(FPS)
    assert clip.audio is not None and clip.audio.waveform.shape[0] == 2
    # The brightness ramp survives the codec.
    red = clip.frames[..., 0].float().mean(dim=(1, 2))
    assert red[-1] > red[0] + 100

    small = read_video(video_with_audio, height=32, width=32, max_frames=5, with_audio=False)
    assert small.frames.shape == (5, 32, 32, 3) and small.audio is None

    tensor = video_to_tensor(small.frames)
    assert tensor.shape == (1, 3, 5, 32, 32) and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_read_video_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    wav = write_wav(tmp_path / "a.wav", sine(0.2, 16000, 1), 16000)
    with pytest.raises(InputError, match="no video stream"):
        read_video(wav)


def test_probe_media(video_with_audio: Path, tmp_path: Path) -> None:
    info = probe_media(video_with_audio)
    assert isinstance(info, MediaInfo)
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.num_frames) == (W, H, NUM_FRAMES)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(NUM_FRAMES / FPS, abs=0.1)

    audio_only = probe_media(write_wav(tmp_path / "a.wav", sine(0.5, 16000, 1), 16000))
    assert audio_only.has_audio and not audio_only.has_video
    assert audio_only.width == audio_only.num_frames == 0
    assert audio_only.duration == pytest.approx(0.5, abs=0.01)

    with pytest.raises(InputError, match="gone.mp4"):
        probe_media(tmp_path / "gone.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video")
    with pytest.raises(InputError, match=r"notes\.mp4.*expected a video"):
        probe_media(text)


# --------------------------------------------------------------------------- output path checks


def test_check_output_path(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "a.mp4") == (tmp_path / "a.mp4").resolve()
    assert check_output_path(tmp_path / "new" / "deeper" / "a.mp4").parent.name == "deeper"
    assert not (tmp_path / "new").exists()  # validation does not create folders
    with pytest.raises(InputError, match=r"\.mp4"):
        check_output_path(tmp_path / "a.mov")
    existing = tmp_path / "b.mp4"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="--output-path"):
        check_output_path(existing)
    assert check_output_path(existing, overwrite=True) == existing.resolve()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_output_path(a_file / "c.mp4")


def test_check_output_path_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Simulate a read-only folder with os.access, since chmod does not stop root.
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(InputError, match="not writable"):
        check_output_path(locked / "a.mp4")
    with pytest.raises(InputError, match="not writable"):
        check_output_path(locked / "sub" / "a.mp4")


# --------------------------------------------------------------------------- the reference's encode_video


def test_encode_video_takes_what_a_result_unpacks_to(tmp_path: Path) -> None:
    from ltx_pipelines.engine.pipeline_base import GenerationResult

    frames = torch.randint(0, 255, (9, 64, 96, 3), dtype=torch.uint8)
    tone = torch.sin(torch.arange(6000) / 10.0).repeat(2, 1) * 0.2
    result = GenerationResult(frames=frames, audio=Audio(waveform=tone, sampling_rate=16000), frame_rate=24.0)
    video, audio = result  # the reference's return value: a chunk iterator and the Audio
    assert not isinstance(video, torch.Tensor) and audio is result.audio
    out = tmp_path / "ref-style.mp4"
    assert encode_video(video=video, fps=24, audio=audio, output_path=str(out), video_chunks_number=1) == out
    info = probe_media(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (9, 96, 64, True)


def test_encode_video_never_overwrites_silently(tmp_path: Path) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    frames = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite .*overwrite=True"):
        encode_video(frames, 24, None, out, 1)
    assert out.read_bytes() == b"precious"
    encode_video(frames, 24, None, out, 1, overwrite=True)
    assert probe_media(out).num_frames == 1
