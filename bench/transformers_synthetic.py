"""transformers `generate` on a random-weight model of a config's shape (e.g. Mixtral-8x7B cut to 8 layers),
timed on the GPU, then saved as a sharded safetensors checkpoint so Daop can run the very same weights.

usage: python3 bench/transformers_synthetic.py CONFIG.json LAYERS OUT_DIR [PROMPT_TOKENS NEW_TOKENS]
"""
import json, sys, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM

cfg_path, layers, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
prompt, new = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (128, 128)
cfg = AutoConfig.from_pretrained(cfg_path)
cfg.num_hidden_layers = layers
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg)
model.eval()
ids = torch.randint(0, cfg.vocab_size, (1, prompt), device="cuda")
with torch.no_grad():
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model(ids)
    torch.cuda.synchronize()
    prefill = prompt / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
decode = (new - 1) / max(total - prompt / prefill, 1e-9)
print(json.dumps({"who": "transformers", "layers": layers, "prefill_tok_s": prefill, "decode_tok_s": decode,
                  "generate_s": total}), flush=True)
model.save_pretrained(out, safe_serialization=True)
print("saved", out, flush=True)
