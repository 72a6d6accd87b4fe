"""summary.md of a benchmarks/gpu_run_fast.sh run: first-call overhead, 8-bit attention, step and pass, drift.

    python benchmarks/summarize_fast.py OUT_DIR > OUT_DIR/summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(folder: Path, name: str) -> object | None:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def first_calls(folder: Path) -> list[str]:
    lines = ["## First-call overhead (default path: compiled by token count)", "",
             "| process | size | kind | first call s | steady s | overhead s | variants compiled / from cache | "
             "compile s | process s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("first_call_cold.json", "first_call_warm.json", "first_call_bundles.json"):
        data = load(folder, name)
        if not data:
            lines.append(f"| {name}: missing | | | | | | | | |")
            continue
        engine = data.get("engine", {})
        for row in data["rows"]:
            lines.append(f"| {data['label']} | {row['size']} | {row['kind']} | {row['first_s']} | {row['steady_s']} | "
                         f"{row['overhead_s']} | {engine.get('variants_compiled')} / {engine.get('variants_from_cache')} "
                         f"| {engine.get('compile_s')} | {data.get('process_s')} |")  # fmt: skip
    return lines


def attention(folder: Path) -> list[str]:
    data = load(folder, "fp8_attention.json")
    lines = ["", "## 8-bit attention vs bf16 SDPA", ""]
    if not data:
        return [*lines, "missing"]
    lines += [f"{data['device']}, torch {data['torch']}", "",
              "| tokens | head dim | q/k outliers | candidate | ms | TFLOP/s | vs sdpa bf16 | rel. error vs fp32 |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        if "unavailable" in r:
            lines.append(f"| {r['tokens']} | {r['head_dim']} | x{r['outliers']:g} | {r['candidate']} | "
                         f"unavailable: {r['unavailable']} | | | |")  # fmt: skip
            continue
        lines.append(f"| {r['tokens']} | {r['head_dim']} | x{r['outliers']:g} | {r['candidate']} | {r.get('ms', '-')} | "
                     f"{r.get('tflop_per_s', '-')} | {r.get('speedup_vs_sdpa_bf16', '-')} | "
                     f"{100 * r['rel_err_vs_fp32']:.3f} % |")  # fmt: skip
    return lines


def rows_from_log(path: Path) -> list[dict]:
    """The JSON rows a script printed as it went (what is left when it ran out of time before writing its JSON)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        if line.startswith("{") and line.endswith("}"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def steps(folder: Path) -> list[str]:
    data = load(folder, "transformer_step.json")
    lines = ["", "## Step and pass (transformer_step.py)", ""]
    if not data:
        rows = rows_from_log(folder / "transformer_step.log")
        if not rows:
            return [*lines, "missing (see transformer_step.log)"]
        data = {"gpu": "(from the log: the run stopped before its JSON)", "torch": "", "rows": rows}
    lines += [f"{data['gpu']}, torch {data['torch']}", "",
              "| size | variant | step s | pass s | first call s (compile s) | rel. err vs plain bf16 (video / audio) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['variant']} | failed: {r['error'][:120]} | | | |")
            continue
        if "pass_s" not in r:
            if "pass_rel_err_video" in r:
                lines.append(f"| {r['size']} | {r['variant']} | | | | {100 * r['pass_rel_err_video']:.2f} / "
                             f"{100 * r['pass_rel_err_audio']:.2f} % (pass) |")  # fmt: skip
            continue
        kind = "step" if "step_rel_err_video" in r else "pass"
        err = (f"{100 * r[f'{kind}_rel_err_video']:.2f} / {100 * r[f'{kind}_rel_err_audio']:.2f} % ({kind})"
               if f"{kind}_rel_err_video" in r else "-")  # fmt: skip
        first = r.get("step_first_s", r.get("pass_first_s"))
        compile_s = r.get("step_compile_s", 0) + r.get("pass_compile_s", 0) if "pass_compile_s" in r else None
        lines.append(f"| {r['size']} | {r['variant']} | {r.get('step_s', '-')} | {r['pass_s']} | {first}"
                     f"{f' ({compile_s:.1f})' if compile_s is not None else ''} | {err} |")  # fmt: skip
    return lines


def drift(folder: Path) -> list[str]:
    data = load(folder, "compile_drift.json") or rows_from_log(folder / "compile_drift.log")
    lines = ["", "## Drift against float32 (compile_drift.py)", ""]
    if not data:
        return [*lines, "missing (see compile_drift.log)"]
    lines += ["| size | path | kind | vs fp32 video / audio | vs plain bf16 video / audio |", "|---|---|---|---|---|"]
    for r in data:
        if "path" in r:
            lines.append(f"| {r['size']} | {r['path']} | {r['kind']} | {100 * r['vs_fp32_video']:.2f} / "
                         f"{100 * r['vs_fp32_audio']:.2f} % | {100 * r['vs_plain_bf16_video']:.2f} / "
                         f"{100 * r['vs_plain_bf16_audio']:.2f} % |")  # fmt: skip
    return lines


def main() -> None:
    folder = Path(sys.argv[1])
    timeline = (folder / "timeline.txt").read_text() if (folder / "timeline.txt").exists() else ""
    lines = ["# gpu_run_fast.sh", "", "```", timeline.strip(), "```", "", *first_calls(folder), *attention(folder),
             *steps(folder), *drift(folder)]  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
