#!/usr/bin/env python3
"""GPU decoder benchmark, side by side with PyTorch + transformers on the same random-weight model.

Makes Llama-shaped models with random bf16 weights on the box (transformers, saved with save_pretrained so
that both engines load the very same checkpoint), then for each shape runs
  - `roofline bench -m DIR --device cuda` (prefill, batch-1 and batched decode; its own ceilings measured
    in the same process: device copy bandwidth and bf16 GEMM 8192^3),
  - transformers (attn_implementation="sdpa", bf16, static KV cache) on the same workloads, timed with
    CUDA events after warm-up,
and writes one JSON plus a table. Shapes: "1B" = Llama 3.2 1B (vocab 32000 and 128256), "8B" = Llama 3 8B.
Usage: decoder_vs_hf.py --bin build-gpu/bin/roofline --out DIR [--shapes 1b-v32k,1b,8b] [--quick]
"""
import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = {
    "1b-v32k": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                    intermediate_size=8192, vocab_size=32000, tie_word_embeddings=True),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False),
}


def make_model(name, root):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    path = os.path.join(root, name)
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    cfg = LlamaConfig(**SHAPES[name], max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    # Random init is N(0, 0.02); keep it (the values are never zeros).
    model.save_pretrained(path, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    return path


def run_ours(binary, path, prompt, generate, batch, out_dir, tag):
    json_path = os.path.join(out_dir, f"ours_{tag}.json")
    cmd = [binary, "bench", "-m", path, "--device", "cuda", "--prompt", str(prompt), "-n", str(generate),
           "--batch", str(batch), "--json", json_path]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    with open(json_path) as f:
        r = json.load(f)
    r["wall_seconds"] = time.time() - t0
    return r


def time_events(fn, warmup=2, repeats=5):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    times.sort()
    return times[len(times) // 2]


def hf_measure(path, workloads):
    """workloads: list of (kind, batch, prompt, generate). Returns {tag: tokens_per_s}."""
    import torch
    from transformers import AutoModelForCausalLM, StaticCache
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa",
                                                 device_map="cuda")
    model.eval()
    vocab = model.config.vocab_size
    out = {}
    with torch.inference_mode():
        for kind, batch, prompt, generate in workloads:
            tag = f"{kind}_b{batch}_p{prompt}_n{generate}"
            ids = torch.randint(0, vocab, (batch, prompt), device="cuda")
            try:
                if kind == "prefill":
                    s = time_events(lambda: model(ids, use_cache=False, logits_to_keep=1))
                    out[tag] = {"tokens_per_s": batch * prompt / s, "seconds": s}
                else:
                    try:
                        cache = StaticCache(config=model.config, max_batch_size=batch,
                                            max_cache_len=prompt + generate + 8, device="cuda", dtype=torch.bfloat16)
                    except TypeError:  # transformers 5: the batch size and dtype come from the first update
                        cache = StaticCache(config=model.config, max_cache_len=prompt + generate + 8)

                    def decode_run():
                        cache.reset()
                        pos = torch.arange(prompt, device="cuda")
                        o = model(ids, past_key_values=cache, cache_position=pos, use_cache=True, logits_to_keep=1)
                        nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        for i in range(generate):
                            p = torch.tensor([prompt + i], device="cuda")
                            o = model(nxt, past_key_values=cache, cache_position=p, use_cache=True)
                            nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                        torch.cuda.synchronize()
                        return time.perf_counter() - t0

                    decode_run()
                    s = sorted(decode_run() for _ in range(3))[1]
                    out[tag] = {"tokens_per_s": batch * generate / s, "seconds": s}
            except torch.cuda.OutOfMemoryError:
                out[tag] = {"error": "out of memory"}
                torch.cuda.empty_cache()
            except Exception as e:  # one failed peer workload must not lose the others
                out[tag] = {"error": f"{type(e).__name__}: {e}"[:300]}
                print(f"HF {tag}: {out[tag]['error']}", file=sys.stderr)
    del model
    torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="/tmp/roofline-models")
    ap.add_argument("--shapes", default="1b-v32k,1b,8b")
    ap.add_argument("--quick", action="store_true", help="fewer workloads")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    results = {}
    for shape in a.shapes.split(","):
        path = make_model(shape, a.models)
        # (kind, batch, prompt, generate)
        work = [("decode", 1, 128, 128), ("decode", 1, 4096, 128), ("prefill", 1, 2048, 2), ("prefill", 8, 2048, 2)]
        if shape == "1b-v32k" and not a.quick:
            work += [("decode", b, 512, 64) for b in (8, 32, 64, 128, 256)]
        if shape == "8b" and not a.quick:
            work += [("decode", 64, 512, 64)]
        hf = hf_measure(path, work)
        rows = []
        for kind, batch, prompt, generate in work:
            tag = f"{kind}_b{batch}_p{prompt}_n{generate}"
            ours = run_ours(a.bin, path, prompt, generate, batch, a.out, f"{shape}_{tag}")
            rows.append({"workload": tag, "ours": ours, "hf": hf.get(tag, {})})
        results[shape] = rows
        print_table(shape, rows)
        sys.stdout.flush()
    with open(os.path.join(a.out, "decoder_vs_hf.json"), "w") as f:
        json.dump(results, f, indent=1)


def print_table(shape, rows):
    print(f"\n== {shape}")
    print(f"{'workload':28} {'ours tok/s':>12} {'HF tok/s':>10} {'x HF':>6} {'roof tok/s':>11} {'% roof':>7} {'MFU':>5} {'bound':>8}")
    for r in rows:
        o, h = r["ours"], r["hf"]
        if "error" in o:
            print(f"{r['workload']:28} ERROR {o['error']}")
            continue
        prefill = r["workload"].startswith("prefill")
        ours_tps = o["prefill_tokens_per_s"] if prefill else o["decode_tokens_per_s"]
        hf_tps = h.get("tokens_per_s", 0.0)
        ratio = ours_tps / hf_tps if hf_tps else 0.0
        roof = "" if prefill else f"{o['roofline_tokens_per_s']:11.0f}"
        frac = f"{100 * o['prefill_mfu']:5.0f}%" if prefill else f"{100 * o['roofline_fraction']:6.1f}%"
        print(f"{r['workload']:28} {ours_tps:12.0f} {hf_tps:10.0f} {ratio:6.2f} {roof:>11} {frac:>7} "
              f"{'' if not prefill else ''} {o['decode_bound'] if not prefill else 'compute':>8}")


if __name__ == "__main__":
    main()
