#!/usr/bin/env python3
"""Where the bf16 error of a model's logits comes from, against its float64 reference.

For each fixture model (tests/fixtures/models/NAME, reference logits in tests/fixtures/references), runs the
float64 transformers model with the activations rounded to bf16 at one point at a time (forward hooks), then
at every point together (roofline's CUDA scheme: f32 residual stream, bf16 activations into each GEMM, bf16
GEMM outputs, bf16 KV), and transformers' own bf16 model. Prints the relative L2 error of the logits per
variant, so a precision change aims at the point that dominates.
Usage (on the GPU box, which has torch + transformers): python3 bench/e2e/bf16_error_budget.py [NAME...]
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")
DEFAULT = ["llama3-bf16", "llama3-f16", "qwen3-f32", "llama2-bf16", "mistral-bf16", "qwen2-bf16", "gpt2-bf16"]


def bf16(t):
    return t.to(torch.bfloat16).to(t.dtype)


def rel_l2(a, b):
    return float((a - b).norm() / b.norm())


# Points where roofline's CUDA decoder holds an activation in bf16 (the residual stream stays f32).
def hook_points(model):
    pts = {}
    for name, mod in model.named_modules():
        leaf = name.split(".")[-1]
        if leaf in ("q_proj", "k_proj", "v_proj", "c_attn"):
            pts.setdefault("qkv_out", []).append((mod, "out"))
            pts.setdefault("norm_out(attn)", []).append((mod, "in"))
        elif leaf in ("o_proj",) or name.endswith("attn.c_proj"):
            pts.setdefault("attn_out", []).append((mod, "in"))
        elif leaf in ("gate_proj", "up_proj", "c_fc"):
            pts.setdefault("norm_out(mlp)", []).append((mod, "in"))
            pts.setdefault("gate_up_out", []).append((mod, "out"))
        elif leaf == "down_proj" or name.endswith("mlp.c_proj"):
            pts.setdefault("act_out", []).append((mod, "in"))
        elif leaf == "lm_head":
            pts.setdefault("final_norm_out", []).append((mod, "in"))
        elif leaf in ("q_norm", "k_norm"):
            pts.setdefault("head_norm_out", []).append((mod, "out"))
    return pts


def run(model, ids, handles_for):
    handles = []
    for mod, where in handles_for:
        if where == "out":
            handles.append(mod.register_forward_hook(lambda m, i, o: bf16(o)))
        else:
            handles.append(mod.register_forward_pre_hook(lambda m, i: tuple(bf16(x) for x in i)))
    with torch.no_grad():
        out = model(ids).logits[0]
    for h in handles:
        h.remove()
    return out


def main():
    names = sys.argv[1:] or DEFAULT
    results = {}
    for name in names:
        d = os.path.join(ROOT, "models", name)
        ref = load_file(os.path.join(ROOT, "references", name + ".safetensors"))["logits"]
        prompt = json.load(open(os.path.join(ROOT, "references", name + ".json")))["prompt_ids"]
        ids = torch.tensor([prompt])
        m64 = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float64).eval()
        row = {"f64": rel_l2(run(m64, ids, []), ref)}
        pts = hook_points(m64)
        for point, hs in pts.items():
            row[point] = rel_l2(run(m64, ids, hs), ref)
        row["all_points"] = rel_l2(run(m64, ids, [h for hs in pts.values() for h in hs]), ref)
        mbf = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.bfloat16).eval()
        with torch.no_grad():
            row["transformers_bf16"] = rel_l2(mbf(ids).logits[0].double(), ref)
        mf16 = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float16).eval()
        with torch.no_grad():
            row["transformers_f16"] = rel_l2(mf16(ids).logits[0].double(), ref)
        results[name] = row
        print(name, " ".join(f"{k}={v:.2e}" for k, v in row.items()), flush=True)
    out = os.environ.get("OUT")
    if out:
        json.dump(results, open(os.path.join(out, "bf16_error_budget.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
