using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Kernels;

namespace Daop.Engine.Model.Families;

/// <summary>
/// GPT-OSS's checkpoint as per-expert matrices: each layer stacks its experts in one tensor per projection, and this
/// source serves expert e's gate/up [I, H], down [H, I] and their biases under <see cref="Gate"/>, <see cref="Up"/>,
/// <see cref="Down"/> (and their <c>.bias</c>) so the shared MoE block, the expert schedulers and load-time conversion
/// address experts one by one. Every other name goes to the store.
/// </summary>
/// <remarks>
/// <para>bf16 (or f16/f32) experts: <c>gate_up_proj</c> [E, H, 2I] is [in, out] with gate and up interleaved along the
/// output (gate = [..., ::2], up = [..., 1::2]) and <c>down_proj</c> [E, I, H] is [in, out]; the kernels read [out, in]
/// rows, so each layer is transposed and de-interleaved once, on first use, into memory this source owns: one copy of the
/// expert bytes, one pass over them, experts in parallel (the mapped originals are then no longer touched).</para>
/// <para>MXFP4 experts (<c>quantization_config.quant_method</c> "mxfp4"): <c>gate_up_proj_blocks</c> [E, 2I, H/32, 16] and
/// <c>_scales</c> [E, 2I, H/32] are already [out, in] with 32-column blocks of E2M1 codes and an E8M0 exponent, as Daop's
/// <see cref="DType.MXFP4"/>, but the hub packs codes 2j and 2j+1 into byte j where GGUF (and Daop) pack j and j+16, and
/// keeps scales apart: each row is repacked into 17-byte blocks (scale, then 16 code bytes), gate from the even rows and
/// up from the odd ones. Same size as stored (17 bytes per 32 weights), one pass with experts in parallel, no rounding:
/// the weights are bit-exact.</para>
/// </remarks>
public sealed unsafe partial class GptOssTensors : ITensorSource
{
    /// <summary>Expert e's gate projection [I, H] (a view this source makes).</summary>
    public const string Gate = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight";
    /// <summary>Expert e's up projection [I, H].</summary>
    public const string Up = "model.layers.{l}.mlp.experts.{e}.up_proj.weight";
    /// <summary>Expert e's down projection [H, I].</summary>
    public const string Down = "model.layers.{l}.mlp.experts.{e}.down_proj.weight";

    readonly TensorStore _store;
    readonly ModelConfig _config;
    readonly Dictionary<int, Layer> _layers = [];
    readonly List<nint> _owned = [];

    /// <summary>Serves <paramref name="store"/>'s experts per expert; the source owns the store.</summary>
    public GptOssTensors(TensorStore store, ModelConfig config)
    {
        _store = store;
        _config = config;
    }

    // One layer's experts: per expert gate, up, down and their biases.
    sealed record Layer(WeightMatrix[] Gate, WeightMatrix[] Up, WeightMatrix[] Down, float[][] GateBias, float[][] UpBias, float[][] DownBias);

    [GeneratedRegex(@"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.(weight|bias)$")]
    private static partial Regex ExpertName();

    // (layer, expert, projection, is bias) of a per-expert name whose layer is a MoE layer and expert in range, else null.
    (int Layer, int Expert, string Proj, bool Bias)? Parse(string name)
    {
        var m = ExpertName().Match(name);
        if (!m.Success || !int.TryParse(m.Groups[1].ValueSpan, out int l) || !int.TryParse(m.Groups[2].ValueSpan, out int e)) return null;
        if (l >= _config.NumLayers || _config.Layers[l].Ffn is not FfnSpec.Moe moe || e >= moe.Experts) return null;
        return (l, e, m.Groups[3].Value, m.Groups[4].Value == "bias");
    }

    /// <inheritdoc />
    public bool Contains(string name) => Parse(name) != null || _store.Contains(name);

    /// <inheritdoc />
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        if (Parse(name) is not { Bias: false } p) return _store.Matrix(name, rows, cols);
        var layer = LayerOf(p.Layer);
        var m = p.Proj switch { "gate_proj" => layer.Gate[p.Expert], "up_proj" => layer.Up[p.Expert], _ => layer.Down[p.Expert] };
        if (m.Rows != rows || m.Cols != cols)
            throw new ModelLoadException($"{_store.Source}: expert matrix '{name}' is [{m.Rows}, {m.Cols}], expected [{rows}, {cols}] as config.json's sizes call for");
        return m;
    }

    /// <inheritdoc />
    public float[] Vector(string name, int length)
    {
        if (Parse(name) is not { Bias: true } p) return _store.Vector(name, length);
        var layer = LayerOf(p.Layer);
        var v = p.Proj switch { "gate_proj" => layer.GateBias[p.Expert], "up_proj" => layer.UpBias[p.Expert], _ => layer.DownBias[p.Expert] };
        if (v.Length != length) throw new ModelLoadException($"{_store.Source}: expert bias '{name}' has {v.Length} values, expected {length} as config.json's sizes call for");
        return v;
    }

    Layer LayerOf(int l)
    {
        if (_layers.TryGetValue(l, out var layer)) return layer;
        var moe = (FfnSpec.Moe)_config.Layers[l].Ffn;
        int e = moe.Experts, inter = moe.ExpertIntermediate, hidden = _config.HiddenSize;
        string prefix = $"model.layers.{l}.mlp.experts.";
        var (gate, up, down) = _store.Contains(prefix + "gate_up_proj_blocks")
            ? Mxfp4(prefix, e, inter, hidden) : Float(prefix, e, inter, hidden);
        var gateUpBias = Floats(prefix + "gate_up_proj_bias", [e, 2 * inter]);
        var downBias = Floats(prefix + "down_proj_bias", [e, hidden]);
        layer = new Layer(gate, up, down,
            Enumerable.Range(0, e).Select(x => Strided(gateUpBias, x * 2 * inter, inter)).ToArray(),
            Enumerable.Range(0, e).Select(x => Strided(gateUpBias, x * 2 * inter + 1, inter)).ToArray(),
            Enumerable.Range(0, e).Select(x => downBias.AsSpan(x * hidden, hidden).ToArray()).ToArray());
        _layers[l] = layer;
        return layer;
    }

    // n values of v from start, every other one: a gate (even) or up (odd) bias row of the interleaved [2I].
    static float[] Strided(float[] v, int start, int n)
    {
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = v[start + 2 * i];
        return r;
    }

    float[] Floats(string name, long[] shape)
    {
        var (data, actual) = _store.Floats(name);
        if (!actual.SequenceEqual(shape))
            throw new ModelLoadException($"{_store.FileOf(name)}: tensor '{name}' has shape [{string.Join(", ", actual)}], expected [{string.Join(", ", shape)}]");
        return data;
    }

    // The stored entry of name, checked to be of shape and one of dtypes.
    TensorEntry Entry(string name, long[] shape, params TensorDType[] dtypes)
    {
        var entry = _store.Entry(name);
        if (!entry.Shape.SequenceEqual(shape) || !dtypes.Contains(entry.DType))
            throw new ModelLoadException($"{_store.FileOf(name)}: tensor '{name}' is {entry.DType} {entry.ShapeText}, expected " +
                $"{string.Join(" or ", dtypes)} [{string.Join(", ", shape)}]");
        return entry;
    }

    byte* Allocate(long bytes)
    {
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
        _owned.Add((nint)p);
        return p;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var p in _owned) NativeMemory.AlignedFree((void*)p);
        _owned.Clear();
        _layers.Clear();
        _store.Dispose();
    }
}
