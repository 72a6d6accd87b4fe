"""One markdown summary of a gpu_run_25.sh output folder: the reference 1.2.0 --compile vs ours on the LTX-2.5 transformer.

    python benchmarks/summarize_25.py OUT_DIR > OUT_DIR/summary.md

Reads ``reference.jsonl`` (benchmarks/reference_step_1_2.py's lines) and ``transformer_step.json`` (or the JSON lines
of ``transformer_step.log`` when the run was cut short); whatever is missing shows as "-".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from summarize import COLUMNS, fmt, json_lines, step_rows, transformer_table  # noqa: E402


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(".")
    reference = json_lines(out / "reference.jsonl")
    header = next((r for r in reference if "params" in r), {})
    compiled = [r for r in reference if r.get("variant", "").endswith("--compile")]
    eager = [r for r in reference if r.get("variant", "").endswith("eager")]
    rows, data = step_rows(out)
    gpu = header.get("gpu", data.get("gpu", "?"))
    print(f"# LTX-2.5 transformer: ours vs the reference 1.2.0, one run ({gpu})\n")
    print(f"- reference: ltx-core {header.get('ltx_core', '?')} / ltx-pipelines {header.get('ltx_pipelines', '?')}, "
          f"{fmt(header.get('params', 0) / 1e9, 2)}B params, attention {header.get('attention', '?')}, "
          f"compile {header.get('compile')}, max batch {header.get('max_batch_size')}")  # fmt: skip
    print(f"- ours: {fmt(data.get('params_b'), 2)}B params, torch {data.get('torch', header.get('torch', '?'))}")
    print("- random bf16 weights, 121 frames at 24 fps, 1024 text tokens; the reference column is its --compile "
          "(the step: its four guidance passes through BatchSplitAdapter, max batch 1)\n")
    print("\n".join(transformer_table(compiled or eager, rows)))
    by = {(r["size"], r["variant"]): r for r in rows if "pass_s" in r}
    print("\n## Ours against the reference --compile (reference time / ours: > 1 means ours is faster)\n")
    print("| what | reference (s) | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for r in compiled:
        size = r["shape"].rsplit("x", 1)[0]
        for kind, key in (("step", "upstream_seq_step_s"), ("pass", "single_pass_s")):
            if key not in r:
                continue
            cells = []
            for column in COLUMNS:
                ours = by.get((size, column), {}).get(f"{kind}_s")
                cells.append(f"{r[key] / ours:.2f}x" if ours else "-")
            print(f"| {kind} {size} | {fmt(r[key])} | " + " | ".join(cells) + " |")
    print("\n## The reference's own numbers\n")
    for r in reference:
        if "shape" in r:
            print(f"- {r}")
    errors = [r for r in [*rows, *json_lines(out / "transformer_step.log"), *reference] if "error" in r]
    for r in errors:
        print(f"\nFAILED: {r.get('variant')} at {r.get('size', r.get('shape'))}: {r['error']}")


if __name__ == "__main__":
    main(sys.argv)
