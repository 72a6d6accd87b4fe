"""Reading and writing the media the pipelines consume and produce.

Everything user-facing goes through here so that bad inputs fail early with an
:class:`InputError` that names the file and says what was expected, and so that
outputs are written atomically: an interrupted run never leaves a truncated mp4
behind at the requested path.
"""

from __future__ import annotations

import io
import json
import math
import os
import queue
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from ltx_core.types import Audio
from PIL import Image, ImageOps, UnidentifiedImageError

from ltx_pipelines.utils.errors import InputError, OutputExistsError

PathLike = str | os.PathLike[str]

_MEDIA_FORMATS_HINT = "expected a video (mp4, mov, mkv, webm) or audio file (wav, mp3, flac, m4a/aac)"
_IMAGE_FORMATS_HINT = "expected an image file Pillow can read (png, jpg, webp, bmp, ...)"
_MAX_X264_CRF = 51
_AUDIO_LAYOUTS = {1: "mono", 2: "stereo"}


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe_media` found in a file (video fields are 0 when there is no video)."""

    path: Path
    duration: float
    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    num_frames: int


def _existing_file(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path, or raise InputError if it is not an existing file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what} '{p}' does not exist; check the path.")
    if not p.is_file():
        raise InputError(f"{what} '{p}' is not a file; give the path of a file.")
    return p


def _open_media(path: Path, what: str, hint: str = _MEDIA_FORMATS_HINT) -> av.container.InputContainer:
    """Open ``path`` with PyAV, turning its errors into an InputError that names the file."""
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} '{path}' could not be opened as media ({exc}); {hint}.") from exc


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    """Best guess of a video stream's frame rate, 0.0 if the file does not say."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _container_duration(container: av.container.InputContainer) -> float:
    """Duration in seconds from the container, falling back to the longest stream; 0.0 if unknown."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(durations, default=0.0)


def probe_media(path: PathLike) -> MediaInfo:
    """Describe a media file without decoding it, so callers can validate inputs up front."""
    p = _existing_file(path, "Media file")
    with _open_media(p, "Media file") as container:
        duration = _container_duration(container)
        has_audio = len(container.streams.audio) > 0
        if not container.streams.video:
            if not has_audio:
                raise InputError(f"Media file '{p}' has no video or audio stream; {_MEDIA_FORMATS_HINT}.")
            return MediaInfo(p, duration, False, True, 0, 0, 0.0, 0)
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        num_frames = stream.frames or (round(duration * fps) if fps else 0)
        return MediaInfo(p, duration, True, has_audio, stream.width, stream.height, fps, num_frames)


# --------------------------------------------------------------------------- images


def load_image(path: PathLike) -> Image.Image:
    """Load any Pillow-readable image as upright RGB (EXIF orientation applied, as phones expect)."""
    p = _existing_file(path, "Image file")
    try:
        with Image.open(p) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"Image file '{p}' could not be read ({exc}); {_IMAGE_FORMATS_HINT}.") from exc


def _check_size(height: int, width: int) -> None:
    """Reject non-positive target sizes with a clear message."""
    if height <= 0 or width <= 0:
        raise InputError(f"Target size must be positive, got height={height}, width={width}.")


def resize_and_center_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    """Scale ``image`` to cover (width, height) keeping its aspect, then crop the centre to that exact size."""
    _check_size(height, width)
    src_w, src_h = image.size
    if (src_w, src_h) == (width, height):
        return image.copy()
    scale = max(width / src_w, height / src_h)
    new_w = max(width, round(src_w * scale))
    new_h = max(height, round(src_h * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left = (new_w - width) // 2
    top = (new_h - height) // 2
    return resized.crop((left, top, left + width, top + height))


def _pad_to_even(pixels: np.ndarray) -> np.ndarray:
    """Repeat the last row/column where needed, because yuv420p needs even sizes."""
    h, w = pixels.shape[:2]
    return np.pad(pixels, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _h264_roundtrip(pixels: np.ndarray, crf: int, preset: str | None = None) -> np.ndarray:
    """Encode one RGB frame (even sizes) as H.264 in an in-memory mp4 and decode it back."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height = pixels.shape[1], pixels.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        decoded = next(container.decode(video=0))
        return decoded.to_ndarray(format="rgb24")


def compress_like_video(image: Image.Image, crf: int) -> Image.Image:
    """Give a conditioning image the H.264 artifacts the model saw in training video frames.

    ``crf <= 0`` disables this and returns the image unchanged. The returned image has the input's size.
    """
    if crf <= 0:
        return image
    if crf > _MAX_X264_CRF:
        raise InputError(f"crf must be at most {_MAX_X264_CRF} (libx264's range), got {crf}.")
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    decoded = _h264_roundtrip(_pad_to_even(rgb), crf)
    return Image.fromarray(np.ascontiguousarray(decoded[:height, :width]))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float32 [1, 3, 1, H, W] in [-1, 1], i.e. a one-frame video batch."""
    pixels = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8))
    return video_to_tensor(pixels.unsqueeze(0))


def load_image_conditioning(
    path: PathLike, height: int, width: int, crf: int = 33, *, compress_first: bool = False
) -> torch.Tensor:
    """Load an image and prepare it exactly like a conditioning frame: sized, compressed, normalised.

    ``compress_first`` is the reference 1.2.0's order (what LTX-2.5 follows): the H.264 round trip at the source
    size, then a bilinear resize of the float pixels. Otherwise the image is sized with Lanczos first (ours
    for LTX-2 and 2.3, within the 1.0.0 parity tolerances).
    """
    if compress_first:
        return _compressed_then_resized(load_image(path), height, width, crf)
    image = resize_and_center_crop(load_image(path), height, width)
    return image_to_tensor(compress_like_video(image, crf))


#: libx264 preset of the reference 1.2.0's conditioning round trip (it changes the decoded pixels).
_REFERENCE_ROUNDTRIP_PRESET = "veryfast"


def _compressed_then_resized(image: Image.Image, height: int, width: int, crf: int) -> torch.Tensor:
    """The reference 1.2.0's preparation: an odd last row/column dropped, the round trip (veryfast), then
    float pixels scaled to cover (height, width) by plain bilinear interpolation and centre-cropped."""
    _check_size(height, width)
    if crf > _MAX_X264_CRF:
        raise InputError(f"crf must be at most {_MAX_X264_CRF} (libx264's range), got {crf}.")
    rgb = np.asarray(image.convert("RGB"))
    if crf > 0 and min(rgb.shape[:2]) >= 2:
        even = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
        rgb = _h264_roundtrip(np.ascontiguousarray(even), crf, _REFERENCE_ROUNDTRIP_PRESET)
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float32).permute(2, 0, 1).unsqueeze(0)
    src_h, src_w = pixels.shape[-2:]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = math.ceil(src_h * scale), math.ceil(src_w * scale)
    pixels = torch.nn.functional.interpolate(pixels, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    pixels = pixels[:, :, top : top + height, left : left + width]
    return (pixels.unsqueeze(2) / 127.5) - 1.0


# --------------------------------------------------------------------------- reading video / audio


@dataclass(frozen=True)
class VideoClip:
    """Decoded video: uint8 frames [F, H, W, 3], their rate, and the audio track if any."""

    frames: torch.Tensor
    fps: float
    audio: Audio | None


def _decode_frames(
    container: av.container.InputContainer, size: tuple[int, int] | None, max_frames: int | None
) -> list[np.ndarray]:
    """Decode up to ``max_frames`` RGB frames, resized/cropped to ``size`` = (height, width) if given."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    frames: list[np.ndarray] = []
    for frame in container.decode(stream):
        if max_frames is not None and len(frames) >= max_frames:
            break
        if size is None:
            frames.append(frame.to_ndarray(format="rgb24"))
        else:
            frames.append(np.asarray(resize_and_center_crop(frame.to_image(), *size)))
    return frames


def _target_size(height: int | None, width: int | None) -> tuple[int, int] | None:
    """Validate the optional (height, width) pair: both or neither."""
    if height is None and width is None:
        return None
    if height is None or width is None:
        raise InputError("Give both height and width to resize video frames, or neither.")
    _check_size(height, width)
    return height, width


def read_video(
    path: PathLike,
    height: int | None = None,
    width: int | None = None,
    max_frames: int | None = None,
    with_audio: bool = True,
) -> VideoClip:
    """Decode a video's frames (and optionally its audio) for use as conditioning or reference."""
    p = _existing_file(path, "Video file")
    size = _target_size(height, width)
    if max_frames is not None and max_frames <= 0:
        raise InputError(f"max_frames must be positive, got {max_frames}.")
    with _open_media(p, "Video file") as container:
        if not container.streams.video:
            raise InputError(f"Video file '{p}' has no video stream; {_MEDIA_FORMATS_HINT}.")
        fps = _stream_fps(container.streams.video[0])
        has_audio = len(container.streams.audio) > 0
        try:
            frames = _decode_frames(container, size, max_frames)
        except av.FFmpegError as exc:
            raise InputError(f"Video file '{p}' could not be decoded ({exc}).") from exc
    if not frames:
        raise InputError(f"Video file '{p}' contains no decodable frames.")
    if fps <= 0:
        raise InputError(f"Video file '{p}' does not state its frame rate; re-encode it with a fixed fps.")
    audio = None
    if with_audio and has_audio:
        audio = read_audio(p, max_duration=len(frames) / fps)
    return VideoClip(frames=torch.from_numpy(np.stack(frames)), fps=fps, audio=audio)


def video_to_tensor(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [F, H, W, 3] -> float32 [1, 3, F, H, W] in [-1, 1], the layout the VAE takes."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise InputError(f"Expected uint8 frames of shape [F, H, W, 3], got {tuple(frames.shape)} {frames.dtype}.")
    return (frames.permute(3, 0, 1, 2).unsqueeze(0).to(torch.float32) / 127.5) - 1.0


def _check_audio_window(start_time: float, max_duration: float | None) -> None:
    """Reject negative or empty windows before touching the file."""
    if start_time < 0:
        raise InputError(f"Audio start time must be >= 0 seconds, got {start_time}.")
    if max_duration is not None and max_duration <= 0:
        raise InputError(f"Audio max duration must be > 0 seconds, got {max_duration}.")


def _decode_audio(container: av.container.InputContainer, stop_sample: int | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to planar float32 [channels, samples] at its native rate and layout.

    Stops early once ``stop_sample`` samples are available, so short windows of long files stay cheap.
    """
    stream = container.streams.audio[0]
    resampler: av.AudioResampler | None = None
    chunks: list[np.ndarray] = []
    rate, total = stream.rate, 0
    for frame in container.decode(stream):
        if resampler is None:
            rate = frame.sample_rate
            resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=rate)
        for converted in resampler.resample(frame):
            chunks.append(converted.to_ndarray())
            total += chunks[-1].shape[1]
        if stop_sample is not None and total >= stop_sample:
            break
    else:
        if resampler is not None:
            chunks.extend(converted.to_ndarray() for converted in resampler.resample(None))
    if not chunks:
        return np.zeros((stream.channels or 1, 0), dtype=np.float32), rate
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), rate


def read_audio(path: PathLike, start_time: float = 0.0, max_duration: float | None = None) -> Audio:
    """Decode the window [start_time, start_time + max_duration] of a file's first audio track.

    Works for audio files and for the audio track of videos; keeps the native sample rate and channels.
    """
    _check_audio_window(start_time, max_duration)
    p = _existing_file(path, "Audio file")
    with _open_media(p, "Audio file") as container:
        if not container.streams.audio:
            raise InputError(f"File '{p}' has no audio stream; {_MEDIA_FORMATS_HINT}.")
        rate = container.streams.audio[0].rate or 0
        stop = None if max_duration is None or not rate else round((start_time + max_duration) * rate)
        try:
            samples, rate = _decode_audio(container, stop)
        except av.FFmpegError as exc:
            raise InputError(f"Audio in '{p}' could not be decoded ({exc}).") from exc
    total = samples.shape[1]
    first = round(start_time * rate)
    if first >= total:
        raise InputError(
            f"Audio start time {start_time:.3f} s is beyond the end of '{p}' ({total / max(rate, 1):.3f} s long)."
        )
    last = total if max_duration is None else min(total, first + round(max_duration * rate))
    waveform = torch.from_numpy(np.ascontiguousarray(samples[:, first:last])).clamp_(-1.0, 1.0)
    return Audio(waveform=waveform, sampling_rate=int(rate))


# --------------------------------------------------------------------------- writing video


def check_output_path(path: PathLike, overwrite: bool = False) -> Path:
    """Validate an output path before any model is loaded, so a long run cannot fail at the very end."""
    p = Path(path).expanduser()
    if p.suffix.lower() != ".mp4":
        raise InputError(f"Output path '{p}' must end in .mp4 (got '{p.suffix or 'no suffix'}').")
    if p.is_dir():
        raise InputError(f"Output path '{p}' is a folder; give a file name ending in .mp4.")
    if p.exists() and not overwrite:
        raise OutputExistsError(_exists_message(p))
    _check_folder_writable(p.parent.resolve())
    return p.resolve()


def _exists_message(path: Path) -> str:
    return (
        f"Output file '{path}' exists; pass --overwrite (overwrite=True from Python) to replace it, "
        "or choose another --output-path."
    )


def _check_folder_writable(folder: Path) -> None:
    """Raise InputError unless ``folder`` exists writable, or could be created inside a writable folder."""
    ancestor = folder
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"Output folder '{folder}' cannot be created: '{ancestor}' is a file, not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"Output folder '{folder}' is not writable: no write permission in '{ancestor}'.")


def _frame_chunks(frames: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[np.ndarray]:
    """Yield validated uint8 [F, H, W, 3] numpy chunks from one tensor or an iterable of tensors."""
    chunks = [frames] if isinstance(frames, (torch.Tensor, np.ndarray)) else frames
    for chunk in chunks:
        chunk = torch.as_tensor(chunk)
        if chunk.ndim == 3:
            chunk = chunk.unsqueeze(0)
        if chunk.ndim != 4 or chunk.shape[-1] != 3 or chunk.dtype != torch.uint8:
            raise InputError(
                f"Video frames must be uint8 [F, H, W, 3], got {tuple(chunk.shape)} {chunk.dtype}."
            )
        yield chunk.detach().cpu().numpy()


def _audio_samples(audio: Audio) -> np.ndarray:
    """Audio -> contiguous float32 [channels, samples] in [-1, 1], the layout AAC's 'fltp' wants."""
    waveform = audio.waveform.detach().to("cpu", torch.float32)
    if waveform.ndim == 3 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 2 or waveform.shape[0] not in _AUDIO_LAYOUTS:
        shape = tuple(waveform.shape)
        raise InputError(f"Audio waveform must be [channels, samples] with 1 or 2 channels, got {shape}.")
    if audio.sampling_rate <= 0:
        raise InputError(f"Audio sampling rate must be positive, got {audio.sampling_rate}.")
    return np.ascontiguousarray(waveform.clamp(-1.0, 1.0).numpy())


# veryfast + CRF 18: measured 4-5x faster than libx264's default (medium, CRF 23) on a 121-frame
# 768x512 clip, at visually lossless quality; encoding had been ~half of a warm distilled run on an H100.
H264_OPTIONS = {"preset": "veryfast", "crf": "18"}


class _Mp4Writer:
    """Encodes H.264 video and AAC audio into an open container, interleaving audio as video advances."""

    def __init__(self, path: Path, fps: float, audio: Audio | None, metadata: dict[str, str] | None) -> None:
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart+use_metadata_tags"})
        for key, value in (metadata or {}).items():
            self.container.metadata[str(key)] = str(value)
        if metadata:
            self.container.metadata["comment"] = json.dumps(metadata, ensure_ascii=False, default=str)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.audio = audio
        self.samples = _audio_samples(audio) if audio is not None else None
        self.video_stream: av.video.stream.VideoStream | None = None
        self.audio_stream: av.audio.stream.AudioStream | None = None
        self.frames_written = 0
        self.samples_written = 0

    def _open_streams(self, height: int, width: int) -> None:
        """Add the streams once the frame size is known (from the first chunk)."""
        if height % 2 or width % 2:
            raise InputError(
                f"Video size {width}x{height} must be even in both dimensions for H.264 yuv420p; "
                "use a width and height that are multiples of 32."
            )
        stream = self.container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(H264_OPTIONS)
        stream.thread_type = "AUTO"  # frame + slice threads: encoding was the slowest step of a warm run
        self.video_stream = stream
        if self.audio is not None and self.samples is not None:
            layout = _AUDIO_LAYOUTS[self.samples.shape[0]]
            self.audio_stream = self.container.add_stream("aac", rate=self.audio.sampling_rate, layout=layout)

    def write_chunk(self, chunk: np.ndarray) -> None:
        """Encode one chunk of frames, then the audio that plays during them."""
        if self.video_stream is None:
            self._open_streams(chunk.shape[1], chunk.shape[2])
        elif chunk.shape[1:3] != (self.video_stream.height, self.video_stream.width):
            raise InputError(
                f"All frames must have the same size: got {chunk.shape[2]}x{chunk.shape[1]} after "
                f"{self.video_stream.width}x{self.video_stream.height}."
            )
        for pixels in chunk:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = self.frames_written
            self.container.mux(self.video_stream.encode(frame))
            self.frames_written += 1
        self._write_audio_until(self.frames_written / self.rate)

    def _write_audio_until(self, seconds: Fraction) -> None:
        """Encode the audio samples up to ``seconds``, so audio never runs past the video."""
        if self.audio_stream is None or self.samples is None or self.audio is None:
            return
        end = min(self.samples.shape[1], int(seconds * self.audio.sampling_rate))
        if end <= self.samples_written:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(self.samples[:, self.samples_written : end]),
            format="fltp",
            layout=self.audio_stream.layout.name,
        )
        frame.sample_rate = self.audio.sampling_rate
        frame.pts = self.samples_written
        self.container.mux(self.audio_stream.encode(frame))
        self.samples_written = end

    def finish(self) -> None:
        """Flush the encoders and close the container (writes the moov atom)."""
        if self.video_stream is None:
            raise InputError("No video frames were given to write.")
        self.container.mux(self.video_stream.encode(None))
        if self.audio_stream is not None:
            self.container.mux(self.audio_stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        """Close the container after a failure, ignoring further errors (the file is deleted anyway)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - we are already handling the original error
            pass


def _partial_path(path: Path) -> Path:
    """A unique hidden temporary name next to ``path``, so os.replace is an atomic rename."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial.mp4")


def write_video(
    path: PathLike,
    frames: torch.Tensor | Iterable[torch.Tensor],
    fps: float,
    audio: Audio | None = None,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an H.264/AAC mp4 atomically: a failed or interrupted run leaves nothing at ``path``.

    ``frames`` is a uint8 [F, H, W, 3] tensor or an iterable of such chunks, so decoding can stream.
    """
    final = Path(path).expanduser()
    if final.exists() and not overwrite:
        raise OutputExistsError(_exists_message(final))
    if final.is_dir():
        raise InputError(f"Output path '{final}' is a folder; give a file name ending in .mp4.")
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}.")
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(final)
    writer: _Mp4Writer | None = None
    try:
        writer = _Mp4Writer(partial, fps, audio, metadata)
        for chunk in _frame_chunks(frames):
            writer.write_chunk(chunk)
        writer.finish()
        os.replace(partial, final)
    except BaseException:
        if writer is not None:
            writer.abort()
        partial.unlink(missing_ok=True)
        raise
    return final


class BackgroundVideoWriter:
    """Writes an mp4 on a thread while the caller hands it frame chunks (GPU decoding overlaps H.264).

    ``with BackgroundVideoWriter(path, fps, audio, ...) as writer: writer.put(chunk)``: the file is written
    atomically by :func:`write_video`; an exception in the ``with`` block (or in the encoder) leaves no file.
    At most ``depth`` chunks wait in between, so host memory holds a few chunks, never the whole video.
    """

    _END, _ABORT = object(), object()

    def __init__(self, path: PathLike, fps: float, audio: Audio | None = None, metadata: dict[str, str] | None = None,
                 overwrite: bool = False, depth: int = 2) -> None:  # fmt: skip
        self._args = (path, self._chunks(), fps, audio, metadata, overwrite)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.path: Path | None = None
        self._thread = threading.Thread(target=self._run, name="mp4 writer", daemon=True)

    def _chunks(self) -> Iterator[torch.Tensor]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if item is self._ABORT:
                raise _WriteAborted()
            yield item

    def _run(self) -> None:
        try:
            self.path = write_video(*self._args)
        except _WriteAborted:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = e

    def __enter__(self) -> "BackgroundVideoWriter":
        self._thread.start()
        return self

    def put(self, chunk: torch.Tensor) -> None:
        while True:
            if self._error is not None or not self._thread.is_alive():
                raise self._error or RuntimeError("the mp4 writer stopped early")
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> Path:
        """No more frames: wait until the file is complete and in place; returns its path."""
        if self._thread.is_alive():
            self._queue.put(self._END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.path

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._thread.is_alive():
            self._queue.put(self._ABORT if exc is not None else self._END)
        self._thread.join()
        if exc is None and self._error is not None:
            raise self._error


class _WriteAborted(Exception):
    """The producer failed: the writer stops and removes its partial file."""


def encode_video(
    video: torch.Tensor | Iterable[torch.Tensor],
    fps: float,
    audio: Audio | None,
    output_path: PathLike,
    video_chunks_number: int | None = None,  # noqa: ARG001 - the reference sizes a progress bar with it
    *,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """The reference's ``encode_video`` call, on our writer: what ``video, audio = pipeline(...)`` unpacks to.

    Written atomically like every output; an existing file is refused unless ``overwrite=True``.
    """
    return write_video(output_path, video, fps, audio, metadata=metadata, overwrite=overwrite)
