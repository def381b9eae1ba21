#!/usr/bin/env python3
"""Training throughput on one GPU, side by side: `roofline train --device cuda` against PyTorch (torch.compile,
SDPA flash attention, fused AdamW, bf16 autocast) on the same model shape, batch and random-token data.

  gpt2:   GPT-2 124M (12 layers, 768 wide, 12 heads, vocab 50304, seq 1024), roofline and PyTorch;
          tokens/s and MFU = tokens/s * 860 MFLOP/token (the usual 6N + attention count for this shape)
          over the measured bf16 GEMM peak (roofline's ceiling measurement, printed by `roofline train`).
  llama:  a Llama-3.2-1B shape (16 layers, 2048 wide, 32 heads / 8 kv heads, ffn 8192, vocab 128256, tied,
          llama3 RoPE scaling), roofline with and without --checkpoint-activations: tokens/s and GPU memory.

Both read random token ids (a prepared shard written here; the models start from random weights saved as a
Hugging Face directory, which roofline loads with --init). roofline's tokens/s: the median of the per-step
figures of its JSONL log after the first 3 steps. PyTorch's: CUDA events over timed steps after warm-up
(compilation included in the warm-up).

  python3 bench/e2e/train_vs_torch.py --bin build/bin/roofline --work /tmp/tvt --out OUTDIR [--which gpt2,torch,llama]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

GPT2 = dict(layers=12, hidden=768, heads=12, vocab=50304, seq=1024)
GPT2_FLOPS_PER_TOKEN = 860e6


def write_tokens(directory, vocab, count, seed=0):
    import numpy as np
    os.makedirs(directory, exist_ok=True)
    dtype = np.uint16 if vocab <= 65536 else np.uint32
    ids = np.random.default_rng(seed).integers(0, vocab, size=count, dtype=np.int64).astype(dtype)
    with open(os.path.join(directory, "train-00000.bin"), "wb") as f:
        f.write(b"RLTOKENS" + struct.pack("<IIQQ", 1, np.dtype(dtype).itemsize, count, vocab))
        f.write(ids.tobytes())
    manifest = {"format": "roofline-tokens", "version": 1, "vocab_size": vocab,
                "token_dtype": "u16" if dtype == np.uint16 else "u32", "tokenizer": "tokenizer",
                "train": [{"file": "train-00000.bin", "tokens": count}], "val": [], "train_tokens": count,
                "val_tokens": 0}
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def write_gpt2(directory):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=GPT2["vocab"], n_positions=GPT2["seq"], n_embd=GPT2["hidden"], n_layer=GPT2["layers"],
                     n_head=GPT2["heads"])
    GPT2LMHeadModel(cfg).save_pretrained(directory, safe_serialization=True)


def write_llama_1b(directory):
    import torch
    from safetensors.torch import save_file
    os.makedirs(directory, exist_ok=True)
    H, F, L, V, D, HQ, HKV = 2048, 8192, 16, 128256, 64, 32, 8
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": H,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": HQ, "num_key_value_heads": HKV,
           "head_dim": D, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
           "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192},
           "tie_word_embeddings": True, "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 1,
           "eos_token_id": 2}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    g = torch.Generator(device="cuda").manual_seed(0)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    t = {"model.embed_tokens.weight": rnd(V, H), "model.norm.weight": torch.ones(H, dtype=torch.bfloat16)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.ones(H, dtype=torch.bfloat16)
        t[p + "post_attention_layernorm.weight"] = torch.ones(H, dtype=torch.bfloat16)
        t[p + "self_attn.q_proj.weight"] = rnd(HQ * D, H)
        t[p + "self_attn.k_proj.weight"] = rnd(HKV * D, H)
        t[p + "self_attn.v_proj.weight"] = rnd(HKV * D, H)
        t[p + "self_attn.o_proj.weight"] = rnd(H, HQ * D)
        t[p + "mlp.gate_proj.weight"] = rnd(F, H)
        t[p + "mlp.up_proj.weight"] = rnd(F, H)
        t[p + "mlp.down_proj.weight"] = rnd(H, F)
    save_file(t, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})


def run_roofline(binary, init, data, work, name, seq, batch, steps, extra=()):
    log = os.path.join(work, name + ".jsonl")
    cmd = [binary, "train", "--device", "cuda", "--init", init, "--data", data, "--seq", str(seq), "--batch",
           str(batch), "--steps", str(steps), "--lr", "6e-4", "--warmup", "0", "--log-json", log, *extra]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(p.stdout[-3000:])
    sys.stdout.write(p.stderr[-3000:])
    if p.returncode != 0:
        return {"name": name, "error": p.stderr[-2000:], "command": " ".join(cmd)}
    steps_log = [json.loads(line) for line in open(log)]
    rates = [s["tokens_per_s"] for s in steps_log[3:]] or [s["tokens_per_s"] for s in steps_log]
    peak = re.search(r"bf16 GEMM peak of ([0-9.]+) TFLOP/s", p.stderr)
    mem = re.search(r"device memory in use: ([0-9.]+) GiB", p.stdout)
    return {"name": name, "command": " ".join(cmd), "tokens_per_s": statistics.median(rates),
            "peak_tflops": float(peak.group(1)) if peak else None, "device_gib": float(mem.group(1)) if mem else None,
            "losses": [s["loss"] for s in steps_log], "wall_s": time.time() - t0,
            "step_ms": statistics.median(s["step_ms"] for s in steps_log[3:] or steps_log)}


def torch_gpt2(batch, steps, warmup):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(0)
    C, L, NH, V, T = GPT2["hidden"], GPT2["layers"], GPT2["heads"], GPT2["vocab"], GPT2["seq"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            B_, T_, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B_, T_, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B_, T_, C)
            x = x + self.c_proj(y)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C)
            self.lm_head = nn.Linear(C, V, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for b in self.h:
                x = b(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.float().view(-1, V), targets.view(-1))

    model = GPT()
    for m in model.modules():  # GPT-2's initialisation (nn.Embedding's default N(0, 1) would inflate the loss)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    model = model.cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    cmodel = torch.compile(model)
    x = torch.randint(0, V, (batch, T), device="cuda")
    y = torch.randint(0, V, (batch, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = cmodel(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        loss = step().detach()
    stop.record()
    stop.synchronize()
    ms = start.elapsed_time(stop) / steps
    return {"name": "torch_gpt2", "tokens_per_s": batch * T / (ms / 1e3), "step_ms": ms, "warmup_s": warm_s,
            "loss": float(loss), "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="/tmp/train_vs_torch")
    ap.add_argument("--out", required=True)
    ap.add_argument("--which", default="gpt2,torch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--llama-seq", type=int, default=2048)
    ap.add_argument("--llama-batch", type=int, default=4)
    a = ap.parse_args()
    which = a.which.split(",")
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    results = []

    def save():
        with open(os.path.join(a.out, "train_vs_torch.json"), "w") as f:
            json.dump(results, f, indent=1)

    if "gpt2" in which:
        data, init = os.path.join(a.work, "data_gpt2"), os.path.join(a.work, "gpt2_124m")
        write_tokens(data, GPT2["vocab"], 20_000_000)
        write_gpt2(init)
        r = run_roofline(a.bin, init, data, a.work, "roofline_gpt2", GPT2["seq"], a.batch, a.steps)
        results.append(r)
        save()
        # The same with cuBLASLt's candidates timed once per GEMM form (session 8: +2.0% on the H100).
        results.append(run_roofline(a.bin, init, data, a.work, "roofline_gpt2_tuned", GPT2["seq"], a.batch, a.steps,
                                    ["--gemm-algorithms", "tune"]))
        save()
    if "torch" in which:
        try:
            results.append(torch_gpt2(a.batch, 10, 5))
        except Exception as e:  # noqa: BLE001  (report, do not lose the other results)
            results.append({"name": "torch_gpt2", "error": repr(e)[-2000:]})
        save()
    if "llama" in which:
        data, init = os.path.join(a.work, "data_llama"), os.path.join(a.work, "llama_1b")
        write_tokens(data, 128256, 4_000_000)
        write_llama_1b(init)
        for ckpt in (False, True):
            name = "roofline_llama1b" + ("_ckpt" if ckpt else "")
            results.append(run_roofline(a.bin, init, data, a.work, name, a.llama_seq, a.llama_batch, max(6, a.steps // 2),
                                        ["--checkpoint-activations"] if ckpt else []))
            save()
    for r in results:
        if "tokens_per_s" in r:
            mfu = ""
            peak = next((x.get("peak_tflops") for x in results if x.get("peak_tflops")), None)
            if "gpt2" in r["name"] and peak:
                mfu = f", MFU {100 * r['tokens_per_s'] * GPT2_FLOPS_PER_TOKEN / (peak * 1e12):.1f}% of {peak:.0f} TFLOP/s"
            print(f"{r['name']}: {r['tokens_per_s']:.0f} tok/s{mfu}")
        else:
            print(f"{r['name']}: ERROR {r.get('error', '')[:500]}")
    save()


if __name__ == "__main__":
    main()
