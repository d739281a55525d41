using System.Numerics;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu;

/// <summary>
/// Rotary position embedding in the Hugging Face "rotate_half" layout: element i pairs with i + d/2,
/// out = x·cos + rotate_half(x)·sin with cos/sin [d/2] repeated over both halves.
/// </summary>
public static class Rope
{
    /// <summary>Rotates every head of <paramref name="x"/> [heads, headDim] with the angle table of one position.</summary>
    /// <param name="x">[heads·headDim], rotated in place.</param>
    /// <param name="cos">[rotaryDim/2] cos of each frequency at this position.</param>
    /// <param name="sin">[rotaryDim/2] sin of each frequency at this position.</param>
    /// <param name="heads">Number of heads.</param>
    /// <param name="headDim">Head width; only the first 2·cos.Length dims rotate (partial rotary).</param>
    /// <remarks>Vectorised with separate multiplies and subtractions (no FMA), so it is bit-identical to <see cref="Scalar"/>.</remarks>
    public static void Apply(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int heads, int headDim)
    {
        int half = cos.Length;
        if (sin.Length < half) throw new ArgumentException("sin shorter than cos", nameof(sin));
        if (2 * half > headDim) throw new ArgumentException($"rotary dims {2 * half} exceed headDim {headDim}");
        if (x.Length < (long)heads * headDim) throw new ArgumentException($"x holds {x.Length} floats, need {heads}x{headDim}", nameof(x));
        int w = Vector<float>.Count;
        var vc = MemoryMarshal.Cast<float, Vector<float>>(cos);
        var vs = MemoryMarshal.Cast<float, Vector<float>>(sin);
        for (int h = 0; h < heads; h++)
        {
            var v = x.Slice(h * headDim, headDim);
            var lo = v.Slice(0, half);
            var hi = v.Slice(half, half);
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                for (; i + w <= half; i += w)
                {
                    var a = new Vector<float>(lo.Slice(i));
                    var b = new Vector<float>(hi.Slice(i));
                    var c = vc[i / w];
                    var s = vs[i / w];
                    (a * c - b * s).CopyTo(lo.Slice(i));
                    (b * c + a * s).CopyTo(hi.Slice(i));
                }
            }
            for (; i < half; i++)
            {
                float a = lo[i], b = hi[i];
                lo[i] = a * cos[i] - b * sin[i];
                hi[i] = b * cos[i] + a * sin[i];
            }
        }
    }

    /// <summary>Scalar twin of <see cref="Apply"/>.</summary>
    public static void Scalar(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int heads, int headDim)
    {
        int half = cos.Length;
        for (int h = 0; h < heads; h++)
        {
            var v = x.Slice(h * headDim, headDim);
            for (int i = 0; i < half; i++)
            {
                float a = v[i], b = v[i + half];
                v[i] = a * cos[i] - b * sin[i];
                v[i + half] = b * cos[i] + a * sin[i];
            }
        }
    }
}
