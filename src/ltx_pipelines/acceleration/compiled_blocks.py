"""A block engine that runs every transformer block through one fused (optionally compiled) function.

``torch.compile`` of each ltx-core block as it stands recompiles per block (the block index and
the perturbation object steer Python branches) and ran 4x slower at 6 144 tokens. Here the block
is :func:`fused_block_forward`, whose only static inputs are the plan (which attentions run) and
the kernel choices, so one compiled graph per distinct plan and token count serves all blocks:
a guided step needs three (plain, STG-skipped at its block, modality-isolated), or two more when
its passes are stacked in one batch. Compilation is regional (one block, ``fullgraph=True``,
static shapes) and happens on first use of each variant; ``stats`` counts it, and the log says for each
variant what it cost and whether it came from the compile cache (``compile_cache``: artefacts kept across
processes). Any failure to compile (a graph break, a compiler error, a missing C++ compiler) warns and runs
the same function eagerly: never an error.

The engine keeps to the block-engine interface (``prepare`` / ``blocks`` / ``finish``), delegates
``prepare`` and ``finish`` to an optional inner engine, and can itself be replayed from CUDA
graphs (``models.cuda_graphs.GraphedTransformer(transformer, inner=this)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer import Modality, X0Model
from ltx_core.model.transformer.transformer_args import TransformerArgs

from ltx_pipelines.acceleration.attention_choice import AttentionChooser, attention_shapes
from ltx_pipelines.acceleration.block_plan import BlockPlan, BlockPlans
from ltx_pipelines.acceleration.compile_cache import CacheCounters, CompileCache
from ltx_pipelines.acceleration.fused_block import fused_block_forward, stream_of
from ltx_pipelines.acceleration.fused_ops import OWN_ATTENTION, Kernels, uses_sdpa
from ltx_pipelines.models.fp8 import FP8ScaledLinear, fp8_matmul_supported
from ltx_pipelines.models.transformer_blocks import Args, EagerBlocks, compact_timesteps

logger = logging.getLogger(__name__)

#: Compiled variants one engine may hold (plans x token counts x batch sizes) before dynamo gives up
#: and runs eagerly; a two-stage generation needs about a dozen.
RECOMPILE_LIMIT = 64


@dataclass
class CompileStats:
    """What compilation cost this engine: graphs built and the wall time of the calls that built them."""

    graphs: int = 0
    seconds: float = 0.0
    fallback: str | None = None  # why the engine went back to eager, if it did
    from_cache: int = 0  # variants whose graphs all came from the compile cache
    fresh: int = 0  # variants that generated code anew
    variants: list[dict] = field(default_factory=list)  # one record per compiled variant (what, cost, source)


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class CompiledBlocks(EagerBlocks):
    """Blocks through :func:`fused_block_forward`: eager (bit-exact with ltx-core) or compiled.

    * ``compile``: regional ``torch.compile`` of the fused block (``mode`` and ``backend`` are
      torch.compile's: tests use ``aot_eager`` to see the graphs without code generation);
    * ``fp8_in_graph``: FP8 layers quantize inside the graph (default: when compiled);
    * ``attention``: pick an SDPA backend per attention shape (default: measured, on CUDA only);
    * ``compact``: one timestep row per sample where tokens share it (default: when compiled;
      equal values, but the smaller AdaLN matmul may round differently, so eager stays bit-exact);
    * ``inner``: the engine whose ``prepare``/``finish`` run around our blocks (default: eager).
    """

    def __init__(
        self,
        transformer: X0Model,
        *,
        compile: bool = True,  # noqa: A002 - torch.compile's name
        mode: str | None = None,
        backend: str = "inductor",
        fp8_in_graph: bool | None = None,
        attention: AttentionChooser | None = None,
        compact: bool | None = None,
        inner: EagerBlocks | None = None,
        cache: CompileCache | None = None,
    ):
        super().__init__(transformer)
        self.cache = cache
        self.inner = inner or EagerBlocks(transformer)
        self.compiled = compile
        self.fp8_in_graph = compile if fp8_in_graph is None else fp8_in_graph
        self.compact = compile if compact is None else compact
        self.attention = attention
        self.plans = BlockPlans()
        self.stats = CompileStats()
        self._kernels: dict[tuple, Kernels] = {}
        self._forward: Callable = fused_block_forward
        if compile:
            extra = {"mode": mode} if backend == "inductor" else {}
            self._forward = torch.compile(fused_block_forward, fullgraph=True, dynamic=False, backend=backend, **extra)

    def prepare(self, video: Modality, audio: Modality | None) -> tuple[TransformerArgs, Args]:
        if self.compact:
            video, audio = compact_timesteps(video), compact_timesteps(audio)
        return self.inner.prepare(video, audio)

    def finish(self, video: Modality, audio: Modality | None, v_out: TransformerArgs, a_out: Args):  # noqa: ANN201
        return self.inner.finish(video, audio, v_out, a_out)

    def kernels(self, video: TransformerArgs | None, audio: TransformerArgs | None) -> Kernels:
        """Kernel choices for inputs of these shapes (attention backends measured on first sight)."""
        ref = video.x if video is not None else audio.x
        key = (_shape(video), _shape(audio))
        if key not in self._kernels:
            fp8 = self.fp8_in_graph and any(isinstance(m, FP8ScaledLinear) for m in self.velocity_model.modules())
            if not uses_sdpa(self.velocity_model.transformer_blocks[0].attn1):
                backends = dict.fromkeys(attention_shapes(self.velocity_model, video, audio), OWN_ATTENTION)
            else:
                backends = self.attention.choose(self.velocity_model, video, audio) if self.attention else {}
            self._kernels[key] = Kernels(fp8_in_graph=fp8, fp8_native=fp8 and fp8_matmul_supported(ref.device),
                                         **backends)  # fmt: skip
        return self._kernels[key]

    def blocks(
        self,
        video: TransformerArgs,
        audio: Args,
        perturbations: BatchedPerturbationConfig,
        start: int = 0,
        stop: int | None = None,
    ) -> tuple[TransformerArgs, Args]:
        """Blocks ``start:stop``, each through the fused forward with its plan and masks."""
        blocks = self.velocity_model.transformer_blocks
        stop = len(blocks) if stop is None else stop
        v_stream, a_stream = stream_of(video), stream_of(audio)
        vx = video.x if video is not None else None
        ax = audio.x if audio is not None else None
        for index in range(start, stop):
            plan, masks = self.plans.get(perturbations, index, video, audio)
            kernels = self.kernels(video, audio)  # may change once, if a forced attention backend fails to compile
            vx, ax = self._run(blocks[index], vx, ax, v_stream, a_stream, plan, masks, kernels)
        video = replace(video, x=vx) if video is not None else None
        audio = replace(audio, x=ax) if audio is not None else None
        return video, audio

    def _run(self, *args: object) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.compiled:
            return fused_block_forward(*args)
        if self.cache is not None:
            self.cache.activate()
        before, counted = _unique_graphs(), CacheCounters.now()
        started = time.perf_counter()
        try:
            out = self._compiled_call(args)
        except torch.OutOfMemoryError:
            raise  # not a compiler failure: the eager path would run out of memory too
        except Exception as e:  # noqa: BLE001 - whatever fails in compilation, the eager block computes the same
            logger.debug("compile failure", exc_info=True)
            kernels = args[-1]
            if _forced_backends(kernels):  # first retry with PyTorch's own attention pick for these shapes
                logger.warning("Compiling with the measured SDPA backends failed (%s); using PyTorch's choice.",
                               _reason(e))  # fmt: skip
                plain = replace(kernels, **dict.fromkeys(_forced_backends(kernels)))
                self._kernels = {key: plain if value == kernels else value for key, value in self._kernels.items()}
                return self._run(*args[:-1], plain)
            # A graph break or a compiler failure: run eagerly from now on (same numbers, no fusion).
            logger.warning("torch.compile of the transformer block failed (%s); running it eagerly.", _reason(e))
            self.stats.fallback, self.compiled = _reason(e), False
            return fused_block_forward(*args)
        built = _unique_graphs() - before
        if built:
            self._record(built, time.perf_counter() - started, CacheCounters.now().since(counted), args)
        return out

    def _record(self, built: int, seconds: float, cache: CacheCounters, args: tuple) -> None:
        """Count a newly compiled variant, log what it was, what it cost and where it came from; save the cache."""
        plan: BlockPlan = args[5]
        vx, ax = args[1], args[2]
        what = {"plan": _describe_plan(plan), "video": tuple(vx.shape) if vx is not None else None,
                "audio": tuple(ax.shape) if ax is not None else None, "seconds": round(seconds, 2),
                "source": "cache" if cache.from_cache else "compiled"}  # fmt: skip
        self.stats.graphs += built
        self.stats.seconds += seconds
        self.stats.variants.append(what)
        if cache.from_cache:
            self.stats.from_cache += 1
        else:
            self.stats.fresh += 1
        logger.info("Transformer block variant %s, video %s, audio %s: %.1f s, %s (%d variants so far: %d from the "
                    "cache, %.1f s in all)", what["plan"], what["video"], what["audio"], seconds, cache.describe(),
                    len(self.stats.variants), self.stats.from_cache, self.stats.seconds)  # fmt: skip
        if self.cache is not None and (not cache.from_cache or not self.cache.has_bundles()):
            self.cache.save()  # new artefacts, or hits in Inductor's folder that no portable bundle holds yet

    def _compiled_call(self, args: tuple) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        cacheable = {**torch._inductor.config.unsafe_marked_cacheable_functions, **SDPA_KERNEL_FUNCTIONS}
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, inline_inbuilt_nn_modules=True), \
                torch._inductor.config.patch(unsafe_marked_cacheable_functions=cacheable):  # fmt: skip
            return self._forward(*args)


#: What dynamo writes into the graph for ``with sdpa_kernel([...])`` (a forced attention backend). AOTAutograd's
#: cache refuses graphs with private torch functions in them ("Unsupported call_function target", a bypass): every
#: compiled block with a measured backend would be traced anew in each process. Both only set the backend list from
#: the constant names in the graph, and those names are hashed into the key, so marked cacheable (keyed by torch's
#: version) the AOTAutograd cache takes these graphs too.
SDPA_KERNEL_FUNCTIONS = {"torch.nn.attention._sdpa_kernel": torch.__version__,
                         "torch.nn.attention._backend_from_string": torch.__version__}  # fmt: skip


def _describe_plan(plan: BlockPlan) -> str:
    """A short name for a plan: what differs from every attention running."""
    parts = [f"{name}={getattr(plan, name)}" for name in ("video_self", "audio_self", "a2v", "v2a")
             if getattr(plan, name) != "run"]  # fmt: skip
    streams = "+".join(name for name in ("video", "audio") if getattr(plan, name))
    return f"[{streams}{'; ' + ', '.join(parts) if parts else ''}]"


def _forced_backends(kernels: Kernels) -> list[str]:
    """The attention fields of ``kernels`` that force an SDPA backend."""
    names = ("video_self", "video_text", "audio_self", "audio_text", "a2v", "v2a")
    return [n for n in names if getattr(kernels, n) not in (None, OWN_ATTENTION)]


def _reason(error: Exception) -> str:
    """One line: the compiler's own error where dynamo wrapped it (``BackendCompilerFailed``), else this one."""
    inner = getattr(error, "inner_exception", None) or error
    text = next((line for line in str(inner).splitlines() if line.strip()), "")
    return f"{type(inner).__name__}: {text}"[:200] if text else type(inner).__name__


def _shape(args: TransformerArgs | None) -> tuple:
    if args is None:
        return ()
    return (tuple(args.x.shape), tuple(args.context.shape), args.x.dtype, str(args.x.device),
            args.self_attention_mask is not None, args.context_mask is not None)  # fmt: skip


__all__ = ["RECOMPILE_LIMIT", "SDPA_KERNEL_FUNCTIONS", "CompileStats", "CompiledBlocks"]
