#!/usr/bin/python3
"""llama.cpp (an anchor build, f32 KV cache: see gguf-references.py) on GGUF files the test converter wrote, against
transformers' reference logits of the same fixtures: max |llama.cpp − transformers| per row and arg-max agreement.

  DAOP_GGUF_OUT=/tmp/newgguf dotnet test -c Release --filter FullyQualifiedName~GgufFixtureWriter   (in tests/Daop.Tests)
  /usr/bin/python3 tests/tools/gguf-anchor-check.py [--anchor /tmp/anchor32] [--dir /tmp/newgguf] llama-odd qwen2-tiny ...
"""
import subprocess, tempfile, sys, json, struct
import numpy as np
def load_st(path):
    b=open(path,'rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n]); out={}
    for k,v in h.items():
        if k=='__metadata__': continue
        s,e=v['data_offsets']; dt={'F32':np.float32,'I64':np.int64}[v['dtype']]
        out[k]=np.frombuffer(b[8+n+s:8+n+e],dtype=dt).reshape(v['shape'])
    return out
args = sys.argv[1:]
anchor, gdir = "/tmp/anchor32", "/tmp/newgguf"
while args and args[0].startswith("--"):
    if args[0] == "--anchor": anchor = args[1]
    elif args[0] == "--dir": gdir = args[1]
    args = args[2:]
for fx in args:
    ref=load_st(f"tests/fixtures/hf-fixtures/{fx}/reference.safetensors")
    for kind in ["f32","bf16"]:
        g=f"{gdir}/{fx}-{kind}.gguf"
        errs=[]; agree=0; tot=0
        for r in range(2):
            ids=ref["input_ids"][r].tolist()
            with tempfile.NamedTemporaryFile(suffix=".f32") as f:
                p=subprocess.run([anchor,"logits",g,f.name,*map(str,ids)],capture_output=True,text=True)
                if p.returncode: print(fx,kind,"FAILED",p.stderr[-600:]); break
                l=np.fromfile(f.name,dtype=np.float32).reshape(len(ids),-1)
            want=ref["logits"][r]
            errs.append(float(np.abs(l-want).max())); agree+=int((l.argmax(-1)==want.argmax(-1)).sum()); tot+=len(ids)
        print(fx,kind,"max|llama.cpp - transformers|",errs,"argmax agree",agree,"/",tot, "max|ref|", float(np.abs(ref["logits"]).max()))
