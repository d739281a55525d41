using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>
/// What DeepSeek-V2 and V3 share: multi-head latent attention, n_shared_experts ungated shared experts of
/// moe_intermediate_size each, the first first_k_dense_replace layers dense, and the tensor names of the hub layout.
/// </summary>
static partial class DeepseekCommon
{
    /// <summary>
    /// The config with MLA in every layer and <paramref name="router"/> in the MoE layers; <paramref name="interleaved"/>:
    /// the RoPE pairing of q_pe and k_pe; <paramref name="denseDefault"/>: first_k_dense_replace when absent.
    /// </summary>
    public static ModelConfig Read(ConfigReader c, RouterSpec router, bool interleaved, int denseDefault)
    {
        int experts = c.PositiveInt("n_routed_experts");
        var common = CommonConfig.Read(c, experts, c.PositiveInt("num_experts_per_tok"), c.PositiveInt("moe_intermediate_size"), router);
        var attention = ReadMla(c, common.Attention.Rope) with { RopeInterleaved = interleaved };
        int sharedCount = c.IntOr("n_shared_experts", 0);
        if (sharedCount < 0) throw c.Error("n_shared_experts", $"must not be negative, found {sharedCount}");
        long shared = (long)sharedCount * common.Moe.ExpertIntermediate;
        if (shared > CommonConfig.MaxWidth)
            throw c.Error("n_shared_experts", $"times moe_intermediate_size ({sharedCount} x {common.Moe.ExpertIntermediate}) must be at most {CommonConfig.MaxWidth}");
        var moe = common.Moe with { Shared = shared > 0 ? new SharedExpertSpec.Ungated((int)shared) : null };

        // transformers 5.17 makes layer l sparse when l >= first_k_dense_replace; DeepSeek's own code also asks
        // l % moe_layer_freq == 0 (1 in every released config, where the two agree).
        int firstDense = c.IntOr("first_k_dense_replace", denseDefault);
        int layers = common.Model.NumLayers;
        if (firstDense < 0 || firstDense > layers)
            throw c.Error("first_k_dense_replace", $"must be between 0 and num_hidden_layers ({layers}), found {firstDense}");
        int freq = c.IntOr("moe_layer_freq", 1);
        if (freq <= 0) throw c.Error("moe_layer_freq", $"must be positive, found {freq}");
        bool Sparse(int l) => l >= firstDense && l % freq == 0;
        // A model without a MoE layer has no experts to place or run (the schedulers size themselves from one).
        if (!Enumerable.Range(0, layers).Any(Sparse))
            throw c.Error("first_k_dense_replace", $"({firstDense}) with moe_layer_freq {freq} leaves no MoE layer among the {layers} layers");
        bool anyDense = !Enumerable.Range(0, layers).All(Sparse);
        if (anyDense && c.IntOr("intermediate_size", 0) <= 0)
            throw c.Error("intermediate_size", "is needed for the dense layers (first_k_dense_replace, moe_layer_freq)");
        var dense = common.Dense(anyDense ? CommonConfig.WidthOr0(c, "intermediate_size") : 0);
        return common.Build(attention, l => Sparse(l) ? moe : dense);
    }

    static AttentionSpec.Mla ReadMla(ConfigReader c, RopeSpec rope)
    {
        int heads = c.PositiveInt("num_attention_heads");
        int Width(string field)
        {
            int w = c.PositiveInt(field);
            if (w > CommonConfig.MaxWidth) throw c.Error(field, $"must be at most {CommonConfig.MaxWidth}, found {w}");
            return w;
        }
        int r = Width("kv_lora_rank"), dn = Width("qk_nope_head_dim"), dr = Width("qk_rope_head_dim"), dv = Width("v_head_dim");
        if (dr % 2 != 0) throw c.Error("qk_rope_head_dim", $"must be even (RoPE rotates pairs), found {dr}");
        int? qRank = c.Has("q_lora_rank") ? Width("q_lora_rank") : null;
        var mla = new AttentionSpec.Mla(heads, rope, r, dn, dr, dv) { QRank = qRank, Bias = c.BoolOr("attention_bias", false) };
        // mscale_all_dim enters the score scale squared: a huge one overflows it (the config reader only bounds it below).
        if (!(float.IsFinite(mla.Scale) && mla.Scale > 0))
            throw (c.Object("rope_parameters") ?? c.Object("rope_scaling") ?? c).Error("mscale_all_dim",
                $"({rope.MscaleAllDim}) gives the attention a score scale of {mla.Scale}, not a positive finite number");
        if ((long)heads * Math.Max(Math.Max(dn, r) + dr, dv) > CommonConfig.MaxWidth)
            throw c.Error("num_attention_heads", $"times the widest head ({Math.Max(Math.Max(dn, r) + dr, dv)}) must be at most {CommonConfig.MaxWidth}");
        return mla;
    }

    /// <summary>
    /// n_group and topk_group (the defaults when absent; null: required), checked against n_routed_experts E and
    /// num_experts_per_tok K: n_group divides E, 1 ≤ topk_group ≤ n_group, and the kept groups hold at least K experts.
    /// </summary>
    public static (int Groups, int TopGroups) Groups(ConfigReader c, int? groupsDefault, int? topGroupsDefault)
    {
        int experts = c.PositiveInt("n_routed_experts"), topK = c.PositiveInt("num_experts_per_tok");
        int groups = c.IntOrNull("n_group") ?? groupsDefault ?? throw c.Error("n_group", "is missing");
        int top = c.IntOrNull("topk_group") ?? topGroupsDefault ?? throw c.Error("topk_group", "is missing");
        if (groups <= 0 || experts % groups != 0)
            throw c.Error("n_group", $"must be a positive divisor of n_routed_experts ({experts}), found {groups}");
        if (top <= 0 || top > groups) throw c.Error("topk_group", $"must be between 1 and n_group ({groups}), found {top}");
        if ((long)top * (experts / groups) < topK)
            throw c.Error("topk_group", $"({top}) keeps {top} x {experts / groups} experts, fewer than num_experts_per_tok ({topK})");
        return (groups, top);
    }

    /// <summary>routed_scaling_factor (default 1): a finite positive number.</summary>
    public static float ScalingFactor(ConfigReader c)
    {
        double f = c.DoubleOr("routed_scaling_factor", 1);
        if (!(f > 0)) throw c.Error("routed_scaling_factor", $"must be positive, found {f}");
        return (float)f;
    }

    /// <summary>The hub layout's names (<paramref name="scoreBias"/>: V3's e_score_correction_bias).</summary>
    public static TensorNames Names(bool scoreBias) => new()
    {
        Attention = new MlaNames(),
        Router = "model.layers.{l}.mlp.gate.weight",
        RouterScoreBias = scoreBias ? "model.layers.{l}.mlp.gate.e_score_correction_bias" : null,
        ExpertGate = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.experts.{e}.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.experts.{e}.down_proj.weight",
        SharedGate = "model.layers.{l}.mlp.shared_experts.gate_proj.weight",
        SharedUp = "model.layers.{l}.mlp.shared_experts.up_proj.weight",
        SharedDown = "model.layers.{l}.mlp.shared_experts.down_proj.weight",
    };
}
