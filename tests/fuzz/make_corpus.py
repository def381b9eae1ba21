#!/usr/bin/env python3
"""Writes the fuzz seed corpus (tiny valid and invalid safetensors files) into tests/fuzz/corpus/."""
import json
import os
import struct


def image(header, data=b"", pad=True, length=None):
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


SEEDS = {
    "valid_f32_bf16_meta": image(
        {"__metadata__": {"format": "pt"}, "w": entry("F32", [2, 3], 0, 24), "b": entry("BF16", [4], 24, 32)},
        bytes(range(32))),
    "valid_all_dtypes": image(
        {f"t{i}": entry(d, [2], 16 * i, 16 * i + 2 * s)
         for i, (d, s) in enumerate([("F16", 2), ("F64", 8), ("I32", 4), ("I64", 8), ("U8", 1), ("I8", 1),
                                     ("BOOL", 1), ("F8_E4M3", 1), ("U16", 2)])},
        bytes(16 * 9)),
    "valid_empty_and_scalar": image({"e": entry("F32", [0, 4], 0, 0), "s": entry("F32", [], 0, 4)}, b"\0\0\x80?"),
    "valid_no_tensors": image({}),
    "bad_offsets_past_end": image({"w": entry("F32", [4], 0, 999999)}, bytes(16)),
    "bad_overlap": image({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, bytes(12)),
    "bad_size_mismatch": image({"a": entry("F16", [3], 0, 8)}, bytes(8)),
    "bad_duplicate": image('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                           '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)),
    "bad_shape_overflow": image({"a": entry("U8", [4294967296, 4294967296], 0, 0)}),
    "bad_header_length": image({"a": entry("U8", [1], 0, 1)}, b"x", length=1 << 40),
    "bad_json": image('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', bytes(4)),
    "bad_metadata": image({"__metadata__": {"k": 1}}),
    "short": b"\x10\0\0",
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
