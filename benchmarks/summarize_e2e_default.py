"""summary.md of a benchmarks/gpu_run_e2e_default.sh run: the default path end to end against issue 23's targets.

Reads every ``e2e_default*.json`` (one per two_stage_e2e.py process; a crashed process's rows survive in its own
file) and ``timeline.txt`` under OUT_DIR.

    python benchmarks/summarize_e2e_default.py OUT_DIR > OUT_DIR/summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Issue 23, "fast by default": warm end-to-end seconds of the default path (no --compile flag), 121 frames.
#: Key: (pipeline, size, steps, fp8).
TARGETS = {
    ("distilled", "768x512", None, False): 3.0,
    ("distilled", "768x512", None, True): 2.5,
    ("two-stage", "1536x1024", 40, False): 55.0,
    ("two-stage", "1536x1024", 40, True): 38.0,
    ("two-stage", "768x512", 30, True): 6.0,
}
STAGES = ("stage 1", "upsample", "stage 2", "decode video", "decode audio", "write mp4")


def target_cell(row: dict) -> str:
    target = TARGETS.get((row.get("pipeline", "two-stage"), row["size"], row["steps"], row.get("fp8", False)))
    if target is None or row.get("compile") != "default":
        return "-"
    return f"<= {target:g} s: {'**met**' if row['total_s'] <= target else 'missed'}"


def main() -> None:
    folder = Path(sys.argv[1])
    parts = sorted(folder.glob("e2e_default*.json"))
    datas = []
    for path in parts:
        try:
            datas.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            print(f"(unreadable: {path.name}: {e})")
    gpus = sorted({d.get("gpu", "?") for d in datas})
    print("# The default path end to end (issue 23)")
    print()
    sizes = "tiny models (CPU self-check)" if any(d.get("tiny") for d in datas) else "full-size random weights"
    frames = ", ".join(str(f) for f in sorted({d.get("frames", "?") for d in datas}, key=str))
    print(f"{', '.join(gpus) or 'no results'}; torch {', '.join(sorted({d.get('torch', '?') for d in datas}))}; "
          f"{sizes}, {frames} frames, prompt cached (no Gemma), warm second generation (the warm-up generation "
          "before it: 2 steps, or the whole distilled run). 'passes': stage, video tokens, path taken.")  # fmt: skip
    print()
    print("| run | total s | target | " + " | ".join(STAGES) + " | LoRA swap | peak GiB | warm-up run s | "
          "compile s (warm-up) | passes | frames vs (PSNR dB) |")  # fmt: skip
    print("|---" * (len(STAGES) + 10) + "|")
    for data in datas:
        for r in data.get("rows", []):
            if "error" in r:
                print(f"| {r['run']} | failed: {r['error']} |" + " |" * (len(STAGES) + 7))
                continue
            b = r["breakdown_s"]
            psnr = f"{r['frames_psnr_db']} vs {r['vs']}" if "vs" in r else "-"
            print(f"| {r['run']} | **{r['total_s']}** | {target_cell(r)} | "
                  + " | ".join(f"{b.get(k, 0.0):.2f}" for k in STAGES)
                  + f" | {r['lora_swap_s']:.2f} | {r['peak_gib']} | {r['warmup_run_s']} | {r['compile_s']} | "
                  f"{r.get('passes', '-')} | {psnr} |")  # fmt: skip
    timeline = folder / "timeline.txt"
    if timeline.exists():
        print()
        print("```")
        print(timeline.read_text().rstrip())
        print("```")


if __name__ == "__main__":
    main()
