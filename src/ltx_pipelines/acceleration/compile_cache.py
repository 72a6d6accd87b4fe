"""Compiled artefacts kept across processes, so that only a machine's very first run pays the full compile.

Two layers, both PyTorch's own:

* the on-disk Inductor caches (FX graph cache, AOTAutograd cache, Triton kernels, autotuning results) under
  ``<folder>/inductor`` (``TORCHINDUCTOR_CACHE_DIR``; PyTorch's default is a temporary folder that a reboot or a
  fresh container empties);
* PyTorch's portable "mega-cache" bundles (``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``)
  under ``<folder>/artifacts/<torch version>-<device>``: one file per compilation (what it added; see
  ``SAVES_ARE_DELTAS``), written atomically (a temporary file renamed into place), all loaded at the next start.
  The folder can be copied to another machine with the same GPU and PyTorch to spare it the first compile too;
* beside the bundles, ``attention.json``: the SDPA backend measured per attention shape (``attention_choice``).
  The choice is inside every compiled graph, so a second process that measured again and came out differently
  (timing noise) would compile different graphs and miss both caches; it takes the first process's choice.

The folder: ``compile_cache=`` / ``--compile-cache DIR``, else ``$LTX_PIPELINES_COMPILE_CACHE``, else
``$XDG_CACHE_HOME/ltx_pipelines/compile`` (``~/.cache/ltx_pipelines/compile``); ``off`` leaves PyTorch's own
defaults alone. A user who set ``TORCHINDUCTOR_CACHE_DIR`` keeps it. Nothing happens at import time: the
pipeline activates the cache when it first compiles.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: The environment variable naming the cache folder (the flag wins).
CACHE_ENV = "LTX_PIPELINES_COMPILE_CACHE"
#: A folder value that turns our cache off (PyTorch's defaults apply).
OFF = "off"
#: The attention backend choices, beside the bundles (one file per torch version and device).
ATTENTION_FILE = "attention.json"
#: Bundles kept per (torch version, device); the oldest are removed past this many (a few MB each).
MAX_BUNDLES = 200
#: Why every bundle is kept: ``save_cache_artifacts()`` returns all that the process recorded, but reading a bundle
#: back (``load_cache_artifacts``) keeps, per artefact type, only the batch of the last save (PyTorch 2.11 turns the
#: appended (type, artefacts) batches into a dict). So each bundle, read back, holds what was compiled since the
#: previous save, and the set of bundles holds everything.
SAVES_ARE_DELTAS = True


def default_cache_folder() -> Path:
    """``$XDG_CACHE_HOME/ltx_pipelines/compile``, or ``~/.cache/ltx_pipelines/compile``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ltx_pipelines" / "compile"


def cache_folder(setting: str | None) -> Path | None:
    """The folder for a ``compile_cache`` setting (None: the environment or the default; ``off``: None)."""
    value = setting if setting is not None else os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() == OFF:
        return None
    return Path(value).expanduser() if value else default_cache_folder()


def device_tag(device: object) -> str:
    """What a bundle must match to be useful: PyTorch's version and the GPU (or the CPU's machine type)."""
    import platform

    import torch

    if getattr(device, "type", device) == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.machine() or "cpu"
    raw = f"torch-{torch.__version__}-{name}"
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in raw)


@dataclass
class CacheCounters:
    """Cache hits and misses of Inductor's FX graph cache and the AOTAutograd cache, as PyTorch counts them."""

    fx_hits: int = 0
    fx_misses: int = 0
    aot_hits: int = 0
    aot_misses: int = 0

    @classmethod
    def now(cls) -> CacheCounters:
        from torch._dynamo.utils import counters

        return cls(int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_miss"]),
                   int(counters["aot_autograd"]["autograd_cache_hit"]),
                   int(counters["aot_autograd"]["autograd_cache_miss"]))  # fmt: skip

    def since(self, before: CacheCounters) -> CacheCounters:
        return CacheCounters(self.fx_hits - before.fx_hits, self.fx_misses - before.fx_misses,
                             self.aot_hits - before.aot_hits, self.aot_misses - before.aot_misses)  # fmt: skip

    @property
    def from_cache(self) -> bool:
        """Every graph was read from a cache (a warm start), none generated anew."""
        return (self.fx_hits + self.aot_hits) > 0 and self.fx_misses == 0 and self.aot_misses == 0

    def describe(self) -> str:
        if self.from_cache:
            return "from the compile cache"
        if self.fx_misses or self.aot_misses:
            return f"compiled anew ({self.fx_misses + self.aot_misses} cache misses, {self.fx_hits} hits)"
        return "compiled (no cache consulted)"


@dataclass
class CompileCache:
    """One process's view of the cache folder: activated once, loaded once, saved after new compilations."""

    folder: Path | None
    tag: str = ""
    loaded: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    _active: bool = False

    @property
    def bundles(self) -> Path | None:
        return self.folder / "artifacts" / self.tag if self.folder is not None else None

    @property
    def attention_store(self) -> Path | None:
        """The file of attention backend choices shared by the processes using this folder (None: cache off)."""
        return self.bundles / ATTENTION_FILE if self.bundles is not None else None

    def has_bundles(self) -> bool:
        folder = self.bundles
        return folder is not None and folder.is_dir() and any(folder.glob("*.bin"))

    def activate(self) -> None:
        """Point Inductor at the folder and load the bundles there (once per process)."""
        if self._active:
            return
        self._active = True
        if self.folder is None:
            logger.info("Compile cache: off (PyTorch's own temporary folder)")
            return
        try:
            _use_inductor_folder(self.folder / "inductor")
        except OSError as e:  # an unwritable folder must not stop a generation: compile without keeping it
            logger.warning("Compile cache: cannot use %s (%s); compiled code is not kept for later runs", self.folder,
                           _first_line(e))  # fmt: skip
            self.folder = None
            return
        started = time.perf_counter()
        self.loaded = self._load_bundles()
        self.load_seconds = time.perf_counter() - started
        logger.info("Compile cache: %s (%d bundle(s) loaded in %.2f s)", self.folder, len(self.loaded),
                    self.load_seconds)  # fmt: skip

    def _load_bundles(self) -> list[str]:
        import torch

        folder = self.bundles
        if folder is None or not folder.is_dir():
            return []
        loaded = []
        for path in sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime):
            try:
                info = torch.compiler.load_cache_artifacts(path.read_bytes())
            except Exception as e:  # noqa: BLE001 - a stale or damaged bundle must never stop a generation
                logger.warning("Compile cache: skipped %s (%s)", path.name, _first_line(e))
                continue
            if info is not None:
                loaded.append(path.name)
        return loaded

    def save(self) -> Path | None:
        """Write this process's artefacts as one bundle (atomically); None when there is nothing new."""
        if self.folder is None or not self._active:
            return None
        import torch

        try:
            result = torch.compiler.save_cache_artifacts()
        except Exception as e:  # noqa: BLE001 - saving is an optimisation, never a failure
            logger.warning("Compile cache: could not serialise the compiled artefacts (%s)", _first_line(e))
            return None
        if result is None:
            return None
        data, _info = result
        name = hashlib.sha256(data).hexdigest()[:20] + ".bin"
        folder = self.bundles
        if (folder / name).exists():
            return folder / name
        try:
            path = write_atomically(folder / name, data)
        except OSError as e:
            logger.warning("Compile cache: could not write %s (%s)", folder / name, _first_line(e))
            return None
        self.saved.append(name)  # earlier bundles stay: see SAVES_ARE_DELTAS
        _prune(folder, MAX_BUNDLES)
        logger.info("Compile cache: saved %s (%.1f MiB)", path, len(data) / 2**20)
        return path


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would keep the bundle from a shared cache's other users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _prune(folder: Path, keep: int) -> None:
    bundles = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in bundles[keep:]:
        old.unlink(missing_ok=True)


def _use_inductor_folder(folder: Path) -> None:
    """Inductor's on-disk caches in ``folder``, unless the user named one (``TORCHINDUCTOR_CACHE_DIR``); the local
    caches switched on."""
    import torch

    global _SET_BY_US
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # PyTorch writes its default into the variable the first time anything asks for the folder: that is not a
    # user's choice, and neither is a folder this module set earlier in the process
    if current is None or current in (_SET_BY_US, default_cache_dir()):
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = _SET_BY_US = str(folder)
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


_CACHES: dict[tuple[str | None, str], CompileCache] = {}
#: The TORCHINDUCTOR_CACHE_DIR value this module set (a later folder may replace it; a user's never is).
_SET_BY_US: str | None = None


def compile_cache(setting: str | None, device: object) -> CompileCache:
    """The process's cache for this setting and device (one object each: activated and loaded once)."""
    folder = cache_folder(setting)
    tag = device_tag(device)
    key = (str(folder) if folder is not None else None, tag)
    if key not in _CACHES:
        _CACHES[key] = CompileCache(folder, tag)
    return _CACHES[key]


__all__ = [
    "ATTENTION_FILE",
    "CACHE_ENV",
    "OFF",
    "CacheCounters",
    "CompileCache",
    "cache_folder",
    "compile_cache",
    "default_cache_folder",
    "device_tag",
    "write_atomically",
]
