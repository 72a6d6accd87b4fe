"""8-bit attention kernels against bf16 SDPA: speed and error at the transformer's attention shapes.

At 24 576 video tokens (stage 2 at 1024x1536) attention is ~40 % of a pass. This times, on one GPU, every
candidate that imports, on the self-attention shapes of the model (batch 1, 32 heads, head dim 128 for video
and 64 for audio-sized heads, 6 144 and 24 576 tokens, no mask), and measures each one's error against an
exact float32 attention of the same bf16 inputs:

* ``sdpa bf16``: PyTorch's scaled_dot_product_attention (its default backend pick; what runs today);
* ``sdpa bf16 <backend>``: flash, cuDNN, efficient forced;
* ``fp8 emulated``: Q, K, V rounded to float8_e4m3fn with one scale per head, then exact attention; no speed,
  the error any FP8 kernel with per-head scales starts from (also the CPU self-check); ``fp8 QK emulated``: the
  same with V left in bf16; ``int8 QK emulated``: SageAttention 1's arithmetic (INT8 Q/K per block of 128
  tokens, K smoothed), so its error can be known on a CPU;
* ``sageattention``: SageAttention 1 (INT8 Q/K per block, K smoothed, fp16 P·V; Triton);
* ``flashinfer``: FlashInfer's single prefill with FP8 Q/K/V (if installed; compiles with nvcc on first use);
* ``flash-attn-4``: FlashAttention 4's CuTe kernels with FP8 inputs (FP8 on compute capability 10.x only: on a
  Hopper GPU this row records the refusal).

Relative L2 errors are of the attention output; TFLOP/s counts 4·T²·d·H per call. Prints one JSON line per
(shape, candidate) and a table.

    python benchmarks/fp8_attention.py --json /tmp/fp8_attention.json    # GPU
    python benchmarks/fp8_attention.py --tiny                             # CPU self-check (small shapes)
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # [B, H, T, d] -> [B, H, T, d]


def exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Float32 attention of the given values (memory-efficient kernel on a GPU; math on a CPU)."""
    q, k, v = q.float(), k.float(), v.float()
    if q.is_cuda:
        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            return scaled_dot_product_attention(q, k, v)
    return scaled_dot_product_attention(q, k, v)


def per_head_fp8(x: torch.Tensor) -> torch.Tensor:
    """Round to float8_e4m3fn with one scale per (batch, head), back in float32."""
    scale = x.float().abs().amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).to(FP8).float() * scale


def fp8_emulated(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return exact(per_head_fp8(q), per_head_fp8(k), per_head_fp8(v)).to(q.dtype)


def per_block_int8(x: torch.Tensor, block: int = 128) -> torch.Tensor:
    """Round to INT8 with one scale per (batch, head, block of ``block`` tokens), back in float32."""
    b, h, t, d = x.shape
    pad = (-t) % block
    padded = torch.nn.functional.pad(x.float(), (0, 0, 0, pad)).view(b, h, -1, block, d)
    scale = padded.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12) / 127.0
    return (torch.round(padded / scale) * scale).view(b, h, -1, d)[:, :, :t]


def int8_qk_emulated(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Q and K in INT8 per block of tokens, K smoothed by its mean over tokens first (softmax does not see a
    constant added to every logit of a row), P·V in 16 bits: SageAttention 1's arithmetic, emulated."""
    k_smooth = k.float() - k.float().mean(dim=-2, keepdim=True)
    return exact(per_block_int8(q), per_block_int8(k_smooth), v).to(q.dtype)


def fp8_qk_emulated(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Only Q and K in FP8 (P·V in 16 bits, as SageAttention keeps it)."""
    return exact(per_head_fp8(q), per_head_fp8(k), v).to(q.dtype)


def sdpa(backend: SDPBackend | None) -> Attention:
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if backend is None:
            return scaled_dot_product_attention(q, k, v)
        with sdpa_kernel([backend]):
            return scaled_dot_product_attention(q, k, v)

    return run


def sageattention() -> Attention:
    module = importlib.import_module("sageattention")
    return lambda q, k, v: module.sageattn(q, k, v, tensor_layout="HND", is_causal=False)


def flashinfer() -> Attention:
    module = importlib.import_module("flashinfer")

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # single prefill takes [T, H, d]; FP8 inputs with per-tensor scales
        def fp8(x: torch.Tensor) -> tuple[torch.Tensor, float]:
            scale = float(x.abs().amax().clamp(min=1e-12) / FP8_MAX)
            return (x[0].transpose(0, 1) / scale).to(FP8).contiguous(), scale

        (qf, sq), (kf, sk), (vf, sv) = fp8(q), fp8(k), fp8(v)
        out = module.single_prefill_with_kv_cache(qf, kf, vf, causal=False, scale_q=torch.tensor(sq),
                                                  scale_k=torch.tensor(sk), scale_v=torch.tensor(sv),
                                                  o_dtype=q.dtype)  # fmt: skip
        return out.transpose(0, 1).unsqueeze(0)

    return run


def flash_attn_4() -> Attention:
    module = importlib.import_module("flash_attn.cute")

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        qf, kf, vf = (x.transpose(1, 2).to(FP8).contiguous() for x in (q, k, v))  # [B, T, H, d]
        out = module.flash_attn_func(qf, kf, vf)
        out = out[0] if isinstance(out, tuple) else out
        return out.transpose(1, 2).to(q.dtype)

    return run


def candidates(device: torch.device) -> dict[str, Callable[[], Attention]]:
    """Name -> a factory (a factory that raises records why the candidate is unavailable)."""
    rows: dict[str, Callable[[], Attention]] = {"sdpa bf16": lambda: sdpa(None), "fp8 emulated": lambda: fp8_emulated,
                                                "fp8 QK emulated": lambda: fp8_qk_emulated,
                                                "int8 QK emulated": lambda: int8_qk_emulated}
    if device.type == "cuda":
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                              ("efficient", SDPBackend.EFFICIENT_ATTENTION)):  # fmt: skip
            rows[f"sdpa bf16 {name}"] = lambda backend=backend: sdpa(backend)
        rows.update({"sageattention": sageattention, "flashinfer": flashinfer, "flash-attn-4": flash_attn_4})
    return rows


def time_ms(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    fn()
    if device.type != "cuda":
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - started) * 1000 / repeats
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-30))


def inputs(tokens: int, heads: int, head_dim: int, device: torch.device, seed: int,
           outliers: float = 1.0) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Q, K, V as the random-weight block makes them: RMS-normed q/k (unit RMS per token), v of unit scale;
    ``outliers`` > 1 scales 4 channels of q and k by that much, as trained models' q/k have (the hard case for
    8-bit quantization). [B, H, T, d]."""
    g = torch.Generator(device=device).manual_seed(seed)
    made = [torch.randn(1, heads, tokens, head_dim, device=device, generator=g, dtype=torch.float32) for _ in range(3)]
    q, k, v = made
    q[..., :4] *= outliers
    k[..., :4] *= outliers
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


def measure(tokens: int, heads: int, head_dim: int, device: torch.device, repeats: int,
            outliers: float = 1.0) -> list[dict]:  # fmt: skip
    q, k, v = inputs(tokens, heads, head_dim, device, seed=tokens + head_dim, outliers=outliers)
    reference = exact(q, k, v)
    flops = 4.0 * tokens * tokens * head_dim * heads
    rows = []
    for name, factory in candidates(device).items():
        row: dict = {"tokens": tokens, "heads": heads, "head_dim": head_dim, "outliers": outliers, "candidate": name}
        try:
            fn = factory()
            out = fn(q, k, v)
            row["rel_err_vs_fp32"] = round(rel(out, reference), 5)
            if "emulated" not in name:
                row["ms"] = round(time_ms(lambda: fn(q, k, v), device, repeats), 3)
                row["tflop_per_s"] = round(flops / row["ms"] / 1e9, 1)
        except Exception as e:  # noqa: BLE001 - a candidate that does not install or run is a finding, not a stop
            row["unavailable"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["candidate"] == "sdpa bf16" and "ms" in r), None)  # this shape's
    for r in rows:
        if base is not None and "ms" in r:
            r["speedup_vs_sdpa_bf16"] = round(base["ms"] / r["ms"], 3)
    return rows


def table(rows: list[dict]) -> None:
    print("\n| tokens | head dim | q/k outliers | candidate | ms | TFLOP/s | vs sdpa bf16 | rel. error vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "unavailable" in r:
            print(f"| {r['tokens']} | {r['head_dim']} | x{r['outliers']:g} | {r['candidate']} | unavailable: "
                  f"{r['unavailable']} | | | |")  # fmt: skip
            continue
        ms = f"{r['ms']:.3f}" if "ms" in r else "-"
        print(f"| {r['tokens']} | {r['head_dim']} | x{r['outliers']:g} | {r['candidate']} | {ms} | {r.get('tflop_per_s', '-')} | "
              f"{r.get('speedup_vs_sdpa_bf16', '-')} | {100 * r['rel_err_vs_fp32']:.3f} % |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="CPU self-check: small shapes.")
    parser.add_argument("--tokens", default=None, help="Comma-separated token counts (default 6144,24576).")
    parser.add_argument("--head-dims", default="128,64")
    parser.add_argument("--heads", type=int, default=None, help="Heads (default 32; tiny 2).")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--outliers", default="1,4",
                        help="Scales of 4 q/k channels, comma-separated: 1 = random-weight-like, 4 = trained-like.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else args.device)
    tokens = [int(t) for t in (args.tokens or ("64,256" if args.tiny else "6144,24576")).split(",")]
    heads = args.heads or (2 if args.tiny else 32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# {name}, torch {torch.__version__}", flush=True)
    rows: list[dict] = []
    for count in tokens:
        for head_dim in (int(d) for d in args.head_dims.split(",")):
            for outliers in (float(o) for o in args.outliers.split(",")):
                rows += measure(count, heads, head_dim, device, 2 if args.tiny else args.repeats, outliers)
    table(rows)
    if args.tiny:  # self-check: the reference paths ran and the FP8 rounding error is FP8-sized
        emulated = [r for r in rows if r["candidate"] == "fp8 emulated"]
        assert emulated and all(0.001 < r["rel_err_vs_fp32"] < 0.2 for r in emulated), emulated
        assert all("ms" in r for r in rows if r["candidate"] == "sdpa bf16")
        print("tiny self-check passed")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
