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
    public static void Apply(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int heads, int headDim)
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
