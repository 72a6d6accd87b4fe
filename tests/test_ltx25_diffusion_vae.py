"""LTX-2.5's diffusion-decoder video VAE file through the pipelines: picked by --model-dir, chosen or refused with
--vae-decoder, decoded end to end (tiled or not) from the smoke bundle. (Its numbers against the reference are
checked in tests/models/ltx25/test_diffusion_decoder.py.)

The smoke weights are random: the videos are noise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

from ltx_pipelines.distilled import DistilledPipeline
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionVideoDecoder
from ltx_pipelines.smoke_model.ltx25 import DIFFUSION_VAE_NAME, write_diffusion_video_vae
from ltx_pipelines.utils.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"prompt": "a red kite over the sea", "height": 128, "width": 128, "seed": 3, "num_frames": 17}


@pytest.fixture(scope="module")
def download(ltx25_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke download with both video VAE files in vae/, as the real one has."""
    root = tmp_path_factory.mktemp("diffvae") / "ltx-2.5"
    shutil.copytree(ltx25_bundle.root, root)
    write_diffusion_video_vae(root / DIFFUSION_VAE_NAME, seed=9)
    return root


def test_model_dir_decodes_with_the_diffusion_decoder_and_tiles_agree(download: Path) -> None:
    pipeline = DistilledPipeline(model_dir=download, device="cpu", dtype=torch.float32)
    assert pipeline.files.video_vae.path.name == Path(DIFFUSION_VAE_NAME).name
    whole = pipeline(**TINY).frames
    assert isinstance(pipeline.ledger.get("video_decoder"), DiffusionVideoDecoder)
    assert whole.shape == (17, 128, 128, 3)
    tiles = TilingConfig(SpatialTilingConfig(64, 32), TemporalTilingConfig(16, 8))
    tiled = pipeline(**TINY, tiling_config=tiles).frames
    again = pipeline(**TINY).frames
    assert torch.equal(whole, again)  # the decoder's noise comes from the generator: same seed, same frames
    assert (whole.int() - tiled.int()).abs().float().mean() < 8  # the reference's seam blend (see the README)


def test_vae_decoder_flag_picks_or_refuses_before_loading(download: Path, ltx25_bundle) -> None:
    conv = DistilledPipeline(model_dir=download, vae_decoder="conv", device="cpu")
    assert conv.files.video_vae.path.name == ltx25_bundle.video_vae.name
    with pytest.raises(InputError, match="--vae-decoder conv: .* holds the diffusion video decoder"):
        DistilledPipeline(model_dir=download, video_vae_path=download / DIFFUSION_VAE_NAME, vae_decoder="conv")
    with pytest.raises(InputError, match="--vae-decoder diffusion: .* holds the convolutional"):
        DistilledPipeline(model_dir=download, video_vae_path=ltx25_bundle.video_vae, vae_decoder="diffusion")
    with pytest.raises(InputError, match="no diffusion-decoder video VAE file"):
        DistilledPipeline(model_dir=ltx25_bundle.root, vae_decoder="diffusion")
