"""One markdown summary of a gpu_run.sh output folder: reference vs ours, per pass and end to end, against the targets.

    python benchmarks/summarize.py OUT_DIR > OUT_DIR/summary.md

Reads ``reference.jsonl`` (reference_step.py's lines), ``transformer_step.json`` (or the JSON lines of
``transformer_step.log`` when the run was cut short) and ``two_stage_e2e.json``; whatever is missing
shows as "-".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: issue 10's targets (seconds)
TARGETS = {
    ("512x768", "step", "compiled"): 1.00,
    ("512x768", "step", "fp8 compiled"): 0.75,
    ("1024x1536", "pass", "compiled"): 1.60,
    ("1024x1536", "pass", "fp8 compiled"): 1.25,
    ("768x512", "bf16-compiled"): 10.0,
    ("768x512", "fp8-compiled"): 10.0,
    ("1536x1024", "bf16-compiled"): 50.0,
    ("1536x1024", "fp8-compiled"): 40.0,
}
COLUMNS = ["plain", "optimised", "compiled", "fp8 optimised", "fp8 compiled"]


def json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def step_rows(out: Path) -> tuple[list[dict], dict]:
    path = out / "transformer_step.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data.get("rows", []), data
    return [r for r in json_lines(out / "transformer_step.log") if "variant" in r], {}


def e2e_rows(out: Path) -> list[dict]:
    path = out / "two_stage_e2e.json"
    if path.exists():
        return json.loads(path.read_text()).get("rows", [])
    return [r for r in json_lines(out / "two_stage_e2e.log") if "run" in r]


def fmt(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float | int) else "-"


def transformer_table(reference: list[dict], rows: list[dict]) -> list[str]:
    ref = {r["shape"].rsplit("x", 1)[0]: r for r in reference if "shape" in r}
    by = {(r["size"], r["variant"]): r for r in rows if "pass_s" in r}
    sizes = list(dict.fromkeys(r["size"] for r in rows if "pass_s" in r))
    lines = ["| what | reference | " + " | ".join(f"ours {c}" for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]  # fmt: skip
    for size in sizes:
        for kind, ref_key in (("step", "upstream_seq_step_s"), ("pass", "single_pass_s")):
            if not any(f"{kind}_s" in by.get((size, c), {}) for c in COLUMNS):
                continue
            cells = [fmt(by.get((size, c), {}).get(f"{kind}_s")) for c in COLUMNS]
            lines.append(f"| {kind} {size} (s) | {fmt(ref.get(size, {}).get(ref_key))} | " + " | ".join(cells) + " |")
        tflops = [f"{by[(size, c)]['tflop_per_s']} ({by[(size, c)]['pct_of_peak']} %)" if (size, c) in by else "-"
                  for c in COLUMNS]  # fmt: skip
        lines.append(f"| TFLOP/s per pass {size} (% of bf16 / FP8 peak) | - | " + " | ".join(tflops) + " |")
        peaks = [fmt(by.get((size, c), {}).get("peak_gib"), 1) for c in COLUMNS]
        lines.append(f"| peak GiB {size} | {fmt(ref.get(size, {}).get('peak_gib'), 1)} | " + " | ".join(peaks) + " |")
        errs = []
        for c in COLUMNS:
            r = by.get((size, c), {})
            kind = "step" if "step_rel_err_video" in r else "pass"
            errs.append(f"{r[f'{kind}_rel_err_video']:.3g} / {r[f'{kind}_rel_err_audio']:.3g} ({kind})"
                        if f"{kind}_rel_err_video" in r else "-")  # fmt: skip
        lines.append(f"| X0 rel. error vs plain bf16 {size} (video / audio) | - | " + " | ".join(errs) + " |")
        compile_cells = []
        for c in COLUMNS:
            r = by.get((size, c), {})
            if "pass_graphs" in r:
                graphs = r.get("step_graphs", 0) + r["pass_graphs"]
                again = r.get("step_recompiles_while_timing", 0) + r.get("pass_recompiles_while_timing", 0)
                seconds = r.get("step_compile_s", 0) + r.get("pass_compile_s", 0)
                compile_cells.append(f"{seconds:.1f} s, {graphs} graphs, {again} recompiles")
            else:
                compile_cells.append("-")
        lines.append(f"| compile {size} (while timing) | - | " + " | ".join(compile_cells) + " |")
    return lines


def e2e_table(rows: list[dict]) -> list[str]:
    keys = ["text encoding", "stage 1", "upsample", "stage 2", "decode video", "decode audio", "write mp4"]
    lines = ["| run | total (s) | " + " | ".join(keys) + " | LoRA swap (in stages) | peak GiB | compile (warm-up) s | "
             "step cache reused | PSNR vs |", "|---|---|" + "---|" * (len(keys) + 5)]  # fmt: skip
    for r in rows:
        b = r.get("breakdown_s", {})
        vs = f"{r['frames_psnr_db']} dB vs {r['vs']}" if "vs" in r else "-"
        reused = f"{r['step_cache_blocks_reused_pct']} %" if "step_cache_blocks_reused_pct" in r else "-"
        tail = f" | {fmt(r.get('lora_swap_s'), 2)} | {r.get('peak_gib')} | {r.get('compile_s')} | {reused} | {vs} |"
        lines.append(f"| {r['run']} | **{r['total_s']}** | " + " | ".join(fmt(b.get(k), 2) for k in keys) + tail)
    return lines


def target_lines(rows: list[dict], e2e: list[dict]) -> list[str]:
    by = {(r["size"], r["variant"]): r for r in rows if "pass_s" in r}
    runs = {(r["size"], r["run"].split(":")[1]): r for r in e2e}
    lines = []
    for key, limit in TARGETS.items():
        if len(key) == 3:
            size, kind, variant = key
            value = by.get((size, variant), {}).get(f"{kind}_s")
            what = f"{variant} {kind} at {size}"
        else:
            size, variant = key
            value = runs.get((size, variant), {}).get("total_s")
            what = f"two-stage {size} end to end, {variant}"
        if value is None:
            verdict = "not measured"
        else:
            verdict = "met" if value <= limit else f"missed by {value / limit - 1:.0%}"
        lines.append(f"- {what}: {fmt(value, 3)} s (target <= {limit} s): {verdict}")
    return lines


def attention_lines(data: dict) -> list[str]:
    lines = []
    for label in ("attention", "attention_fp8"):
        for mode, table in data.get(label, {}).items():
            for row in table:
                shape = f"B{row['batch']} H{row['heads']} q{row['q_tokens']} kv{row['kv_tokens']} d{row['head_dim']}"
                masked = " masked" if row["masked"] else ""
                lines.append(f"- {label} ({mode}): {shape}{masked}: {row['chosen']} (ms {row['ms']})")
    return lines


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(".")
    reference = json_lines(out / "reference.jsonl")
    rows, data = step_rows(out)
    e2e = e2e_rows(out)
    gpu = next((r.get("gpu") for r in reference if "gpu" in r), data.get("gpu", "?"))
    print(f"# Speed benchmarks, one run ({gpu})\n")
    print("## Transformer (reference_step.py and transformer_step.py)\n")
    print("\n".join(transformer_table(reference, rows)))
    fp8_split = [r for r in rows if "error split" in r.get("variant", "")]
    for r in fp8_split:
        print(f"\n{r['variant']} at {r['size']}: X0 rel. error video {r['pass_rel_err_video']:.4f}, "
              f"audio {r['pass_rel_err_audio']:.4f}")
    errors = [r for r in [*rows, *json_lines(out / "transformer_step.log")] if "error" in r]
    for r in errors:
        print(f"\nFAILED: {r.get('variant')} at {r.get('size')}: {r['error']}")
    print("\n## Two-stage pipeline end to end (two_stage_e2e.py, warm second run)\n")
    print("\n".join(e2e_table(e2e)))
    print("\n## Targets\n")
    print("\n".join(target_lines(rows, e2e)))
    attention = attention_lines(data)
    if attention:
        print("\n## SDPA backend per attention shape (chosen by timing)\n")
        print("\n".join(attention))


if __name__ == "__main__":
    main(sys.argv)
