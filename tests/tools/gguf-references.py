#!/usr/bin/python3
"""Regenerates tests/fixtures/gguf: the GGUF fixtures and llama.cpp's logits, greedy ids and tokenizations for them.

Uses an existing llama.cpp build (never builds one): its llama-quantize and llama-tokenize, its gguf-py package, and two
builds of the anchor program of /work/shared/peers/llamacpp/anchor.cpp linked against it: as it is (llama.cpp's default
f16 KV cache), and with `cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;` added after `cp.no_perf = true;` (an f32
KV cache: the references Daop is held to, since Daop keeps keys and values in f32; llama.cpp's f16 cache alone moves
logits by ~1e-3). Both compile as run_all.sh compiles the anchor.

  /usr/bin/python3 tests/tools/gguf-references.py --llama-bin /tmp/llamacpp/build/bin --anchor /tmp/llamacpp/anchor \
      --anchor-f32kv /tmp/anchor32 --gguf-py /tmp/llamacpp/src/gguf-py \
      [--hf-mixtral-to-gguf /work/shared/peers/llamacpp/hf_mixtral_to_gguf.py] [--llama-commit c392e50]
      [--only-kquants | --only-new-families | --ik-anchor ANCHOR_BUILT_AGAINST_IK_LLAMA_CPP --ik-commit 8337e4c]

Steps (from the repository root, after `dotnet build Daop.sln -c Release`):
 1. The C# converter (tests/Daop.Tests/Load/Gguf/HfToGguf.cs) writes every fixture as GGUF (DAOP_GGUF_OUT, test
    GgufFixtureWriter): f32 and bf16 of each tests/fixtures/hf-fixtures model, olmoe with its kv heads repeated (llama.cpp's
    February 2025 olmoe cannot load grouped-query attention), qwen2moe as the converter's --outtype q8_0, the embedded
    tiny-mixtral-code (bf16, q8_0), and vocabulary-only files from tests/fixtures/tok-fixtures.
 2. The conventions are checked against llama.cpp's own tools: hf_mixtral_to_gguf.py (the torch-free port of
    convert_hf_to_gguf.py's LlamaModel, with gguf-py) converts tiny-mixtral-code, and every tensor must equal ours byte for
    byte; llama-quantize --pure q8_0 of our bf16 file must equal our q8_0 tensors byte for byte.
 3. llama-quantize --pure makes q8_0 (and one q4_0) files of the fixtures whose rows are whole blocks.
 3b. K-quants: tiny-mixtral-code cut to its first layer (gguf-py), and llama-quantize Q4_K_M of it (its realistic mix:
    q4_K, q6_K for attn_v, ffn_down and output), and Q5_0 of it with a q4_1 output and q5_1 token embeddings (GGUF's older
    32-blocks), and its Q2_K mix (q2_K, q3_K, q5_K, ...) with an iq4_nl output matrix (the mix's fallback for rows that are
    not whole super-blocks); llama.cpp's logits and greedy ids on each (--only-kquants redoes just this step, updating the committed
    reference files in place).
 4. The f32-KV anchor runs llama.cpp: logits of each fixture's reference input_ids, and greedy continuations (16 tokens
    after each fixture's greedy_prompt_ids, by full re-evaluation; 32 tokens after each prompt of tiny-mixtral-code,
    KV-cached); both are compared with transformers' (printed and kept in the manifest), and so are the default anchor's.
 5. llama-tokenize encodes sample texts with each vocabulary (parse_special on, no escapes).
Writes tests/fixtures/gguf/*.gguf (the files llama.cpp ran on that are committed), llamacpp-reference.safetensors
(logits and greedy ids per file) and llamacpp-reference.json (commands, hashes, llama.cpp vs transformers, tokenizations).
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
HF = ROOT / "tests" / "fixtures" / "hf-fixtures"
FIXTURES = ["mixtral-tiny", "mixtral-odd", "qwen2moe-tiny", "qwen3moe-tiny", "olmoe-tiny", "phimoe-tiny"]
# Files llama.cpp runs on. Committed: small ones; the rest the tests rewrite and check by hash.
COMMIT = {"mixtral-tiny-bf16.gguf", "mixtral-tiny-q8_0.gguf", "mixtral-tiny-q4_0.gguf", "mixtral-odd-bf16.gguf",
          "qwen2moe-tiny-bf16.gguf", "qwen2moe-tiny-q8_0c.gguf", "olmoe-tiny-mha-bf16.gguf", "olmoe-tiny-mha-q8_0.gguf",
          "phimoe-tiny-bf16.gguf", "phimoe-tiny-q8_0.gguf", "qwen3moe-tiny-bf16.gguf",
          "vocab-gpt2.gguf", "vocab-qwen2.gguf", "vocab-spm.gguf", "tiny-mixtral-code-1l-q4_k_m.gguf",
          "tiny-mixtral-code-1l-q5_0-mix.gguf", "tiny-mixtral-code-1l-q2_k.gguf"}
# K-quants: llama-quantize (not --pure: its Q4_K_M mix of q4_K and q6_K) of tiny-mixtral-code cut to its first layer (every
# matrix of the model is 256 wide, so all take K-quants; the whole model at Q4_K_M would be 7.6 MB, one layer is 2.4 MB).
# The same cut as Q5_0 with the output matrix at q4_1 and the token embeddings at q5_1: GGUF's older 32-blocks, which
# llama.cpp's K-quant mixes fall back to for rows that are not whole super-blocks, all three in one file.
KQUANT = [("tiny-mixtral-code-1l-bf16.gguf", "tiny-mixtral-code-1l-q4_k_m.gguf", "Q4_K_M", []),
          ("tiny-mixtral-code-1l-bf16.gguf", "tiny-mixtral-code-1l-q5_0-mix.gguf", "Q5_0",
           ["--output-tensor-type", "q4_1", "--token-embedding-type", "q5_1"]),
          ("tiny-mixtral-code-1l-bf16.gguf", "tiny-mixtral-code-1l-q2_k.gguf", "Q2_K", ["--output-tensor-type", "iq4_nl"])]
# (source, output, type) for llama-quantize --pure: the fixtures whose every quantized row is whole q8_0 blocks.
QUANTIZE = [("mixtral-tiny-bf16.gguf", "mixtral-tiny-q8_0.gguf", "Q8_0"), ("mixtral-tiny-bf16.gguf", "mixtral-tiny-q4_0.gguf", "Q4_0"),
            ("olmoe-tiny-mha-bf16.gguf", "olmoe-tiny-mha-q8_0.gguf", "Q8_0"), ("phimoe-tiny-bf16.gguf", "phimoe-tiny-q8_0.gguf", "Q8_0"),
            ("tiny-mixtral-code-bf16.gguf", "tiny-mixtral-code-q8_0.gguf", "Q8_0")]
# Positions of tiny-mixtral-code's 64-token rows whose logits are kept (its vocabulary is 4096: all would be 2 MB a file).
TMC_POSITIONS = list(range(7, 64, 8))
SAMPLES = ["def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
           "Hello, world!  Two  spaces,\ttab,\n\nnewlines.", "The quick brown fox jumps over the lazy dog. 12345 67",
           "<|im_start|>user\nHi there<|im_end|>\n", "naïve café — déjà vu 😀 日本語", "  leading and trailing  ", "it's they'll I'M"]


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    dts = {"I64": np.int64, "F32": np.float32}
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dts[v["dtype"]]).reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__"}


def write_st(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def tensor_hash(gguf_mod, path):
    """SHA-256 over (name, type, dims, bytes) of every tensor, by name: the file's weights, whatever its metadata."""
    r = gguf_mod.GGUFReader(str(path))
    h = hashlib.sha256()
    for t in sorted(r.tensors, key=lambda t: t.name):
        h.update(t.name.encode())
        h.update(struct.pack("<I", int(t.tensor_type)))
        h.update(struct.pack(f"<{len(t.shape)}Q", *[int(x) for x in t.shape]))
        h.update(np.ascontiguousarray(t.data).tobytes())
    return h.hexdigest()


def tensors_by_name(gguf_mod, path):
    r = gguf_mod.GGUFReader(str(path))
    return {t.name: (int(t.tensor_type), [int(x) for x in t.shape], np.ascontiguousarray(t.data).tobytes()) for t in r.tensors}


def anchor_logits(anchor, gguf, ids):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        subprocess.run([anchor, "logits", str(gguf), f.name, *map(str, ids)], check=True)
        return np.fromfile(f.name, dtype=np.float32).reshape(len(ids), -1)


def greedy_by_logits(anchor, gguf, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(anchor_logits(anchor, gguf, ids)[-1].argmax()))
    return ids[len(prompt):]


def first_layers(gguf_mod, src, dst, n):
    """A copy of GGUF src with only layers 0..n-1 (block_count n, blk.N tensors for N < n): the same metadata otherwise."""
    r = gguf_mod.GGUFReader(str(src))
    arch = str(bytes(r.fields["general.architecture"].parts[-1]), "utf-8")
    w = gguf_mod.GGUFWriter(str(dst), arch)
    for field in r.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        main = field.types[0]
        if field.name == f"{arch}.block_count":
            value = n
        elif main == gguf_mod.GGUFValueType.ARRAY:
            value = ([str(bytes(field.parts[i]), "utf-8") for i in field.data] if field.types[-1] == gguf_mod.GGUFValueType.STRING
                     else [v for i in field.data for v in field.parts[i].tolist()])
        elif main == gguf_mod.GGUFValueType.STRING:
            value = str(bytes(field.parts[-1]), "utf-8")
        else:
            value = field.parts[-1][0]
        w.add_key_value(field.name, value, main)  # an array's element type is taken from its values, as gguf-py writes them
    keep = [t for t in r.tensors if not t.name.startswith("blk.") or int(t.name.split(".")[1]) < n]
    for t in keep:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in keep:
        w.write_tensor_data(t.data)
    w.close()


def run_llama_kquant(anchor, work, path):
    """llama.cpp's logits (tiny-mixtral-code's reference input_ids, its kept positions) and 32 greedy tokens per prompt."""
    hf = read_st(ROOT / "models" / "tiny-mixtral-code" / "reference.safetensors")
    ids = hf["input_ids"]
    logits = np.stack([anchor_logits(anchor, path, ids[r].tolist())[TMC_POSITIONS] for r in range(ids.shape[0])])
    prompts = json.loads((ROOT / "models" / "tiny-mixtral-code" / "reference.json").read_text())["prompts"]
    pfiles = []
    for i, p in enumerate(prompts):
        f = work / f"prompt{i}.txt"
        f.write_bytes(p.encode())
        pfiles.append(str(f))
    out = subprocess.run([anchor, "gen", str(path), "32", *pfiles], check=True, capture_output=True, text=True).stdout.split("\n")
    greedy = np.array([[int(x) for x in out[2 * i + 1].split(":")[1].split()] for i in range(len(prompts))], dtype=np.int64)
    prompt_ids = [[int(x) for x in out[2 * i].split(":")[1].split()] for i in range(len(prompts))]
    return logits, greedy, prompt_ids


def kquants(a, gguf_mod, work, manifest, refs):
    """3b. K-quants: the cut model, llama-quantize's Q4_K_M of it, and llama.cpp's logits and greedy ids on it."""
    for src, dst, qtype, extra in KQUANT:
        first_layers(gguf_mod, work / "tiny-mixtral-code-bf16.gguf", work / src, 1)
        cmd = [f"{a.llama_bin}/llama-quantize", *extra, str(work / src), str(work / dst), qtype]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        manifest["commands"].append(f"first_layers(tiny-mixtral-code-bf16.gguf, {src}, 1)")
        manifest["commands"].append(" ".join(cmd).replace(str(work), "$WORK"))
        r = gguf_mod.GGUFReader(str(work / dst))
        types = {}
        for t in r.tensors:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        logits, greedy, prompt_ids = run_llama_kquant(a.anchor_f32kv, work, work / dst)
        refs[f"{dst}/logits"] = logits.astype(np.float32)
        refs[f"{dst}/greedy"] = greedy
        for i, p in enumerate(prompt_ids):
            refs[f"{dst}/prompt_ids.{i}"] = np.array(p, dtype=np.int64)
        manifest["files"][dst] = {"tensor_sha256": tensor_hash(gguf_mod, work / dst), "tensor_types": types,
                                  "llama_cpp": "f32_kv anchor: logits at tmc_positions of the reference input_ids, 32 greedy tokens per prompt"}
        print(f"{dst}: tensor types {types}")


def run_llama(anchor, work, path, name, fixture):
    """llama.cpp's logits of the reference input_ids and its greedy continuations, with transformers' for comparison."""
    if name.startswith("tiny-mixtral-code"):
        hf = read_st(ROOT / "models" / "tiny-mixtral-code" / "reference.safetensors")
        ids = hf["input_ids"]
        logits = np.stack([anchor_logits(anchor, path, ids[r].tolist())[TMC_POSITIONS] for r in range(ids.shape[0])])
        prompts = json.loads((ROOT / "models" / "tiny-mixtral-code" / "reference.json").read_text())["prompts"]
        pfiles = []
        for i, p in enumerate(prompts):
            f = work / f"prompt{i}.txt"
            f.write_bytes(p.encode())
            pfiles.append(str(f))
        out = subprocess.run([anchor, "gen", str(path), "32", *pfiles], check=True, capture_output=True, text=True).stdout.split("\n")
        greedy = np.array([[int(x) for x in out[2 * i + 1].split(":")[1].split()] for i in range(len(prompts))], dtype=np.int64)
        prompt_ids = [[int(x) for x in out[2 * i].split(":")[1].split()] for i in range(len(prompts))]
        return logits, greedy, hf["logits"][:, TMC_POSITIONS], hf["greedy_new_ids"], prompt_ids
    hf = read_st(HF / fixture / "reference.safetensors")
    ids = hf["input_ids"]
    logits = np.stack([anchor_logits(anchor, path, ids[r].tolist()) for r in range(ids.shape[0])])
    prompts = hf["greedy_prompt_ids"]
    greedy = np.array([greedy_by_logits(anchor, path, prompts[r].tolist(), hf["greedy_new_ids"].shape[1])
                       for r in range(prompts.shape[0])], dtype=np.int64)
    return logits, greedy, hf["logits"], hf["greedy_new_ids"], []


# Families added after the February 2025 llama.cpp: what it makes of each file HfToGguf writes (None: it runs the file).
NEW_FAMILIES = {
    "deepseekv2-tiny": "its deepseek2 reads a model without q_lora_rank only as V2-Lite, known by its 27 layers (this one has 3)",
    "deepseekv3-tiny": None,
    "gptoss-tiny": "no gpt-oss architecture in this llama.cpp (August 2025)",
    "llama4-tiny": "no llama4 architecture in this llama.cpp (April 2025)",
}


def new_families(a, gguf_mod, work, manifest, refs):
    """llama.cpp (f32 KV cache) on the f32 file of each of NEW_FAMILIES; its deepseek2 routes without expert groups (it reads no
    expert_group_count), so Daop is held to it on the same file with those keys removed (GgufNewFamilyTests)."""
    for fixture, why in NEW_FAMILIES.items():
        for t in ("f32",):
            name = f"{fixture}-{t}.gguf"
            path = work / name
            for k in [k for k in refs if k.startswith(name + "/")]:
                del refs[k]
            entry = {"tensor_sha256": tensor_hash(gguf_mod, path)}
            if why:
                entry["llama_cpp"] = f"cannot load: {why}; Daop is checked against transformers on this file"
                manifest["files"][name] = entry
                print(f"{name}: llama.cpp cannot load it ({why})")
                continue
            logits, greedy, want, hf_greedy, _ = run_llama(a.anchor_f32kv, work, path, name, fixture)
            d = np.abs(logits - want)
            entry["vs_transformers_f32_kv"] = {"logits_max_abs_diff": float(d.max()), "ref_logit_absmax": float(np.abs(want).max()),
                                               "argmax_agree": int((logits.argmax(-1) == want.argmax(-1)).sum()),
                                               "positions": int(np.prod(logits.shape[:2])),
                                               "greedy_equal": f"{int((greedy == hf_greedy).sum())}/{greedy.size}",
                                               "note": "llama.cpp routes without the expert groups transformers limits the choice to"}
            print(f"{name}: vs transformers max|d| {d.max():.2e}, greedy {int((greedy == hf_greedy).sum())}/{greedy.size}")
            refs[f"{name}/logits"] = logits.astype(np.float32)
            refs[f"{name}/greedy"] = greedy
            manifest["files"][name] = entry


def ik_references(anchor, commit, gguf_mod, work):
    """ik_llama.cpp's logits of the reference input_ids on GgufFixtureFiles.IkFiles (written as ik-*.gguf): its anchor is
    anchor.cpp built against it (its llama.h: llama_tokenize and llama_batch_get_one of the older API, llama_free_model),
    with its default f16 KV cache and flash attention off (a CPU build without its IQK flash-attention kernels, whose
    generic fallback takes no f32 K). Writes ik-llamacpp-reference.{safetensors,json}."""
    refs, manifest = {}, {"ik_llama_cpp_commit": commit, "kv_cache": "f16", "flash_attn": False, "files": {}}
    for path in sorted(work.glob("ik-*.gguf")):
        name = path.name[len("ik-"):]
        fixture = name.split("-tiny")[0] + "-tiny"
        hf = read_st(HF / fixture / "reference.safetensors")
        ids = hf["input_ids"]
        logits = np.stack([anchor_logits(anchor, path, ids[r].tolist()) for r in range(ids.shape[0])])
        d = np.abs(logits - hf["logits"])
        refs[f"{name}/logits"] = logits.astype(np.float32)
        manifest["files"][name] = {"tensor_sha256": tensor_hash(gguf_mod, path),
                                   "vs_transformers": {"logits_max_abs_diff": float(d.max()), "ref_logit_absmax": float(np.abs(hf["logits"]).max()),
                                                       "argmax_agree": int((logits.argmax(-1) == hf["logits"].argmax(-1)).sum()),
                                                       "positions": int(np.prod(logits.shape[:2]))}}
        print(f"{name}: ik_llama.cpp vs transformers max|d| {d.max():.2e}")
    write_st(OUT / "ik-llamacpp-reference.safetensors", refs)
    (OUT / "ik-llamacpp-reference.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--anchor", required=True, help="anchor.cpp as it is (f16 KV cache)")
    ap.add_argument("--anchor-f32kv", required=True, help="anchor.cpp with an f32 KV cache")
    ap.add_argument("--gguf-py", required=True)
    ap.add_argument("--hf-mixtral-to-gguf", default="/work/shared/peers/llamacpp/hf_mixtral_to_gguf.py")
    ap.add_argument("--llama-commit", default=os.environ.get("LLAMA_COMMIT", "unknown"))
    ap.add_argument("--only-kquants", action="store_true",
                    help="redo only step 3b (the K-quant file and its references), updating the committed reference files in place")
    ap.add_argument("--ik-anchor", help="only the ik_llama.cpp references: anchor.cpp built against ik_llama.cpp (see ik_references)")
    ap.add_argument("--ik-commit", default="unknown")
    ap.add_argument("--only-new-families", action="store_true",
                    help="redo only step 4b (NEW_FAMILIES: deepseek2, gpt-oss, llama4), updating the committed reference files in place")
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    for mod in ("sentencepiece", "yaml"):  # gguf/__init__ imports them; unused here
        try:
            __import__(mod)
        except ImportError:
            import types
            stub = types.ModuleType(mod)
            stub.SentencePieceProcessor = object
            sys.modules[mod] = stub
    import gguf

    work = Path(tempfile.mkdtemp(prefix="daop-gguf-"))
    env = dict(os.environ, DAOP_GGUF_OUT=str(work))
    subprocess.run(["dotnet", "test", str(ROOT / "tests" / "Daop.Tests"), "-c", "Release", "--no-build",
                    "--filter", "FullyQualifiedName~GgufFixtureWriter"], check=True, env=env, stdout=subprocess.DEVNULL)
    manifest = {"llama_cpp_commit": a.llama_commit, "commands": [], "files": {}, "checks": {}, "tokenize": {}}
    log = manifest["commands"]
    if a.only_kquants:
        manifest = json.loads((OUT / "llamacpp-reference.json").read_text(encoding="utf-8"))
        refs = read_st(OUT / "llamacpp-reference.safetensors")
        for src, dst, _, _ in KQUANT:
            refs = {k: v for k, v in refs.items() if not k.startswith(dst + "/")}
            manifest["commands"] = [c for c in manifest["commands"] if dst not in c and src not in c]
        kquants(a, gguf, work, manifest, refs)
        for _, dst, _, _ in KQUANT:
            shutil.copyfile(work / dst, OUT / dst)
        write_st(OUT / "llamacpp-reference.safetensors", refs)
        (OUT / "llamacpp-reference.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"updated {OUT} with the K-quant references; work files in {work}")
        return

    if a.ik_anchor:
        ik_references(a.ik_anchor, a.ik_commit, gguf, work)
        return
    if a.only_new_families:
        manifest = json.loads((OUT / "llamacpp-reference.json").read_text(encoding="utf-8"))
        refs = read_st(OUT / "llamacpp-reference.safetensors")
        new_families(a, gguf, work, manifest, refs)
        write_st(OUT / "llamacpp-reference.safetensors", refs)
        (OUT / "llamacpp-reference.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"updated {OUT} with the new families' references; work files in {work}")
        return

    # 2. our conventions against llama.cpp's converter
    theirs = work / "ref-hf_mixtral_to_gguf-bf16.gguf"
    cmd = ["/usr/bin/python3", a.hf_mixtral_to_gguf, str(ROOT / "models" / "tiny-mixtral-code"), str(theirs), "--outtype", "bf16"]
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONPATH=a.gguf_py), stdout=subprocess.DEVNULL)
    log.append(" ".join(cmd))
    ours, ref = tensors_by_name(gguf, work / "tiny-mixtral-code-bf16.gguf"), tensors_by_name(gguf, theirs)
    same = sorted(ours) == sorted(ref) and all(ours[k] == ref[k] for k in ours)
    manifest["checks"]["tiny-mixtral-code bf16 tensors equal hf_mixtral_to_gguf.py's"] = same
    print(f"tensors of our tiny-mixtral-code-bf16.gguf equal hf_mixtral_to_gguf.py's: {same}")
    assert same, "HfToGguf departs from llama.cpp's converter"

    # 3. llama-quantize --pure
    for src, dst, qtype in QUANTIZE:
        cmd = [f"{a.llama_bin}/llama-quantize", "--pure", str(work / src), str(work / dst), qtype]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.append(" ".join(cmd).replace(str(work), "$WORK"))
    # a split set, as gguf-split writes one (split.no, split.count, split.tensors.count; metadata in the first part)
    cmd = [f"{a.llama_bin}/llama-gguf-split", "--split", "--split-max-tensors", "12", str(work / "mixtral-tiny-bf16.gguf"),
           str(work / "mixtral-tiny-split")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log.append(" ".join(cmd).replace(str(work), "$WORK"))
    q_ours, q_theirs = tensor_hash(gguf, work / "tiny-mixtral-code-q8_0c.gguf"), tensor_hash(gguf, work / "tiny-mixtral-code-q8_0.gguf")
    manifest["checks"]["tiny-mixtral-code q8_0 tensors of HfToGguf (BlockQuant) equal llama-quantize --pure's"] = q_ours == q_theirs
    print(f"our q8_0 tensors equal llama-quantize --pure's: {q_ours == q_theirs}")

    # 4. logits and greedy ids
    refs = {}
    kquants(a, gguf, work, manifest, refs)
    new_families(a, gguf, work, manifest, refs)
    files = sorted(p.name for p in work.glob("*.gguf")
                   if not p.name.startswith(("vocab-", "ref-", "ik-", "mixtral-tiny-split-", "tiny-mixtral-code-1l-", *NEW_FAMILIES))
                   and p.name != "tiny-mixtral-code-q8_0c.gguf")
    for name in files:
        path = work / name
        entry = {"tensor_sha256": tensor_hash(gguf, path)}
        why = ("no qwen3moe architecture in this llama.cpp" if name.startswith("qwen3moe") else
               "its olmoe needs as many kv heads as heads (attn_k_norm of n_embd)" if name.startswith("olmoe-tiny-") and "-mha-" not in name
               else None)
        if why:
            entry["llama_cpp"] = f"cannot load: {why}; Daop is checked against transformers on this file"
            manifest["files"][name] = entry
            print(f"{name}: llama.cpp cannot load it ({why})")
            continue
        fixture = name.rsplit("-", 1)[0].replace("-mha", "")
        for which, anchor in (("f32_kv", a.anchor_f32kv), ("default_f16_kv", a.anchor)):
            logits, greedy, want, hf_greedy, prompt_ids = run_llama(anchor, work, path, name, fixture)
            d = np.abs(logits - want)
            agree = int((greedy == hf_greedy).sum())
            entry[f"vs_transformers_{which}"] = {"logits_max_abs_diff": float(d.max()), "ref_logit_absmax": float(np.abs(want).max()),
                                                 "argmax_agree": int((logits.argmax(-1) == want.argmax(-1)).sum()),
                                                 "positions": int(np.prod(logits.shape[:2])), "greedy_equal": f"{agree}/{greedy.size}"}
            print(f"{name} ({which}): vs transformers max|d| {d.max():.2e} (|ref| {np.abs(want).max():.2f}), greedy {agree}/{greedy.size}")
            if which == "f32_kv":
                refs[f"{name}/logits"] = logits.astype(np.float32)
                refs[f"{name}/greedy"] = greedy
                for i, p in enumerate(prompt_ids):  # llama.cpp's tokenization of each prompt (no BOS), which Daop's must equal
                    refs[f"{name}/prompt_ids.{i}"] = np.array(p, dtype=np.int64)
        manifest["files"][name] = entry

    # 5. tokenizations
    vocabs = {"vocab-gpt2.gguf": work / "vocab-gpt2.gguf", "vocab-qwen2.gguf": work / "vocab-qwen2.gguf",
              "vocab-spm.gguf": work / "vocab-spm.gguf", "tiny-mixtral-code-bf16.gguf": work / "tiny-mixtral-code-bf16.gguf"}
    for vname, vpath in vocabs.items():
        rows = []
        for text in SAMPLES:
            f = work / "sample.txt"
            f.write_bytes(text.encode())
            out = subprocess.run([f"{a.llama_bin}/llama-tokenize", "-m", str(vpath), "-f", str(f), "--ids", "--no-escape", "--log-disable"],
                                 check=True, capture_output=True, text=True).stdout.strip().split("\n")[-1]
            rows.append({"text": text, "ids": json.loads(out)})
        manifest["tokenize"][vname] = rows
    log.append(f"{a.llama_bin}/llama-tokenize -m FILE -f SAMPLE --ids --no-escape --log-disable")

    OUT.mkdir(parents=True, exist_ok=True)
    for name in sorted(COMMIT) + sorted(p.name for p in work.glob("mixtral-tiny-split-*.gguf")):
        shutil.copyfile(work / name, OUT / name)
    write_st(OUT / "llamacpp-reference.safetensors", refs)
    manifest["tmc_positions"] = TMC_POSITIONS
    (OUT / "llamacpp-reference.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1e6:.1f} MB); work files in {work}")


if __name__ == "__main__":
    main()
