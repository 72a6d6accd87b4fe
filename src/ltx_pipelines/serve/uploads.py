"""Uploaded inputs, stored under the job's folder and checked by their content, never by their name.

An upload is copied to ``<uploads>/<job-id>/.<role>.part``, its first bytes are matched against the
signatures of the formats we accept, and the file is then decoded (Pillow for images, PyAV for video and
audio) to prove it really is one. Only then is it renamed ``<role>.<ext>``, the extension coming from the
detected format. The client's file name and declared content type are ignored.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image, UnidentifiedImageError

_SNIFF_BYTES = 64

#: Pillow format name -> extension.
_IMAGE_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
#: Largest image accepted (pixels); bigger ones are refused before they are decoded.
MAX_IMAGE_PIXELS = 64_000_000


class UnsupportedUpload(Exception):
    """The upload is not a file of the kind its role needs (the message says which kinds are accepted)."""


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a file say it is."""

    family: str  # "image", "mp4", "matroska", "avi", "wav", "flac", "ogg", "mp3"
    extension: str


def sniff(head: bytes) -> Sniffed | None:
    """Identify a file by its signature (magic bytes); None when it matches no format we accept."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpg")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "bmp")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Sniffed("wav", "wav")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Sniffed("avi", "avi")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return Sniffed("mp4", "mov" if brand == b"qt  " else "m4a" if brand in (b"M4A ", b"M4B ") else "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("matroska", "webm" if b"webm" in head else "mkv")
    if head.startswith(b"fLaC"):
        return Sniffed("flac", "flac")
    if head.startswith(b"OggS"):
        return Sniffed("ogg", "ogg")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("mp3", "mp3")
    return None


_ACCEPTED = {
    "image": "an image (PNG, JPEG, WebP, GIF or BMP)",
    "video": "a video (MP4, MOV, WebM, MKV or AVI)",
    "audio": "an audio file (WAV, MP3, FLAC, Ogg, M4A) or a video with sound",
}


def _check_image(path: Path) -> None:
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UnsupportedUpload(f"is {image.width}x{image.height}, more than {MAX_IMAGE_PIXELS} pixels")
            image.verify()
        with Image.open(path) as image:
            image.load()  # verify() does not decode the pixels; a truncated file fails here
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise UnsupportedUpload(f"could not be decoded as an image ({e})") from e


def _check_media(path: Path, kind: str) -> None:
    """Open with PyAV and decode one frame of the stream the role needs."""
    try:
        with av.open(str(path), "r") as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                raise UnsupportedUpload(f"has no {kind} stream")
            for _ in container.decode(streams[0]):
                return
            raise UnsupportedUpload(f"has a {kind} stream without a single decodable frame")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise UnsupportedUpload(f"could not be decoded ({e})") from e


def _kind_matches(sniffed: Sniffed, kind: str) -> bool:
    if kind == "image":
        return sniffed.family == "image"
    if kind == "video":
        return sniffed.family in ("mp4", "matroska", "avi")
    return sniffed.family != "image"  # audio: an audio container, or a video whose sound track is used


def store_upload(source: BinaryIO, folder: Path, role: str, kind: str) -> Path:
    """Copy an upload into ``folder`` as ``<role>.<ext>`` after checking it is ``kind``; return its path.

    Raises UnsupportedUpload (nothing is left behind) when the content is not of that kind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{role}.part"
    try:
        with open(partial, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        with open(partial, "rb") as f:
            sniffed = sniff(f.read(_SNIFF_BYTES))
        if sniffed is None or not _kind_matches(sniffed, kind):
            raise UnsupportedUpload(f"is not {_ACCEPTED[kind]}")
        if kind == "image":
            _check_image(partial)
        else:
            _check_media(partial, kind)
        extension = sniffed.extension
        if kind == "audio" and sniffed.family == "mp4" and extension == "mp4":
            extension = "m4a" if not _has_video(partial) else "mp4"
        final = folder / f"{role}.{extension}"
        partial.replace(final)
        return final
    except UnsupportedUpload as e:
        raise UnsupportedUpload(f"Upload {role} {e}; it must be {_ACCEPTED[kind]}.") from None
    finally:
        partial.unlink(missing_ok=True)


def _has_video(path: Path) -> bool:
    with av.open(str(path), "r") as container:
        return bool(container.streams.video)


__all__ = ["MAX_IMAGE_PIXELS", "Sniffed", "UnsupportedUpload", "sniff", "store_upload"]
