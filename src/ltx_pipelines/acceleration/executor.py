"""The pass executor a pipeline uses when ``compile``, ``step_cache`` or 8-bit attention is on.

* ``--compile`` unset on CUDA (the default): :class:`TokenCountPasses` runs each pass compiled or plain by its
  video token count (``options.COMPILE_MIN_VIDEO_TOKENS``: every stage of the default generations compiles;
  smaller, unmeasured inputs keep the CUDA-graph replay of the eager blocks);
* compiled: the default schedule (``TransformerPasses``: STG prefix sharing, passes stacked and
  replayed from CUDA graphs at small token counts on a GPU) over :class:`CompiledBlocks`, the
  graphs capturing the compiled blocks;
* step cache: :class:`StepCachedPasses` over the (compiled or eager) blocks.

The engine and its graphs are kept on the transformer object, so the compiled variants, the
attention choices and the captured graphs serve every later stage and generation of that model
(weights swapped in place, e.g. the stage-2 LoRA, are picked up: graphs read the same tensors).
"""

from __future__ import annotations

import copy
import logging

import torch
from ltx_core.model.transformer import X0Model
from ltx_core.types import LatentState

from ltx_pipelines.acceleration.attention_choice import AttentionChooser
from ltx_pipelines.acceleration.compile_cache import compile_cache
from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.options import COMPILE_MIN_VIDEO_TOKENS, AccelerationOptions
from ltx_pipelines.acceleration.step_cache import StepCachedPasses
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import GuidancePass, PassExecutor, Prediction, TransformerPasses

logger = logging.getLogger(__name__)

_ENGINES = "_ltx_pipelines_acceleration"  # attribute of the transformer holding its engines


class CompiledPasses(TransformerPasses):
    """``TransformerPasses`` over compiled blocks; its CUDA graphs capture those blocks.

    The graphs are kept on the transformer beside the engine they capture (``graphs_key``), so a later stage or
    generation of the same model replays them instead of capturing again.
    """

    def __init__(self, transformer: X0Model, engine: CompiledBlocks, cuda_graphs: bool | None = None,
                 graphed: EagerBlocks | None = None, graphs_key: str | None = None) -> None:  # fmt: skip
        super().__init__(transformer, engine=engine)
        self.cuda_graphs = cuda_graphs  # the base class never graphs over a custom engine; these blocks can be
        self.graphs_key = graphs_key
        self._graphed = graphed if graphed is not None or graphs_key is None else _engines(transformer).get(graphs_key)

    def _graph_engine(self) -> EagerBlocks:
        if self._graphed is None:
            from ltx_pipelines.models.cuda_graphs import GraphedTransformer

            self._graphed = GraphedTransformer(self.transformer, inner=self.engine)
            if self.graphs_key is not None:
                _engines(self.transformer)[self.graphs_key] = self._graphed
        return self._graphed


class TokenCountPasses:
    """Compiled passes for inputs of at least ``min_tokens`` video tokens, the plain executor for smaller ones."""

    def __init__(self, compiled: PassExecutor, plain: PassExecutor, min_tokens: int) -> None:
        self.compiled, self.plain, self.min_tokens = compiled, plain, min_tokens
        self._told: set[int] = set()

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]:
        return self.pick(video_state)(video_state, audio_state, sigma, passes)

    def pick(self, video_state: LatentState) -> PassExecutor:
        tokens = video_state.latent.shape[1]
        compiled = tokens >= self.min_tokens
        if tokens not in self._told:  # once per size: the log says which path each stage took, and why
            self._told.add(tokens)
            logger.info("%d video tokens: %s (the default compiles from %d; --compile / --no-compile decide instead)",
                        tokens, "compiled" if compiled else "plain", self.min_tokens)  # fmt: skip
        return self.compiled if compiled else self.plain


def _engines(transformer: X0Model) -> dict:
    if not hasattr(transformer, _ENGINES):
        object.__setattr__(transformer, _ENGINES, {})  # a plain attribute, not a submodule
    return getattr(transformer, _ENGINES)


def forget_engines(transformer: X0Model) -> None:
    """Drop this transformer's engines and graphs (before its layers are swapped, e.g. quantized in place)."""
    transformer.__dict__.pop(_ENGINES, None)


def copy_without_engines(transformer: X0Model) -> X0Model:
    """A deep copy of the model, without its engines (compiled code and CUDA graphs are not copyable)."""
    engines = transformer.__dict__.pop(_ENGINES, None)
    try:
        return copy.deepcopy(transformer)
    finally:
        if engines is not None:
            transformer.__dict__[_ENGINES] = engines


def _engine_name(compile: bool, attention: str) -> str:  # noqa: A002
    """The key of an engine on its transformer: ``compiled`` for the default one (what benchmarks read)."""
    return ("compiled" if compile else "fused") + ("" if attention == "auto" else f"/{attention}")


def compiled_engine(transformer: X0Model, mode: str | None = None, options: AccelerationOptions | None = None,
                    compile: bool = True) -> CompiledBlocks:  # noqa: A002 - torch.compile's name  # fmt: skip
    """This transformer's fused engine, compiled or eager, for ``options``' attention (one each per model)."""
    options = options or AccelerationOptions()
    engines = _engines(transformer)
    name = _engine_name(compile, options.attention)
    if name not in engines:
        device = next(transformer.parameters()).device
        cache = compile_cache(options.compile_cache, device) if compile else None
        # compiled: the choices are kept with the compile cache, since they are part of every compiled graph
        store = cache.attention_store if cache is not None else None
        chooser = AttentionChooser(eight_bit=options.eight_bit_attention(), store=store)
        engines[name] = CompiledBlocks(transformer, compile=compile, mode=mode, attention=chooser, cache=cache)
    return engines[name]


def _fused_passes(transformer: X0Model, options: AccelerationOptions, compile: bool) -> CompiledPasses:  # noqa: A002
    engine = compiled_engine(transformer, options=options, compile=compile)
    name = _engine_name(compile, options.attention)
    return CompiledPasses(transformer, engine, graphs_key=f"graphed:{name}" if name != "compiled" else "graphed")


def accelerated_executor(transformer: X0Model, options: AccelerationOptions) -> PassExecutor:
    """The executor for ``options`` on this transformer's device.

    ``--compile`` unset on CUDA: compiled passes from ``COMPILE_MIN_VIDEO_TOKENS`` video tokens up, the plain
    executor below (with 8-bit attention: our fused block, eager, below). The step cache wraps either engine.
    """
    device = next(transformer.parameters()).device
    compiles = options.compiles(device.type)
    eight_bit = options.eight_bit_attention()  # runs in our fused block, compiled or not
    if options.caches_steps():
        engine = compiled_engine(transformer, options=options, compile=compiles) if compiles or eight_bit \
            else EagerBlocks(transformer)  # fmt: skip
        return StepCachedPasses(engine, float(options.step_cache))
    if not compiles:
        return _fused_passes(transformer, options, compile=False) if eight_bit else TransformerPasses(transformer)
    compiled = _fused_passes(transformer, options, compile=True)
    if not options.by_token_count():
        return compiled
    plain = _fused_passes(transformer, options, compile=False) if eight_bit else TransformerPasses(transformer)
    return TokenCountPasses(compiled, plain, COMPILE_MIN_VIDEO_TOKENS)


def engine_stats(transformer: X0Model) -> dict[str, object]:
    """What compilation cost and chose on this transformer so far (for logs and benchmarks)."""
    engine = _engines(transformer).get("compiled")
    if engine is None:
        return {}
    chooser = engine.attention
    cache = engine.cache
    return {"graphs": engine.stats.graphs, "compile_s": round(engine.stats.seconds, 2),
            "variants_from_cache": engine.stats.from_cache, "variants_compiled": engine.stats.fresh,
            "variants": engine.stats.variants, "fallback": engine.stats.fallback,
            "cache_folder": str(cache.folder) if cache is not None and cache.folder is not None else None,
            "cache_bundles_loaded": cache.loaded if cache is not None else [],
            "attention": chooser.table() if chooser else []}  # fmt: skip


__all__ = ["CompiledPasses", "TokenCountPasses", "accelerated_executor", "compiled_engine", "copy_without_engines", "engine_stats",
           "forget_engines"]
