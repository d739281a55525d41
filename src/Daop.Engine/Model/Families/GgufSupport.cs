using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// How a family reads a GGUF file: the <c>general.architecture</c> it claims, the reader that composes its config from the
/// file's metadata (and which tensors it has), and its GGUF tensor-name table (<see cref="GgufNames.Moe"/> with the
/// family's differences).
/// </summary>
/// <param name="Architecture">llama.cpp's architecture name ("llama", "qwen2moe", ...).</param>
/// <param name="ReadConfig">Metadata → config.</param>
/// <param name="Names">The family's tensors under their GGUF names.</param>
public sealed record GgufSupport(string Architecture, Func<GgufConfigReader, ModelConfig> ReadConfig, TensorNames Names)
{
    /// <summary>
    /// llama.cpp's converter reordered the rows of q and k for its adjacent-pair RoPE (its <c>llama</c> architecture);
    /// the loader puts them back (<see cref="RopeRowOrder"/>).
    /// </summary>
    public bool QkRowsPermuted { get; init; }

    /// <summary>
    /// Whether this family reads a file of its architecture, where several families claim one (llama.cpp's <c>llama</c>
    /// is Mixtral with experts and a dense Llama without); null: every such file.
    /// </summary>
    public Func<GgufConfigReader, bool>? Accepts { get; init; }
}

/// <summary>llama.cpp's tensor names (llama-arch.cpp) shared by the MoE architectures Daop reads.</summary>
public static class GgufNames
{
    /// <summary>
    /// Token embedding, output, norms, attention, router, routed experts as matrices of the stacked <c>ffn_*_exps</c>
    /// tensors ([E, rows, cols]; files converted before April 2024 store one tensor per expert, <c>ffn_gate.{e}</c>),
    /// shared experts (<c>*_shexp</c>) and dense MLPs.
    /// </summary>
    public static TensorNames Moe { get; } = new()
    {
        Embed = "token_embd.weight",
        FinalNorm = "output_norm.weight",
        LmHead = "output.weight",
        AttnNorm = "blk.{l}.attn_norm.weight",
        FfnNorm = "blk.{l}.ffn_norm.weight",
        Attention = new GqaNames
        {
            Q = "blk.{l}.attn_q.weight",
            K = "blk.{l}.attn_k.weight",
            V = "blk.{l}.attn_v.weight",
            O = "blk.{l}.attn_output.weight",
            QNorm = "blk.{l}.attn_q_norm.weight",
            KNorm = "blk.{l}.attn_k_norm.weight",
        },
        Router = "blk.{l}.ffn_gate_inp.weight",
        ExpertGate = "blk.{l}.ffn_gate_exps.weight[{e}]|blk.{l}.ffn_gate.{e}.weight",
        ExpertUp = "blk.{l}.ffn_up_exps.weight[{e}]|blk.{l}.ffn_up.{e}.weight",
        ExpertDown = "blk.{l}.ffn_down_exps.weight[{e}]|blk.{l}.ffn_down.{e}.weight",
        SharedGate = "blk.{l}.ffn_gate_shexp.weight",
        SharedUp = "blk.{l}.ffn_up_shexp.weight",
        SharedDown = "blk.{l}.ffn_down_shexp.weight",
        SharedExpertGate = "blk.{l}.ffn_gate_inp_shexp.weight",
        DenseGate = "blk.{l}.ffn_gate.weight",
        DenseUp = "blk.{l}.ffn_up.weight",
        DenseDown = "blk.{l}.ffn_down.weight",
    };
}
