#!/usr/bin/python3
"""Regenerates tests/fixtures/kquants: random blocks of the GGUF formats Daop reads as they are but never writes (the
K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the older Q4_1, Q5_0, Q5_1, IQ4_NL) and ggml's own dequantization of them.

Builds a small C program against an existing llama.cpp build's ggml (never builds llama.cpp; CI runs only the committed
files): it reads the blocks this script draws and writes ggml_get_type_traits(type)->to_float of them.

  /usr/bin/python3 tests/tools/kquant-references.py --ggml-include /tmp/llamacpp/src/ggml/include \
      --ggml-lib /tmp/llamacpp/build/ggml/src/libggml-base.a

Writes tests/fixtures/kquants/{q2_K,q3_K,q4_K,q5_K,q6_K,q4_1,q5_0,q5_1,iq4_nl}.blocks (blocks as ggml stores them: 48 super-blocks of
256, or 384 blocks of 32) and .f32 (their 12288 weights, little-endian fp32). Each type draws from its own seed, so adding
a type leaves the others' files as they were. The bytes are random except the fp16 scales, drawn finite (ggml's
dequantizers give NaN/Inf for non-finite scales, which Daop does not support) and including zeros, negatives and subnormals.
"""
import argparse
import random
import struct
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "kquants"
WEIGHTS = 12288
# name: (ggml type number, elements per block, bytes per block, offsets of fp16 scales)
TYPES = {"q2_K": (10, 256, 84, (80, 82)), "q3_K": (11, 256, 110, (108,)), "q4_K": (12, 256, 144, (0, 2)), "q5_K": (13, 256, 176, (0, 2)), "q6_K": (14, 256, 210, (208,)),
         "q4_1": (3, 32, 20, (0, 2)), "q5_0": (6, 32, 22, (0,)), "q5_1": (7, 32, 24, (0, 2)), "iq4_nl": (20, 32, 18, (0,))}

C = r"""
#include "ggml.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char ** argv) {
    int type = atoi(argv[1]), n = atoi(argv[2]);
    struct ggml_init_params ip = { 1 << 20, NULL, false };
    struct ggml_context * ctx = ggml_init(ip); // fills ggml's fp16 table, which the dequantizers may read
    const struct ggml_type_traits * t = ggml_get_type_traits((enum ggml_type) type);
    size_t bytes = (size_t) n * t->type_size;
    void * src = malloc(bytes);
    float * dst = malloc((size_t) n * t->blck_size * sizeof(float));
    FILE * f = fopen(argv[3], "rb");
    if (fread(src, 1, bytes, f) != bytes) return 1;
    fclose(f);
    t->to_float(src, dst, (int64_t) n * t->blck_size);
    f = fopen(argv[4], "wb");
    fwrite(dst, sizeof(float), (size_t) n * t->blck_size, f);
    fclose(f);
    ggml_free(ctx);
    return 0;
}
"""


def half(rng, i):
    """fp16 bits: the first blocks get edge cases (0, −0, subnormals, large), the rest typical weight scales of either sign."""
    edge = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF]
    if i < len(edge):
        return edge[i]
    sign = rng.getrandbits(1) << 15
    return sign | rng.randint(0x0400 * 3, 0x0400 * 17) | rng.getrandbits(10)  # exponents 3..17 (about 1e-4 .. 4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml-include", required=True)
    ap.add_argument("--ggml-lib", required=True, help="libggml-base.a (ggml-quants.c)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="daop-kquant-"))
    (work / "deq.c").write_text(C)
    exe = work / "deq"
    subprocess.run(["g++", "-O2", "-x", "c", str(work / "deq.c"), "-x", "none", f"-I{a.ggml_include}", a.ggml_lib, "-lm", "-lpthread",
                    "-o", str(exe)], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (number, elements, size, scales) in TYPES.items():
        rng = random.Random(f"daop-{name}")
        blob = bytearray()
        blocks = WEIGHTS // elements
        for i in range(blocks):
            b = bytearray(rng.getrandbits(8) for _ in range(size))
            for k, o in enumerate(scales):
                struct.pack_into("<H", b, o, half(rng, i if k == 0 else (i + 3) % blocks))
            blob += b
        (OUT / f"{name}.blocks").write_bytes(bytes(blob))
        subprocess.run([str(exe), str(number), str(blocks), str(OUT / f"{name}.blocks"), str(OUT / f"{name}.f32")], check=True)
        print(f"{name}: {blocks} blocks, {len(blob)} bytes")


if __name__ == "__main__":
    main()
