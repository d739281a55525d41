using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu;

/// <summary>
/// GPT-OSS's gating between an expert's projections (transformers GptOssExperts._apply_gate): g = min(gate, limit),
/// u = clamp(up, −limit, limit), h = (u + 1) · g·σ(α·g).
/// </summary>
public static unsafe class ClampedSwiGlu
{
    /// <summary>Writes h into <paramref name="gate"/>; <paramref name="up"/> is read only. Vectorised; no allocation.</summary>
    /// <remarks>
    /// g·σ(αg) is computed as g / (1 + exp(−αg)) with <see cref="SwiGlu"/>'s vector exp (≈ 1 ulp): agrees with
    /// <see cref="Scalar"/> to a few ulps. The clamp bounds g from above only, so a very negative g gives exp(−αg) = +∞ and h = −0.
    /// </remarks>
    public static void Forward(Span<float> gate, ReadOnlySpan<float> up, float alpha, float limit)
    {
        if (up.Length < gate.Length) throw new ArgumentException($"up holds {up.Length} floats, need {gate.Length}", nameof(up));
        int n = gate.Length, i = 0;
        fixed (float* g = gate, u = up)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i + 16 <= n; i += 16)
                {
                    var x = Vector512.Min(Vector512.Load(g + i), Vector512.Create(limit));
                    var v = Vector512.Clamp(Vector512.Load(u + i), Vector512.Create(-limit), Vector512.Create(limit));
                    (x / (Vector512<float>.One + SwiGlu.Exp(x * -alpha)) * (v + Vector512<float>.One)).Store(g + i);
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i + 8 <= n; i += 8)
                {
                    var x = Vector256.Min(Vector256.Load(g + i), Vector256.Create(limit));
                    var v = Vector256.Clamp(Vector256.Load(u + i), Vector256.Create(-limit), Vector256.Create(limit));
                    (x / (Vector256<float>.One + SwiGlu.Exp(x * -alpha)) * (v + Vector256<float>.One)).Store(g + i);
                }
            for (; i < n; i++)
            {
                float x = MathF.Min(g[i], limit), v = Math.Clamp(u[i], -limit, limit);
                g[i] = x / (1f + MathF.Exp(-alpha * x)) * (v + 1f);
            }
        }
    }

    /// <summary>Scalar twin (double precision).</summary>
    public static void Scalar(Span<float> gate, ReadOnlySpan<float> up, float alpha, float limit)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double x = Math.Min(gate[i], limit), v = Math.Clamp(up[i], -limit, limit);
            gate[i] = (float)(x / (1.0 + Math.Exp(-alpha * x)) * (v + 1.0));
        }
    }
}
