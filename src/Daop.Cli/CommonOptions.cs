using System.CommandLine;

namespace Daop.Cli;

/// <summary>Options shared by several commands.</summary>
static class CommonOptions
{
    public static Option<string?> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer.json), or a GGUF file (or a folder holding one; any part of a split set). Default: the embedded tiny-mixtral-code." };
    public static Option<int?> Context() => new("--context", "--ctx-size") { Description = "Context length (positions in the KV cache). Default: min(max_position_embeddings, 4096)." };
    public static Option<string> Device() => new("--device", "-d")
    {
        Description = "Where dense compute runs: cpu, cuda (the first NVIDIA GPU, through the CUDA driver, with the kernels compiled into this build), or ilgpu-cpu (the GPU code path on ILGPU's CPU accelerator, for testing without a GPU).",
        DefaultValueFactory = _ => "cpu",
    };
    public static Option<double?> CacheRatio() => new("--expert-cache-ratio")
    {
        Description = "With --device cuda: the fraction (0 to 1) of routed experts kept on the GPU; the rest live in host memory.",
    };
    public static Option<long?> VramBudget() => new("--vram-budget")
    {
        Description = "With --device cuda: GPU memory for the whole model (dense part, KV cache and expert slots): bytes, or with K/M/G/T or KiB/MiB/GiB/TiB (e.g. 24GiB).",
    };
    public static Option<string> Policy() => new("--policy")
    {
        Description = $"Expert placement when offloading: {PolicyChoice.Names}.",
        DefaultValueFactory = _ => "static-cpu",
    };
    public static Option<string?> Sequences() => new Option<string?>("--sequences") { Description = "Token file (safetensors, input_ids [N, T]). Default: MODEL/routing-sequences.safetensors." };
    public static Option<string?> ExpertDType() => new("--expert-dtype")
    {
        Description = "Store the routed experts as this type, converted at load: q4_0, q8_0, mxfp4 (GGUF block formats, quantized from " +
            "f32/f16/bf16 weights), bf16, f16 or f32. Default: as stored in the checkpoint.",
    };
    public static Option<string?> DenseDType() => new("--dense-dtype")
    {
        Description = "Store attention, shared-expert and dense-MLP matrices as this type (as --expert-dtype). Embedding, LM head and " +
            "routers stay as stored. Default: as stored.",
    };
    public static Option<int?> Threads() => new("--threads", "-t") { Description = "CPU worker threads (1 to 4 × the logical cores). Default: all cores." };
}
