"""Uploads are recognised by content: the right kinds are stored under their role, the rest refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ltx_pipelines.serve.uploads import UnsupportedUpload, sniff, store_upload


def png_bytes(size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 120, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "family", "extension"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 8, "image", "png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 8, "image", "jpg"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image", "webp"),
        (b"RIFF\0\0\0\0WAVEfmt ", "wav", "wav"),
        (b"\0\0\0\x20ftypisom\0\0\0\0", "mp4", "mp4"),
        (b"\0\0\0\x14ftypqt  \0\0\0\0", "mp4", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "matroska", "webm"),
        (b"fLaC\0\0\0\x22", "flac", "flac"),
        (b"ID3\x04\0\0\0\0", "mp3", "mp3"),
    ],
)
def test_formats_are_recognised_by_their_signature(head, family, extension):
    sniffed = sniff(head)
    assert (sniffed.family, sniffed.extension) == (family, extension)


def test_text_is_no_known_format():
    assert sniff(b"#!/bin/sh\nrm -rf /\n") is None


def test_an_image_is_stored_under_its_role_with_the_detected_extension(tmp_path):
    path = store_upload(io.BytesIO(jpeg_bytes()), tmp_path / "job", "image_0", "image")
    assert path.name == "image_0.jpg"
    assert sorted(p.name for p in path.parent.iterdir()) == ["image_0.jpg"]


@pytest.mark.parametrize(
    ("content", "kind", "fragment"),
    [
        (b"hello, not an image at all", "image", "is not an image"),
        (png_bytes(), "video", "is not a video"),
        (png_bytes(), "audio", "is not an audio file"),
        (png_bytes()[:40], "image", "could not be decoded as an image"),  # the signature alone is not enough
        (b"\0\0\0\x20ftypisom" + b"\0" * 200, "video", "could not be decoded"),
    ],
)
def test_wrong_or_broken_content_is_refused_and_nothing_is_left(tmp_path, content, kind, fragment):
    folder = tmp_path / "job"
    with pytest.raises(UnsupportedUpload, match=fragment):
        store_upload(io.BytesIO(content), folder, "upload", kind)
    assert not any(folder.iterdir())
