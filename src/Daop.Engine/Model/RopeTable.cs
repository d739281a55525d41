using Daop.Engine.Load.Config;

namespace Daop.Engine.Model;

/// <summary>
/// cos/sin of every (position, frequency) pair up to the context capacity: [capacity, D_rot/2] each, in the
/// fp32 arithmetic transformers uses (inv_freq = 1 / θ^(2i/d), angle = pos · inv_freq).
/// </summary>
public sealed class RopeTable
{
    /// <summary>[capacity, Half] cosines, already multiplied by the attention scaling (longrope/yarn).</summary>
    public float[] Cos { get; }
    /// <summary>[capacity, Half] sines, scaled likewise.</summary>
    public float[] Sin { get; }
    /// <summary>Rotated dims / 2.</summary>
    public int Half { get; }
    /// <summary>Positions covered.</summary>
    public int Capacity { get; }

    /// <summary>Builds the table for <paramref name="capacity"/> positions of heads of width <paramref name="headDim"/>.</summary>
    public RopeTable(RopeSpec spec, int headDim, int capacity, int maxPositions)
    {
        int rotDim = (int)(headDim * spec.PartialRotaryFactor);
        rotDim -= rotDim % 2;
        Half = rotDim / 2;
        Capacity = capacity;
        var (invFreq, scale) = Frequencies(spec, rotDim, capacity, maxPositions);
        // The config's fields are checked one by one when read; this catches any combination that still overflows.
        int bad = Kernels.Cpu.NonFinite.IndexOf(invFreq);
        if (bad >= 0 || !float.IsFinite(scale))
            throw new Load.ModelLoadException($"the RoPE parameters ({spec.Type}, theta {spec.Theta}, factor {spec.Factor}) give " +
                (bad >= 0 ? $"a non-finite frequency ({invFreq[bad]}) for dimension pair {bad}" : $"a non-finite attention scaling ({scale})"));
        for (int i = 0; i < invFreq.Length; i++)
            invFreq[i] = spec.InvFreqDType switch
            {
                "bfloat16" => Kernels.Cpu.Bf16.ToFloat(Kernels.Cpu.Bf16.FromFloat(invFreq[i])),
                "float16" => (float)(Half)invFreq[i],
                _ => invFreq[i],
            };
        Cos = new float[capacity * Half];
        Sin = new float[capacity * Half];
        for (int p = 0; p < capacity; p++)
            for (int i = 0; i < Half; i++)
            {
                float angle = p * invFreq[i];
                Cos[p * Half + i] = MathF.Cos(angle) * scale;
                Sin[p * Half + i] = MathF.Sin(angle) * scale;
            }
    }

    static (float[] InvFreq, float Scale) Frequencies(RopeSpec s, int dim, int capacity, int maxPositions)
    {
        var inv = new float[dim / 2];
        for (int i = 0; i < inv.Length; i++)
            inv[i] = 1f / MathF.Pow((float)s.Theta, 2 * i / (float)dim);
        float scale = 1;
        switch (s.Type)
        {
            case "default":
            case "dynamic": // dynamic NTK only changes frequencies past the trained length; within it, it is default
                break;
            case "linear":
                for (int i = 0; i < inv.Length; i++) inv[i] /= (float)s.Factor;
                break;
            case "llama3":
            {
                double lowWave = s.OriginalMaxPositions / s.LowFreqFactor, highWave = s.OriginalMaxPositions / s.HighFreqFactor;
                for (int i = 0; i < inv.Length; i++)
                {
                    double wave = 2 * Math.PI / inv[i];
                    if (wave > lowWave) inv[i] /= (float)s.Factor;
                    else if (wave >= highWave)
                    {
                        double smooth = (s.OriginalMaxPositions / wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                        inv[i] = (float)((1 - smooth) * inv[i] / s.Factor + smooth * inv[i]);
                    }
                }
                break;
            }
            case "factors":
            {
                var f = s.FreqFactors!;
                if (f.Length != inv.Length) throw new Load.ModelLoadException($"rope frequency factors have {f.Length} entries, expected {inv.Length}");
                for (int i = 0; i < inv.Length; i++) inv[i] /= (float)f[i];
                break;
            }
            case "longrope":
            {
                // transformers picks long factors once the sequence outgrows the original context; Daop decides
                // once per cache from its capacity, so a sequence never switches tables mid-way.
                int orig = s.OriginalMaxPositions > 0 ? s.OriginalMaxPositions : maxPositions;
                var ext = capacity > orig ? s.LongFactor! : s.ShortFactor!;
                if (ext.Length != inv.Length)
                    throw new Load.ModelLoadException($"rope long/short factor has {ext.Length} entries, expected {inv.Length}");
                for (int i = 0; i < inv.Length; i++) inv[i] /= (float)ext[i];
                double factor = (double)maxPositions / orig;
                scale = (float)(s.AttentionFactor ?? (factor <= 1 ? 1 : Math.Sqrt(1 + Math.Log(factor) / Math.Log(orig))));
                break;
            }
            case "yarn":
            {
                int orig = s.OriginalMaxPositions > 0 ? s.OriginalMaxPositions : maxPositions;
                double Dim(double rot) => dim * Math.Log(orig / (rot * 2 * Math.PI)) / (2 * Math.Log(s.Theta));
                double low = Dim(s.BetaFast), high = Dim(s.BetaSlow);
                if (s.Truncate) (low, high) = (Math.Floor(low), Math.Ceiling(high));
                (low, high) = (Math.Max(low, 0), Math.Min(high, dim - 1));
                if (low == high) high += 0.001;
                for (int i = 0; i < inv.Length; i++)
                {
                    double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                    double extrapolationFactor = 1 - ramp;
                    double interp = inv[i] / s.Factor;
                    inv[i] = (float)(interp * (1 - extrapolationFactor) + inv[i] * extrapolationFactor);
                }
                // DeepSeek's mscale and mscale_all_dim, both set and non-zero, make the factor their ratio.
                scale = (float)(s.AttentionFactor ?? (s.Mscale is { } m && m != 0 && s.MscaleAllDim is { } all && all != 0
                    ? RopeSpec.YarnMscale(s.Factor, m) / RopeSpec.YarnMscale(s.Factor, all)
                    : RopeSpec.YarnMscale(s.Factor)));
                break;
            }
            default:
                throw new Load.ModelLoadException($"RoPE type '{s.Type}' is not supported");
        }
        return (inv, scale);
    }
}
