"""Runs the reference package (ltx-pipelines 1.0.0) for the parity test, in its own process.

    PYTHONPATH=<reference install> python reference_runner.py SPEC.json

This file imports only the reference and ltx-core, never our package: the parity test starts
it with the reference's install directory on the path and without our ``src``. SPEC.json says:

* ``reference``: where the reference is installed (the imported package must come from there);
* ``gemma_config``: the bundle's Gemma ``config.json``. The reference builds its text encoder
  from ltx-core's hard-coded Gemma-3-12B config; here that constant is replaced, in this process
  only and for as long as this script runs, by the bundle's config (no installed file is touched).
* ``runs``: ``{"name", "module", "cls", "init", "call", "out"}`` each: build ``cls`` from
  ``module`` with ``init``, call it with ``call``, save the decoded frames and audio to ``out``.
* ``introspect``: where to write every module's CLI flags and signatures (JSON), or null.

Without a GPU, the reference's unconditional ``torch.cuda.synchronize()`` calls become no-ops
(again in this process only).

Values in ``init``/``call`` are JSON; keys ending in ``_guider_params`` become
MultiModalGuiderParams, ``loras``/``distilled_lora`` become LoRA entries (ComfyUI naming),
``images`` become ImageConditioningInput.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import types
from pathlib import Path

import torch

MODULES = {
    "ti2vid_one_stage": "TI2VidOneStagePipeline",
    "ti2vid_two_stages": "TI2VidTwoStagesPipeline",
    "ti2vid_two_stages_hq": "TI2VidTwoStagesHQPipeline",
    "distilled": "DistilledPipeline",
    "ic_lora": "ICLoraPipeline",
    "keyframe_interpolation": "KeyframeInterpolationPipeline",
    "a2vid_two_stage": "A2VidPipelineTwoStage",
    "retake": "RetakePipeline",
}


def use_bundle_gemma_config(config_path: str) -> None:
    """Point ltx-core's Gemma configurators at the bundle's config instead of the 12B one (this process only)."""
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    config = json.loads(Path(config_path).read_text())
    text = config["text_config"]
    replacement = types.SimpleNamespace(
        to_dict=lambda: config,
        text_config=types.SimpleNamespace(hidden_size=text["hidden_size"], num_hidden_layers=text["num_hidden_layers"]),
    )
    encoder_configurator.GEMMA3_CONFIG_FOR_LTX = replacement


def allow_cpu_only() -> None:
    """The reference calls torch.cuda.synchronize()/empty_cache() unconditionally: no-ops here without a GPU."""
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
        torch.cuda.empty_cache = lambda *args, **kwargs: None


def decode_value(key: str, value: object) -> object:
    from ltx_core.components.guiders import MultiModalGuiderParams
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

    from ltx_pipelines.utils.args import ImageConditioningInput

    if key.endswith("_guider_params") and value is not None:
        return MultiModalGuiderParams(**value)
    if key in ("loras", "distilled_lora"):
        return [LoraPathStrengthAndSDOps(path, strength, LTXV_LORA_COMFY_RENAMING_MAP) for path, strength in value]
    if key == "images":
        return [ImageConditioningInput(*image) for image in value]
    if key == "video_conditioning":
        return [tuple(item) for item in value]
    return value


def run(spec: dict) -> None:
    module = importlib.import_module(f"ltx_pipelines.{spec['module']}")
    cls = getattr(module, spec["cls"])
    init = {k: decode_value(k, v) for k, v in spec["init"].items()}
    call = {k: decode_value(k, v) for k, v in spec["call"].items()}
    with torch.inference_mode():
        pipeline = cls(**init)
        video, audio = pipeline(**call)
        frames = torch.cat([chunk.cpu() for chunk in video], dim=0)
    torch.save(
        {"frames": frames, "audio": audio.waveform.detach().cpu().float(), "sampling_rate": audio.sampling_rate},
        spec["out"],
    )
    print(f"reference {spec['name']}: frames {tuple(frames.shape)}, audio {tuple(audio.waveform.shape)}", flush=True)


# --------------------------------------------------------------------------- introspection


class _ParserCaptured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__("parser captured")
        self.parser = parser


def _capture_parser(module_name: str, checkpoint: str) -> argparse.ArgumentParser:
    """Run the module's main() until it parses its command line; return the parser it built."""
    module = importlib.import_module(f"ltx_pipelines.{module_name}")
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> argparse.Namespace:
        raise _ParserCaptured(self)

    argv = sys.argv
    sys.argv = [module_name, "--checkpoint-path", checkpoint, "--distilled-checkpoint-path", checkpoint]
    argparse.ArgumentParser.parse_args = capture  # scoped: restored below
    try:
        module.main()
    except _ParserCaptured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_args = original
        sys.argv = argv
    raise RuntimeError(f"ltx_pipelines.{module_name}.main() never parsed its arguments")


def _jsonable(value: object) -> object:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _flags(parser: argparse.ArgumentParser) -> list[dict]:
    flags = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flags.append(
            {
                "options": list(action.option_strings),
                "dest": action.dest,
                "nargs": _jsonable(action.nargs),
                "required": bool(action.required),
                "default": _jsonable(action.default),
                "takes_value": action.nargs != 0,
            }
        )
    return flags


def _signature(function: object) -> list[dict]:
    params = []
    for name, p in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        params.append(
            {
                "name": name,
                "kind": p.kind.name,
                "required": p.default is inspect.Parameter.empty,
                "default": None if p.default is inspect.Parameter.empty else _jsonable(p.default),
            }
        )
    return params


def introspect(checkpoint: str) -> dict:
    report = {}
    for module_name, cls_name in MODULES.items():
        cls = getattr(importlib.import_module(f"ltx_pipelines.{module_name}"), cls_name)
        report[module_name] = {
            "class": cls_name,
            "init": _signature(cls.__init__),
            "call": _signature(cls.__call__),
            "flags": _flags(_capture_parser(module_name, checkpoint)),
        }
    args = importlib.import_module("ltx_pipelines.utils.args")
    report["utils.args"] = sorted(name for name in vars(args) if not name.startswith("_"))
    return report


def check_it_is_the_reference(root: str) -> None:
    """Refuse to compare ours with ours: the imported package must be the one installed at ``root``, and
    transformers the 4.57 installed beside it (ltx-core 1.0.0's Gemma code needs it; ours runs on 5.x)."""
    import ltx_pipelines
    import transformers

    for module in (ltx_pipelines, transformers):
        where = Path(module.__file__).resolve()
        if not where.is_relative_to(Path(root).resolve()):
            raise SystemExit(f"{module.__name__} was imported from {where}, not from the reference at {root}")
    if not transformers.__version__.startswith("4.57."):
        raise SystemExit(f"the reference needs transformers 4.57; {transformers.__version__} was imported")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    check_it_is_the_reference(spec["reference"])
    torch.set_num_threads(int(spec.get("threads", 1)))
    use_bundle_gemma_config(spec["gemma_config"])
    allow_cpu_only()
    if spec.get("introspect"):
        report = introspect(spec["checkpoint"])
        Path(spec["introspect"]).write_text(json.dumps(report, indent=1))
    for run_spec in spec.get("runs", []):
        run(run_spec)


if __name__ == "__main__":
    main()
