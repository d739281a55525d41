using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

// DeepSeek-V2 and V3 from GGUF: llama.cpp files both under its deepseek2 architecture and tells them apart by
// expert_gating_func (softmax: V2, sigmoid with the exp_probs_b selection bias: V3).
static partial class DeepseekCommon
{
    /// <summary>llama.cpp's expert_gating_func values (LLM_EXPERT_GATING_FUNC_TYPE).</summary>
    public const int GatingSoftmax = 1, GatingSigmoid = 2;

    /// <summary>
    /// expert_gating_func, as llama.cpp reads it: absent means softmax (DeepSeek 2 and 2.5 files written before the key).
    /// </summary>
    public static int GatingFunc(GgufConfigReader g) => g.IntOr("expert_gating_func", GatingSoftmax);

    /// <summary>
    /// The config of a deepseek2 file, keys as llama.cpp's convert_hf_to_gguf.py writes them (DeepseekV2Model):
    /// attention.kv_lora_rank, attention.q_lora_rank (absent: a plain attn_q, V2-Lite), rope.dimension_count (dr),
    /// attention.key_length / value_length (dn + dr and dv), or, in files whose kv_b is split into attn_k_b / attn_v_b
    /// with one kv head (llama.cpp since April 2025), attention.key_length_mla / value_length_mla; leading_dense_block_count
    /// dense layers of feed_forward_length; expert_shared_count shared experts of expert_feed_forward_length;
    /// expert_weights_scale and expert_weights_norm; expert_group_count / expert_group_used_count (absent: one group, as
    /// llama.cpp routes such files); YaRN with rope.scaling.yarn_log_multiplier = 0.1·mscale_all_dim (mscale taken equal to
    /// it, as llama.cpp does). <paramref name="makeRouter"/> gets (groups, kept groups, scale, normalise).
    /// </summary>
    public static ModelConfig ReadGguf(GgufConfigReader g, string modelType, Func<int, int, float, bool, RouterSpec> makeRouter)
    {
        int experts = g.PositiveInt("expert_count"), topK = g.PositiveInt("expert_used_count");
        int groups = g.IntOr("expert_group_count", 1), topGroups = g.IntOr("expert_group_used_count", groups);
        if (groups <= 0 || experts % groups != 0)
            throw g.Error("expert_group_count", $"must be a positive divisor of expert_count ({experts}), found {groups}");
        if (topGroups <= 0 || topGroups > groups)
            throw g.Error("expert_group_used_count", $"must be between 1 and expert_group_count ({groups}), found {topGroups}");
        if ((long)topGroups * (experts / groups) < topK)
            throw g.Error("expert_group_used_count", $"({topGroups}) keeps {topGroups} x {experts / groups} experts, fewer than expert_used_count ({topK})");
        double scale = g.NumberOr("expert_weights_scale", 1);
        if (!(scale > 0 && double.IsFinite(scale))) throw g.Error("expert_weights_scale", $"must be positive, found {scale}");
        bool norm = g.Metadata.BoolOr(g.Key("expert_weights_norm"), false);
        var router = makeRouter(groups, topGroups, (float)scale, norm);

        int inter = GgufCommon.Width(g, "expert_feed_forward_length");
        var common = GgufCommon.Read(g, modelType, experts, topK, inter, router, valueLengthIsKeyLength: false);
        var mla = ReadMlaGguf(g, common.Attention);

        int layers = common.Model.NumLayers;
        int firstDense = g.IntOr("leading_dense_block_count", 0);
        if (firstDense < 0 || firstDense >= layers)
            throw g.Error("leading_dense_block_count", $"must leave a MoE layer among the {layers} layers (0 to {layers - 1}), found {firstDense}");
        int sharedCount = g.IntOr("expert_shared_count", 0);
        if (sharedCount < 0) throw g.Error("expert_shared_count", $"must not be negative, found {sharedCount}");
        long shared = (long)sharedCount * inter;
        if (shared > CommonConfig.MaxWidth)
            throw g.Error("expert_shared_count", $"times expert_feed_forward_length ({sharedCount} x {inter}) must be at most {CommonConfig.MaxWidth}");
        var moe = common.Moe with { Shared = shared > 0 ? new SharedExpertSpec.Ungated((int)shared) : null };
        var dense = common.Dense(firstDense > 0 ? GgufCommon.Width(g, "feed_forward_length") : 0);
        return common.Build(mla, l => l < firstDense ? dense : moe);
    }

    static AttentionSpec.Mla ReadMlaGguf(GgufConfigReader g, AttentionSpec.Gqa gqa)
    {
        int Width(string field)
        {
            int w = g.PositiveInt(field);
            return w <= CommonConfig.MaxWidth ? w : throw g.Error(field, $"must be at most {CommonConfig.MaxWidth}, found {w}");
        }
        int r = Width("attention.kv_lora_rank"), dr = Width("rope.dimension_count");
        // Split files (one kv head) give the latent widths as key/value_length and the per-head ones as *_mla.
        bool split = g.Has("attention.key_length_mla");
        string keyField = split ? "attention.key_length_mla" : "attention.key_length";
        string valueField = split ? "attention.value_length_mla" : "attention.value_length";
        int dk = Width(keyField), dv = Width(valueField);
        if (dk <= dr) throw g.Error(keyField, $"({dk}) must exceed rope.dimension_count ({dr}): it is the nope and rope parts of a key");
        int? qRank = g.Has("attention.q_lora_rank") ? Width("attention.q_lora_rank") : null;
        // llama.cpp's deepseek2 reads yarn's mscale_all_dim from this multiplier (the softmax scale's mscale²) and cancels
        // yarn's magnitude factor on cos/sin (transformers' mscale / mscale_all_dim ratio, 1 when the two are equal).
        double? mscale = g.NumberOrNull("rope.scaling.yarn_log_multiplier") is { } mul ? mul / 0.1 : null;
        var rope = gqa.Rope with
        {
            PartialRotaryFactor = 1, Mscale = mscale, MscaleAllDim = mscale,
            AttentionFactor = gqa.Rope.Type == "yarn" ? 1 : gqa.Rope.AttentionFactor,
        };
        var mla = new AttentionSpec.Mla(gqa.Heads, rope, r, dk - dr, dr, dv)
        {
            QRank = qRank,
            Bias = g.HasTensor("blk.0.attn_kv_a_mqa.bias"),
        };
        if (!(float.IsFinite(mla.Scale) && mla.Scale > 0))
            throw g.Error("rope.scaling.yarn_log_multiplier", $"gives the attention a score scale of {mla.Scale}, not a positive finite number");
        if ((long)gqa.Heads * Math.Max(Math.Max(dk - dr, r) + dr, dv) > CommonConfig.MaxWidth)
            throw g.Error("attention.head_count", $"times the widest head ({Math.Max(Math.Max(dk - dr, r) + dr, dv)}) must be at most {CommonConfig.MaxWidth}");
        return mla;
    }

    /// <summary>llama.cpp's deepseek2 tensor names (<paramref name="scoreBias"/>: V3's exp_probs_b).</summary>
    public static TensorNames GgufNames(bool scoreBias) => Families.GgufNames.Moe with
    {
        Attention = new MlaNames
        {
            Q = "blk.{l}.attn_q.weight",
            QA = "blk.{l}.attn_q_a.weight",
            QANorm = "blk.{l}.attn_q_a_norm.weight",
            QB = "blk.{l}.attn_q_b.weight",
            KvA = "blk.{l}.attn_kv_a_mqa.weight",
            KvANorm = "blk.{l}.attn_kv_a_norm.weight",
            KvB = "blk.{l}.attn_kv_b.weight",
            KB = "blk.{l}.attn_k_b.weight",
            VB = "blk.{l}.attn_v_b.weight",
            O = "blk.{l}.attn_output.weight",
        },
        RouterScoreBias = scoreBias ? "blk.{l}.exp_probs_b.bias" : null,
        SharedExpertGate = null,
    };
}
