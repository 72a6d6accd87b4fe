"""The compile cache folder: where it is, atomic writes, bundles saved by one process and loaded by the next."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ltx_pipelines.acceleration import compile_cache as cc

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_folder_comes_from_the_setting_the_environment_or_the_user_cache(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv(cc.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.cache_folder(None) == tmp_path / "xdg" / "ltx_pipelines" / "compile"
    monkeypatch.setenv(cc.CACHE_ENV, str(tmp_path / "env"))
    assert cc.cache_folder(None) == tmp_path / "env"
    assert cc.cache_folder(str(tmp_path / "flag")) == tmp_path / "flag"  # the flag wins
    assert cc.cache_folder("off") is None and cc.cache_folder("OFF") is None
    monkeypatch.setenv(cc.CACHE_ENV, "off")
    assert cc.cache_folder(None) is None


def test_writes_are_atomic(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    target = tmp_path / "deep" / "bundle.bin"
    cc.write_atomically(target, b"one")
    assert target.read_bytes() == b"one"

    def fail(*args):  # noqa: ANN002, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(cc.os, "replace", fail)
    with pytest.raises(OSError):
        cc.write_atomically(target, b"two")
    assert target.read_bytes() == b"one"  # the old bundle is intact
    assert [p.name for p in target.parent.iterdir()] == ["bundle.bin"]  # no temporary file left behind


def test_a_second_process_reads_what_the_first_compiled(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Bundles saved after each compilation are loaded by a fresh cache object, and both graphs then come from them."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(cc, "_SET_BY_US", None)
    functions = [lambda x: torch.sin(x) * 2 + 1, lambda x: torch.cos(x) * 3 - 1]

    def compile_and_run(fn) -> cc.CacheCounters:  # noqa: ANN001
        before = cc.CacheCounters.now()
        torch.compile(fn, fullgraph=True)(torch.ones(8))
        return cc.CacheCounters.now().since(before)

    torch._dynamo.reset()
    first = cc.CompileCache(tmp_path / "cache", "test-tag")
    first.activate()
    assert Path(cc.os.environ["TORCHINDUCTOR_CACHE_DIR"]) == tmp_path / "cache" / "inductor"
    saved = []
    for fn in functions:  # as the engine does: a save after each new variant
        compile_and_run(fn)
        saved.append(first.save())
    assert saved[0] != saved[1] and all(p.parent == tmp_path / "cache" / "artifacts" / "test-tag" for p in saved)
    assert first.save() == saved[1]  # nothing new: the same bundle, no third file

    # "the next process": Inductor's on-disk cache emptied, only the portable bundles left
    import shutil

    shutil.rmtree(tmp_path / "cache" / "inductor")
    from torch._inductor.utils import clear_caches

    clear_caches()
    torch._dynamo.reset()
    second = cc.CompileCache(tmp_path / "cache", "test-tag")
    second.activate()
    assert sorted(second.loaded) == sorted(p.name for p in saved)
    assert all(compile_and_run(fn).from_cache for fn in functions)
    torch._dynamo.reset()


def test_a_damaged_bundle_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setattr(cc, "_SET_BY_US", None)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "users-own"))  # a user's choice is kept
    bundles = tmp_path / "cache" / "artifacts" / "tag"
    bundles.mkdir(parents=True)
    (bundles / "broken.bin").write_bytes(b"not a bundle")
    cache = cc.CompileCache(tmp_path / "cache", "tag")
    cache.activate()
    assert cache.loaded == []
    assert cc.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "users-own")


def test_off_changes_nothing(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = cc.CompileCache(None, "tag")
    cache.activate()
    assert "TORCHINDUCTOR_CACHE_DIR" not in cc.os.environ and cache.save() is None


def test_pytorchs_own_default_is_not_taken_for_a_users_choice(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """PyTorch writes its default folder into TORCHINDUCTOR_CACHE_DIR when first asked: ours replaces it."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setattr(cc, "_SET_BY_US", None)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    cc.CompileCache(tmp_path / "cache", "tag").activate()
    assert cc.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")


def test_an_unusable_folder_warns_and_compiles_without_keeping(tmp_path, monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setattr(cc, "_SET_BY_US", None)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = cc.CompileCache(blocker / "cache", "tag")
    cache.activate()  # mkdir under a file: OSError, turned into a warning
    assert cache.folder is None and "cannot use" in caplog.text
    assert cache.save() is None
