using System.CommandLine;

namespace Daop.Cli;

/// <summary>Options shared by several commands.</summary>
static class CommonOptions
{
    public static Option<string?> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer.json). Default: the embedded tiny-mixtral-code." };
    public static Option<int?> Context() => new("--context") { Description = "Context length (positions in the KV cache). Default: min(max_position_embeddings, 4096)." };
    public static Option<string> Device() => new("--device", "-d")
    {
        Description = "Where dense compute runs: cpu, or cuda (the first NVIDIA GPU, through ILGPU).",
        DefaultValueFactory = _ => "cpu",
    };
    public static Option<int?> Threads() => new("--threads", "-t") { Description = "CPU worker threads. Default: all cores." };
}
