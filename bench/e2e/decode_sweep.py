#!/usr/bin/env python3
"""Decode tok/s of several roofline binaries or settings on one random-weight model, one line each.

The model is made as decoder_vs_hf.py makes it (transformers, random bf16 weights, saved on the box); each run is
`BIN bench -m MODEL --device cuda --json ...` with its own extra arguments and environment, so an A/B of two
builds or of a knob (ROOFLINE_PDL=0, ROOFLINE_GEMV_PREFETCH_KB=...) runs in one call on the same model.
Usage: decode_sweep.py OUT SHAPE "label=[VAR=VALUE ...] BIN [bench args]" ...
  e.g. decode_sweep.py /tmp/out 1b-v32k "new=./roofline --prompt 128 -n 128" "old=./roofline_before --prompt 128 -n 128"
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decoder_vs_hf  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, shape, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    path = decoder_vs_hf.make_model(shape, "/tmp/roofline-models")
    print(f"model {shape} ready in {time.time() - t0:.1f}s", flush=True)
    for spec in runs:
        label, cmd = spec.split("=", 1)
        parts = cmd.split()
        env = dict(os.environ)
        while parts and "=" in parts[0] and not parts[0].startswith("-"):
            key, value = parts.pop(0).split("=", 1)
            env[key] = value
        json_path = os.path.join(out, f"{shape}_{label}.json")
        argv = [parts[0], "bench", "-m", path, "--device", "cuda", "--json", json_path] + parts[1:]
        t1 = time.time()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            print(f"{label}: FAILED {proc.stderr[-1500:]}", flush=True)
            continue
        with open(json_path) as f:
            r = json.load(f)
        print(f"{shape:8} {label:22} decode {r['decode_tokens_per_s']:8.1f} tok/s  p50 {r['decode_ms_p50']:.3f} ms  "
              f"roof {r['roofline_tokens_per_s']:7.0f} ({100 * r['roofline_fraction']:5.1f}%)  "
              f"bw {r['memory_bandwidth_gb_s']:.0f} GB/s b{r['batch']} p{r['prompt_tokens']}  [{time.time() - t1:.1f}s]",
              flush=True)


if __name__ == "__main__":
    main()
