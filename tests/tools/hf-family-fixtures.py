#!/usr/bin/python3
"""Reference fixtures for the families of issue 18, made with Hugging Face transformers (never with Daop).

Run where torch and transformers are installed (the GPU machine: transformers 5.17, torch 2.11); CPU is enough:

  OUT=/tmp/out python3 tests/tools/hf-family-fixtures.py [name ...]

Same protocol as ../shared/tools/hf_fixtures.py, which made tests/fixtures/hf-fixtures: a tiny random model per family
(bf16 safetensors in the hub layout), and in reference.safetensors the fp32 forward over the bf16-rounded weights:
`input_ids` [2,23], `logits` [2,23,V], `router_logits.{i}` [2,23,E] for the i-th MoE layer (the router's logits as its
Linear computes them, x·Wᵀ (+ bias), before any softmax/sigmoid), `greedy_prompt_ids` [2,9] and `greedy_new_ids` [2,16]
(greedy continuation with the KV cache). Attention is transformers' eager implementation. Odd sizes on purpose
(non-power-of-two widths, one KV head) where the family allows them; sliding windows and attention chunks shorter than
the 23-token sequences, so they matter.

Also writes, for reading the exact code the references come from, the modeling/configuration files of each family
(sources/) and an MXFP4 copy of the GPT-OSS fixture in the hub's layout (`*_blocks`/`*_scales`, quantization_config
mxfp4) with references from transformers' own dequantization, when transformers can load it.
"""
import json, os, shutil, sys, tarfile, traceback, inspect
import torch
import transformers
from safetensors.torch import save_file, load_file

OUT = os.environ.get("OUT", "/tmp/out")
WORK = "/tmp/family-fixtures"
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK, exist_ok=True)
print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)

SMALL = dict(vocab_size=512, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.08)
ODD = {**SMALL, "hidden_size": 80, "num_attention_heads": 5, "num_key_value_heads": 1, "vocab_size": 389}
MLA = {**SMALL, "num_key_value_heads": 4}  # MLA expands the latent to a key and value per head


def specs():
    t = transformers
    s = []
    # Dense models: one always-on FFN per layer.
    s.append(("llama-odd", "LlamaForCausalLM", lambda: t.LlamaConfig(
        **{**ODD, "tie_word_embeddings": True}, intermediate_size=136,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), 11))
    s.append(("qwen2-tiny", "Qwen2ForCausalLM", lambda: t.Qwen2Config(
        **SMALL, intermediate_size=96, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        use_sliding_window=False), 12))
    s.append(("mistral-tiny", "MistralForCausalLM", lambda: t.MistralConfig(
        **SMALL, intermediate_size=96, sliding_window=8, rope_parameters={"rope_type": "default", "rope_theta": 1e6}), 13))
    # Granite-MoE: embedding/attention/residual/logits multipliers; experts fused as input_linear/output_linear.
    s.append(("granitemoe-odd", "GraniteMoeForCausalLM", lambda: t.GraniteMoeConfig(
        **ODD, intermediate_size=72, num_local_experts=6, num_experts_per_tok=2,
        embedding_multiplier=12.0, logits_scaling=6.0, residual_multiplier=0.22, attention_multiplier=0.0625,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), 14))
    # Granite-MoE-Shared: Granite-MoE with an ungated shared expert (shared_mlp.input_linear/output_linear) per layer.
    s.append(("granitemoeshared-odd", "GraniteMoeSharedForCausalLM", lambda: t.GraniteMoeSharedConfig(
        **ODD, intermediate_size=72, shared_intermediate_size=56, num_local_experts=6, num_experts_per_tok=2,
        embedding_multiplier=12.0, logits_scaling=6.0, residual_multiplier=0.22, attention_multiplier=0.0625,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), 19))
    # GPT-OSS: sinks, alternating sliding/full attention, clamped SwiGLU with biases, router bias, softmax over the top-k.
    s.append(("gptoss-tiny", "GptOssForCausalLM", lambda: t.GptOssConfig(
        **{**SMALL, "num_key_value_heads": 1}, intermediate_size=64, head_dim=16, num_local_experts=8,
        num_experts_per_tok=2, sliding_window=8), 15))
    # DeepSeek-V2(-Lite): MLA without a q LoRA, first layer dense, group-limited greedy top-k, shared experts, YaRN.
    s.append(("deepseekv2-tiny", "DeepseekV2ForCausalLM", lambda: t.DeepseekV2Config(
        **MLA, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=2,
        num_experts_per_tok=3, first_k_dense_replace=1, kv_lora_rank=24, q_lora_rank=None, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=12, n_group=4, topk_group=2, topk_method="group_limited_greedy",
        routed_scaling_factor=1.5, norm_topk_prob=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "mscale": 0.707, "mscale_all_dim": 0.707, "original_max_position_embeddings": 64}), 16))
    # DeepSeek-V3: MLA with a q LoRA, sigmoid scores with a selection bias, group top-2 sums, normalised weights.
    s.append(("deepseekv3-tiny", "DeepseekV3ForCausalLM", lambda: t.DeepseekV3Config(
        **MLA, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=1,
        num_experts_per_tok=2, first_k_dense_replace=1, kv_lora_rank=24, q_lora_rank=40, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=12, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 64}), 17))
    # Llama-4 (text): MoE every other layer with a shared expert and a sigmoid top-1 router, NoPE layers, chunked attention.
    s.append(("llama4-tiny", "Llama4ForCausalLM", lambda: t.Llama4TextConfig(
        **{**SMALL, "num_hidden_layers": 4}, intermediate_size=48, intermediate_size_mlp=96, head_dim=16,
        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2, no_rope_layer_interval=4,
        attention_chunk_size=8, use_qk_norm=True, attn_temperature_tuning=True, floor_scale=4, attn_scale=0.1,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0}), 18))
    return s


def router_hooks(model, n_experts, store):
    """Records each router's logits, recomputed from its input as x·Wᵀ (+ bias): what routers return varies by family."""
    hooks = []
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        leaf = name.split(".")[-1]
        router = leaf in ("gate", "router") or name.endswith("router.layer")
        if not router or not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] != n_experts:
            continue
        b = getattr(mod, "bias", None)
        def hook(m, inp, out, name=name, w=w, b=b):
            x = inp[0].detach().float().reshape(-1, w.shape[1])
            logits = x @ w.detach().float().t()
            if isinstance(b, torch.Tensor) and b.shape == (w.shape[0],):
                logits = logits + b.detach().float()
            store.setdefault(name, []).append(logits.clone())
        hooks.append(mod.register_forward_hook(hook))
    return hooks


def layer_index(name):
    return int([p for p in name.split(".") if p.isdigit()][0])


def references(model, cfg, d, n_experts, meta_extra=None):
    g = torch.Generator().manual_seed(100 + meta_extra["seed"])
    V = cfg.vocab_size
    ids = torch.randint(3, V, (2, 23), generator=g)
    store = {}
    hooks = router_hooks(model, n_experts, store) if n_experts else []
    with torch.no_grad():
        out = model(input_ids=ids)
    for h in hooks: h.remove()
    tensors = {"input_ids": ids.to(torch.int64).contiguous(), "logits": out.logits.float().contiguous()}
    routers = sorted(store.items(), key=lambda kv: layer_index(kv[0]))
    for i, (k, v) in enumerate(routers):
        tensors[f"router_logits.{i}"] = v[0].reshape(2, 23, -1).contiguous()
    gens = []
    for b in range(2):
        p = ids[b:b + 1, :9]
        with torch.no_grad():
            gen = model.generate(input_ids=p, attention_mask=torch.ones_like(p), max_new_tokens=16, do_sample=False,
                                 use_cache=True, pad_token_id=0, eos_token_id=None)
        gens.append(gen[0, 9:])
    tensors["greedy_prompt_ids"] = ids[:, :9].contiguous()
    tensors["greedy_new_ids"] = torch.stack(gens).to(torch.int64).contiguous()
    save_file(tensors, os.path.join(d, "reference.safetensors"))
    meta = {**meta_extra, "transformers": transformers.__version__, "torch": torch.__version__,
            "router_layers": [layer_index(k) for k, _ in routers], "router_modules": [k for k, _ in routers],
            "reference": "fp32 eager forward over bf16-rounded weights; logits [2,23,V]; router_logits.{i} [2,23,E] for the "
                         "i-th MoE layer (x·Wᵀ + bias of the router's linear); greedy_new_ids: 16 tokens after the first 9 "
                         "of each row, KV cache on"}
    json.dump(meta, open(os.path.join(d, "reference.json"), "w"), indent=1)
    print(os.path.basename(d), "ok; logits", tuple(out.logits.shape), "max|logit|", float(out.logits.abs().max()),
          "routers", meta["router_layers"], "greedy", [x.tolist() for x in gens], flush=True)


def experts_of(cfg):
    for k in ("num_local_experts", "n_routed_experts", "num_experts"):
        v = getattr(cfg, k, None)
        if isinstance(v, int) and v > 0: return v
    return 0


def build(name, cls_name, make_cfg, seed):
    cls = getattr(transformers, cls_name)
    cfg = make_cfg()
    torch.manual_seed(seed)
    model = cls._from_config(cfg, attn_implementation="eager").eval().to(torch.bfloat16)
    d = os.path.join(WORK, name)
    model.save_pretrained(d, safe_serialization=True)
    model = model.to(torch.float32)
    keys = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            keys.update({k: list(v.shape) for k, v in load_file(os.path.join(d, f)).items()})
    print(name, "saved tensors:", json.dumps(keys), flush=True)
    references(model, cfg, d, experts_of(cfg), {"architecture": cls_name, "seed": seed})
    return model, cfg, d


FP4 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4(w):
    """w [..., N] (N a multiple of 32) → (blocks uint8 [..., N/32, 16], scales uint8 [..., N/32], dequantized w)."""
    shape = w.shape
    b = w.float().reshape(*shape[:-1], shape[-1] // 32, 32)
    amax = b.abs().amax(-1, keepdim=True).clamp_min(1e-30)
    e = torch.clamp(torch.ceil(torch.log2(amax / 6.0)), -127, 127)       # scale 2^e puts the block's max within ±6
    q = b / torch.pow(2.0, e)
    codes = (q.unsqueeze(-1) - FP4).abs().argmin(-1)                     # nearest E2M1 value (ties: the lower code)
    deq = FP4[codes] * torch.pow(2.0, e)
    packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).to(torch.uint8)  # element 2j in the low nibble
    return packed, (e.squeeze(-1) + 127).to(torch.uint8), deq.reshape(shape)


def gptoss_mxfp4(model, cfg, d):
    """An MXFP4 copy of the GPT-OSS fixture in the hub's layout; references from transformers' dequantization of it."""
    out = d + "-mxfp4"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(d, out)
    os.remove(os.path.join(out, "reference.safetensors"))
    st = load_file(os.path.join(d, "model.safetensors"))
    new, deq = {}, {}
    for k, v in st.items():
        if k.endswith("mlp.experts.gate_up_proj") or k.endswith("mlp.experts.down_proj"):
            wt = v.float().transpose(1, 2).contiguous()                  # [E, out, in]: blocks run along the input
            blocks, scales, dq = mxfp4(wt)
            new[k + "_blocks"] = blocks.contiguous()
            new[k + "_scales"] = scales.contiguous()
            deq[k] = dq.transpose(1, 2).contiguous()
        else:
            new[k] = v
    save_file(new, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    c = json.load(open(os.path.join(out, "config.json")))
    c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    json.dump(c, open(os.path.join(out, "config.json"), "w"), indent=2)
    cls = type(model)
    try:
        m2 = cls.from_pretrained(out, quantization_config=transformers.Mxfp4Config(dequantize=True),
                                 dtype=torch.float32, attn_implementation="eager").eval()
        # The protocol of every fixture: the model cast to bf16 and back, so the RoPE frequencies are bf16-rounded as in
        # gptoss-tiny and the dequantized experts (left bf16 by the fp32 load) compute in fp32; E2M1 x 2^e is exact in bf16.
        m2 = m2.to(torch.bfloat16).float()
        sd = m2.state_dict()
        for k, v in deq.items():
            print("mxfp4", k, "transformers' dequantization vs ours: max |diff|", float((sd[k].float() - v).abs().max()),
                  "max |w|", float(v.abs().max()), flush=True)
        references(m2, cfg, out, experts_of(cfg), {"architecture": cls.__name__, "seed": 15, "experts": "mxfp4"})
    except Exception:
        traceback.print_exc()
        # Fall back to references from our own dequantization in an fp32 copy of the model.
        m3 = model
        sd = m3.state_dict()
        with torch.no_grad():
            for k, v in deq.items(): sd[k].copy_(v)
        references(m3, cfg, out, experts_of(cfg), {"architecture": cls.__name__, "seed": 15,
                                                   "experts": "mxfp4, references from the script's dequantization"})


only = set(sys.argv[1:])
for spec in specs():
    if only and spec[0] not in only: continue
    try:
        model, cfg, d = build(*spec)
        if spec[0] == "gptoss-tiny": gptoss_mxfp4(model, cfg, d)
    except Exception:
        traceback.print_exc()

# The code the references come from, to read beside them.
src = os.path.join(WORK, "sources")
os.makedirs(src, exist_ok=True)
for m in ("llama", "qwen2", "mistral", "granitemoe", "granitemoeshared", "gpt_oss", "deepseek_v2", "deepseek_v3", "llama4"):
    for kind in ("modeling", "configuration"):
        try:
            mod = __import__(f"transformers.models.{m}.{kind}_{m}", fromlist=["x"])
            shutil.copy(inspect.getsourcefile(mod), src)
        except Exception as e:
            print("source", m, kind, e)
for extra in ("modeling_rope_utils", "integrations.mxfp4"):
    try:
        mod = __import__(f"transformers.{extra}", fromlist=["x"])
        shutil.copy(inspect.getsourcefile(mod), src)
    except Exception as e:
        print("source", extra, e)

os.makedirs(OUT, exist_ok=True)
with tarfile.open(os.path.join(OUT, "family-fixtures.tar.gz"), "w:gz") as t:
    t.add(WORK, arcname="family-fixtures")
print("wrote", os.path.getsize(os.path.join(OUT, "family-fixtures.tar.gz")), "bytes")
