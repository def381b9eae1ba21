#!/usr/bin/env python3
"""Attention speed, side by side: roofline's CUDA kernels (bench/micro/gpu_attention_bench.cpp) against
PyTorch SDPA with the flash backend on the same GPU and shapes, bf16:

  prefill: one causal sequence of S rows, 32 query heads over 8 kv heads, head_dim 64 and 128;
           TFLOP/s with FLOPs = 2 * 2 * S * S / 2 * Hq * D.
  decode:  one query row per sequence against B sequences of ctx keys (not causal: the row sees every key);
           GB/s with bytes = the K and V read, B * ctx * Hkv * D * 2 * 2.

SDPA runs with enable_gqa=True where the flash backend takes it, else with the kv heads repeated before
timing (noted per row as gqa="repeat"; the repeated K/V are then 4x the bytes SDPA reads, but the GB/s column
still counts the unrepeated bytes, like ours). Timing: CUDA events, warm-up, median of many.

  python3 bench/e2e/attention_vs_sdpa.py --bin build-gpu/bin/roofline_gpu_attention_bench --out OUTDIR [--quick]
      [--prefill-only] [--ours-json FILE (an earlier run of the bench, instead of --bin)]
Prefill rows also show the bench's mma.sync kernel ("paged bs16 mma.sync") where it ran.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_timing import time_ms  # noqa: E402

HQ, HKV = 32, 8


def sdpa_call(q, k, v, causal):
    """A zero-argument callable running flash SDPA, and how GQA was handled."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run_gqa():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    try:
        run_gqa()
        torch.cuda.synchronize()
        return run_gqa, "native"
    except (RuntimeError, TypeError):
        group = q.shape[1] // k.shape[1]
        kr, vr = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)

        def run_repeat():
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, kr, vr, is_causal=causal)

        run_repeat()
        return run_repeat, "repeat"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", help="roofline_gpu_attention_bench; run first and merged when given")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--prefill-only", action="store_true")
    ap.add_argument("--ours-json", help="the bench's --json output of an earlier run (instead of --bin)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ours = None
    if args.bin:
        ours_json = os.path.join(args.out, "gpu_attention_bench.json")
        cmd = [args.bin, "--json", ours_json] + (["--quick"] if args.quick else [])
        cmd += ["--prefill-only"] if args.prefill_only else []
        subprocess.run(cmd, check=True)
        ours = json.load(open(ours_json))
    elif args.ours_json:
        ours = json.load(open(args.ours_json))

    import torch
    torch.manual_seed(0)
    dev = torch.device("cuda")
    rows = []
    lengths = [1024, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384]
    for D in (64, 128):
        for S in lengths:
            q = torch.randn(1, HQ, S, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(1, HKV, S, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn(1, HKV, S, D, device=dev, dtype=torch.bfloat16)
            fn, gqa = sdpa_call(q, k, v, causal=True)
            ms = time_ms(fn)
            flops = 2.0 * 2.0 * S * S / 2.0 * HQ * D
            rows.append({"op": "prefill", "D": D, "B": 1, "seq": S, "sdpa_us": ms * 1e3,
                         "sdpa_tflop_s": flops / (ms * 1e-3) / 1e12, "gqa": gqa})
            del q, k, v
    shapes = [(1, 32768), (64, 4096)] if args.quick else [(1, 32768), (1, 131072), (64, 512), (64, 1024),
                                                             (64, 2048), (64, 4096), (16, 8192)]
    for D in (128, 64):
        for B, ctx in ([] if args.prefill_only else shapes):
            if D == 64 and ctx not in (4096, 32768):
                continue
            q = torch.randn(B, HQ, 1, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(B, HKV, ctx, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn(B, HKV, ctx, D, device=dev, dtype=torch.bfloat16)
            fn, gqa = sdpa_call(q, k, v, causal=False)
            ms = time_ms(fn)
            nbytes = B * ctx * HKV * D * 2 * 2
            rows.append({"op": "decode", "D": D, "B": B, "ctx": ctx, "sdpa_us": ms * 1e3,
                         "sdpa_gb_s": nbytes / (ms * 1e-3) / 1e9, "gqa": gqa})
            del q, k, v

    # Ours: the default paged variant of each shape.
    if ours:
        for r in rows:
            for o in ours["rows"]:
                same = o["op"] == r["op"] and o["D"] == r["D"] and o["B"] == r["B"]
                same = same and (o.get("seq") == r.get("seq") if r["op"] == "prefill" else o.get("ctx") == r.get("ctx"))
                if same and o["variant"] in ("paged bs16", "paged bs16 graph"):
                    r["roofline_us"] = o["us"]
                    if r["op"] == "prefill":
                        r["roofline_tflop_s"] = o["tflop_s"]
                    else:
                        r["roofline_gb_s"] = o["gb_s"]
                    r["speedup"] = r["sdpa_us"] / o["us"]
                if same and o["variant"] == "paged bs16 mma.sync":
                    r["roofline_mma_sync_tflop_s"] = o["tflop_s"]
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "Hq": HQ, "Hkv": HKV,
              "dtype": "bf16", "sdpa_backend": "FLASH_ATTENTION", "rows": rows}
    if ours:
        result["roofline"] = ours
    with open(os.path.join(args.out, "attention_vs_sdpa.json"), "w") as f:
        json.dump(result, f, indent=1)

    print(f"\n{result['device']}, torch {torch.__version__}, Hq {HQ} / Hkv {HKV}, bf16")
    print(f"{'op':8} {'D':>4} {'B':>3} {'seq/ctx':>7} {'SDPA':>10} {'roofline':>10} {'unit':8} {'speedup':>8} gqa"
          "  (mma.sync)")
    for r in rows:
        unit = "TFLOP/s" if r["op"] == "prefill" else "GB/s"
        key = "tflop_s" if r["op"] == "prefill" else "gb_s"
        ours_rate = r.get("roofline_" + key)
        ours_text = f"{ours_rate:.1f}" if ours_rate else "-"
        speedup_text = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        print(f"{r['op']:8} {r['D']:>4} {r['B']:>3} {r.get('seq', r.get('ctx')):>7} {r['sdpa_' + key]:>10.1f} "
              f"{ours_text:>10} {unit:8} {speedup_text:>8} {r['gqa']}"
              + (f"  {r['roofline_mma_sync_tflop_s']:.1f}" if "roofline_mma_sync_tflop_s" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
