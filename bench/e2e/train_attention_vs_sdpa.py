#!/usr/bin/env python3
"""Training attention speed, side by side: roofline's flash-attention forward and backward
(bench/micro/gpu_train_attention_bench.cpp) against PyTorch SDPA with the flash backend (is_causal) on the same
GPU and shapes, bf16: B * T = 16384 tokens, T = 1024, 2048, 4096; head_dim 64 with 12 / 12 heads (GPT-2 124M)
and head_dim 128 with 32 / 8 heads.

TFLOP/s count causal FLOPs for both: forward 4 B Hq T^2 D / 2, backward 2.5x that. The SDPA backward is timed
alone: torch.autograd.grad of one retained forward graph with respect to q, k, v. GQA: SDPA runs with
enable_gqa=True where the flash backend takes it, else K and V are repeated to Hq heads beforehand and the
repeated tensors are the leaves (noted gqa="repeat"; the repeat and its gradient reduction are not timed).
Timing: CUDA events, warm-up, median of 11 samples.

  python3 bench/e2e/train_attention_vs_sdpa.py --bin build/bin/roofline_gpu_train_attention_bench --out OUTDIR
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_timing import time_ms  # noqa: E402

HEADS = [(64, 12, 12), (128, 32, 8)]  # (D, Hq, Hkv)
TOKENS = 16384


def sdpa_pair(B, T, D, Hq, Hkv):
    """Forward and backward callables of flash SDPA on random inputs, and how GQA was handled."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = torch.device("cuda")
    q = torch.randn(B, Hq, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(B, Hkv, T, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, Hkv, T, D, device=dev, dtype=torch.bfloat16)
    dout = torch.randn(B, Hq, T, D, device=dev, dtype=torch.bfloat16)
    gqa = "none" if Hq == Hkv else "native"
    kwargs = {"enable_gqa": True} if Hq != Hkv else {}
    kl, vl = k.clone().requires_grad_(True), v.clone().requires_grad_(True)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, kl, vl, is_causal=True, **kwargs).sum().backward()
        torch.cuda.synchronize()
    except (RuntimeError, TypeError):
        group = Hq // Hkv
        kl = k.repeat_interleave(group, dim=1).detach().requires_grad_(True)
        vl = v.repeat_interleave(group, dim=1).detach().requires_grad_(True)
        kwargs, gqa = {}, "repeat"

    def forward():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.no_grad():
            return F.scaled_dot_product_attention(q, kl, vl, is_causal=True, **kwargs)

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = F.scaled_dot_product_attention(q, kl, vl, is_causal=True, **kwargs)

    def backward():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.autograd.grad(out, (q, kl, vl), dout, retain_graph=True)

    return forward, backward, gqa


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", help="roofline_gpu_train_attention_bench; run first and merged when given")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ours = None
    if args.bin:
        ours_json = os.path.join(args.out, "gpu_train_attention_bench.json")
        subprocess.run([args.bin, "--json", ours_json] + (["--quick"] if args.quick else []), check=True)
        ours = json.load(open(ours_json))

    import torch
    torch.manual_seed(0)
    lengths = [1024, 4096] if args.quick else [1024, 2048, 4096]
    rows = []
    for D, Hq, Hkv in HEADS:
        for T in lengths:
            B = TOKENS // T
            forward, backward, gqa = sdpa_pair(B, T, D, Hq, Hkv)
            fwd_ms, bwd_ms = time_ms(forward, min_ms=20.0), time_ms(backward, min_ms=20.0)
            fwd_flops = 4.0 * B * Hq * T * T * D / 2.0
            row = {"D": D, "Hq": Hq, "Hkv": Hkv, "B": B, "T": T, "gqa": gqa,
                   "sdpa_fwd_us": fwd_ms * 1e3, "sdpa_bwd_us": bwd_ms * 1e3,
                   "sdpa_fwd_tflop_s": fwd_flops / (fwd_ms * 1e-3) / 1e12,
                   "sdpa_bwd_tflop_s": 2.5 * fwd_flops / (bwd_ms * 1e-3) / 1e12}
            for o in (ours or {}).get("rows", []):
                if (o["D"], o["Hq"], o["Hkv"], o["B"], o["T"]) == (D, Hq, Hkv, B, T):
                    row.update({"roofline_fwd_us": o["fwd_us"], "roofline_bwd_us": o["bwd_us"],
                                "roofline_fwd_tflop_s": o["fwd_tflop_s"], "roofline_bwd_tflop_s": o["bwd_tflop_s"],
                                "fwd_speedup": row["sdpa_fwd_us"] / o["fwd_us"],
                                "bwd_speedup": row["sdpa_bwd_us"] / o["bwd_us"]})
            rows.append(row)
            torch.cuda.empty_cache()
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "dtype": "bf16",
              "sdpa_backend": "FLASH_ATTENTION", "causal": True, "rows": rows}
    if ours:
        result["roofline"] = ours
    with open(os.path.join(args.out, "train_attention_vs_sdpa.json"), "w") as f:
        json.dump(result, f, indent=1)

    print(f"\n{result['device']}, torch {torch.__version__}, bf16, causal, {TOKENS} tokens; "
          "TFLOP/s (speedup = SDPA time / ours)")
    print(f"{'D':>4} {'Hq/Hkv':>7} {'B':>3} {'T':>5} | {'fwd SDPA':>9} {'ours':>7} {'x':>6} | "
          f"{'bwd SDPA':>9} {'ours':>7} {'x':>6} | gqa")
    for r in rows:
        def rate(key):
            return f"{r[key]:.1f}" if key in r else "-"

        def speed(key):
            return f"{r[key]:.2f}x" if key in r else "-"
        print(f"{r['D']:>4} {str(r['Hq']) + '/' + str(r['Hkv']):>7} {r['B']:>3} {r['T']:>5} | "
              f"{rate('sdpa_fwd_tflop_s'):>9} {rate('roofline_fwd_tflop_s'):>7} {speed('fwd_speedup'):>6} | "
              f"{rate('sdpa_bwd_tflop_s'):>9} {rate('roofline_bwd_tflop_s'):>7} {speed('bwd_speedup'):>6} | {r['gqa']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
