"""The pass executor a pipeline uses when ``compile`` or ``step_cache`` is on.

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

from ltx_core.model.transformer import X0Model

from ltx_pipelines.acceleration.attention_choice import AttentionChooser
from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.options import AccelerationOptions
from ltx_pipelines.acceleration.step_cache import StepCachedPasses
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import PassExecutor, TransformerPasses

_ENGINES = "_ltx_pipelines_acceleration"  # attribute of the transformer holding its engines


class CompiledPasses(TransformerPasses):
    """``TransformerPasses`` over compiled blocks; its CUDA graphs capture those blocks."""

    def __init__(self, transformer: X0Model, engine: CompiledBlocks, cuda_graphs: bool | None = None,
                 graphed: EagerBlocks | None = None) -> None:  # fmt: skip
        super().__init__(transformer, engine=engine)
        self.cuda_graphs = cuda_graphs  # the base class never graphs over a custom engine; these blocks can be
        self._graphed = graphed

    def _graph_engine(self) -> EagerBlocks:
        if self._graphed is None:
            from ltx_pipelines.models.cuda_graphs import GraphedTransformer

            self._graphed = GraphedTransformer(self.transformer, inner=self.engine)
            _engines(self.transformer)["graphed"] = self._graphed
        return self._graphed


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


def compiled_engine(transformer: X0Model, mode: str | None = None) -> CompiledBlocks:
    """This transformer's compiled engine (built on first use)."""
    engines = _engines(transformer)
    if "compiled" not in engines:
        engines["compiled"] = CompiledBlocks(transformer, mode=mode, attention=AttentionChooser())
    return engines["compiled"]


def accelerated_executor(transformer: X0Model, options: AccelerationOptions) -> PassExecutor:
    """The executor for ``options`` on this transformer's device."""
    device = next(transformer.parameters()).device
    compiles = options.compiles(device.type)
    engine = compiled_engine(transformer) if compiles else EagerBlocks(transformer)
    if options.caches_steps():
        return StepCachedPasses(engine, float(options.step_cache))
    if not compiles:
        return TransformerPasses(transformer)
    return CompiledPasses(transformer, engine, graphed=_engines(transformer).get("graphed"))


def engine_stats(transformer: X0Model) -> dict[str, object]:
    """What compilation cost and chose on this transformer so far (for logs and benchmarks)."""
    engine = _engines(transformer).get("compiled")
    if engine is None:
        return {}
    chooser = engine.attention
    return {"graphs": engine.stats.graphs, "compile_s": round(engine.stats.seconds, 2),
            "fallback": engine.stats.fallback, "attention": chooser.table() if chooser else []}  # fmt: skip


__all__ = ["CompiledPasses", "accelerated_executor", "compiled_engine", "copy_without_engines", "engine_stats",
           "forget_engines"]
