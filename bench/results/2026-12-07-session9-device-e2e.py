#!/usr/bin/env python3
"""Session 9: GPT-2 124M training (batch 16, seq 1024, as bench/e2e/train_vs_torch.py), the new attention
defaults (wgmma forward, pipelined dK/dV) against both off (ROOFLINE_TRAIN_ATTN_WGMMA=0,
ROOFLINE_TRAIN_ATTN_DKDV_PIPELINED=0), alternating, each with --gemm-algorithms heuristic and tune.
Run from the repo root: python3 e2e.py BINARY OUTDIR BUDGET_S"""
import json, os, sys, time
sys.path.insert(0, "bench/e2e")
import train_vs_torch as t

binary, out, budget_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
os.makedirs(out, exist_ok=True)
work = "/tmp/s9work"
os.makedirs(work, exist_ok=True)
data, init = os.path.join(work, "data_gpt2"), os.path.join(work, "gpt2_124m")
t0 = time.time()
t.write_tokens(data, t.GPT2["vocab"], 20_000_000)
t.write_gpt2(init)
print(f"data + model made in {time.time() - t0:.1f} s", flush=True)
results = []
runs = [("new", "1", "heuristic"), ("old", "0", "heuristic"), ("new_2", "1", "heuristic"), ("old_2", "0", "heuristic"),
        ("new_tune", "1", "tune"), ("old_tune", "0", "tune")]
for name, on, algorithms in runs:
    if time.time() - t0 > budget_s - 30:
        print(f"skipping {name}: {time.time() - t0:.0f} s used of {budget_s:.0f}", flush=True)
        continue
    os.environ["ROOFLINE_TRAIN_ATTN_WGMMA"] = on
    os.environ["ROOFLINE_TRAIN_ATTN_DKDV_PIPELINED"] = on
    r = t.run_roofline(binary, init, data, work, name, t.GPT2["seq"], 16, 12,
                       extra=("--gemm-algorithms", algorithms, "--out", os.path.join(work, "ckpt_" + name)))
    r.update(attention_defaults=on, gemm_algorithms=algorithms)
    results.append(r)
    with open(os.path.join(out, "e2e.json"), "w") as f:
        json.dump(results, f, indent=1)
    if "tokens_per_s" in r:
        print(f"RESULT {name}: {r['tokens_per_s']:.0f} tok/s, {r['step_ms']:.2f} ms/step, "
              f"losses {[round(x, 4) for x in r['losses'][:4]]}", flush=True)
    else:
        print(f"RESULT {name}: ERROR {r.get('error', '')[:800]}", flush=True)
