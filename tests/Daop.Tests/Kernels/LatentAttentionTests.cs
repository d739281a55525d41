using System.Numerics;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

/// <summary>
/// Multi-head latent attention's CPU kernels: the head matmul against its scalar twin, and the absorbed attention over
/// the compressed cache against MLA written out as transformers computes it (keys and values expanded per head).
/// </summary>
public class LatentAttentionTests
{
    [Theory]
    [InlineData(1, 1, 1, 1, 0, 0)]
    [InlineData(3, 5, 7, 33, 2, 3)]
    [InlineData(2, 4, 24, 16, 0, 8)]
    [InlineData(4, 3, 12, 24, 5, 0)]
    public void HeadMatMulMatchesScalar(int tokens, int heads, int rows, int cols, int xPad, int yPad)
    {
        int xStride = cols + xPad, yStride = rows + yPad, xOff = xPad / 2, yOff = yPad - yPad / 3;
        var w = NativeWeights.Floats(heads * rows * cols, 1);
        var x = NativeWeights.Floats(tokens * heads * xStride, 2);
        var want = NativeWeights.Floats(tokens * heads * yStride, 3);
        var got = (float[])want.Clone();                                  // padding must be left alone
        LatentAttention.HeadMatMulScalar(w, x, xStride, xOff, want, yStride, yOff, tokens, heads, rows, cols);
        LatentAttention.HeadMatMul(w, x, xStride, xOff, got, yStride, yOff, tokens, heads, rows, cols);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * (1 + Math.Abs(want[i])), $"[{i}] {want[i]} vs {got[i]}");
    }

    /// <summary>Random weights and inputs of one MLA layer: NH heads, latent r, parts dn/dr/dv; P positions.</summary>
    public sealed class Case
    {
        public const int NH = 3, R = 10, Dn = 6, Dr = 4, Dv = 5;
        public readonly float[] Q, C, KPe, KvB, UkT, Uv, Cos, Sin;
        public readonly int Positions;
        public readonly float Scale = 0.37f;

        public Case(int positions)
        {
            Positions = positions;
            Q = NativeWeights.Floats(positions * NH * (Dn + Dr), 11);
            C = NativeWeights.Floats(positions * R, 12);
            KPe = NativeWeights.Floats(positions * Dr, 13);
            KvB = NativeWeights.Floats(NH * (Dn + Dv) * R, 14);           // [NH·(dn+dv), r] as kv_b_proj
            UkT = new float[NH * R * Dn];
            Uv = new float[NH * Dv * R];
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < Dn + Dv; i++)
                    for (int j = 0; j < R; j++)
                        if (i < Dn) UkT[(h * R + j) * Dn + i] = KvB[(h * (Dn + Dv) + i) * R + j];
                        else Uv[(h * Dv + i - Dn) * R + j] = KvB[(h * (Dn + Dv) + i) * R + j];
            Cos = new float[positions * Dr / 2];
            Sin = new float[positions * Dr / 2];
            for (int p = 0; p < positions; p++)
                for (int i = 0; i < Dr / 2; i++)
                {
                    float a = p * MathF.Pow(100f, -2f * i / Dr);
                    Cos[p * Dr / 2 + i] = MathF.Cos(a);
                    Sin[p * Dr / 2 + i] = MathF.Sin(a);
                }
        }

        public LatentShape Shape(bool interleaved) => new(NH, R, Dr, Dn + Dr, Dn, Scale, interleaved);

        // transformers' rotation of one [dr] vector at position p: V2's complex pairs (view_as_complex) or rotate_half.
        double[] Rotate(ReadOnlySpan<float> x, int p, bool interleaved)
        {
            var y = new double[Dr];
            for (int i = 0; i < Dr / 2; i++)
            {
                var f = new Complex(Cos[p * Dr / 2 + i], Sin[p * Dr / 2 + i]);
                if (interleaved)
                {
                    var z = new Complex(x[2 * i], x[2 * i + 1]) * f;
                    (y[2 * i], y[2 * i + 1]) = (z.Real, z.Imaginary);
                }
                else
                {
                    y[i] = x[i] * f.Real - x[i + Dr / 2] * f.Imaginary;
                    y[i + Dr / 2] = x[i + Dr / 2] * f.Real + x[i] * f.Imaginary;
                }
            }
            return y;
        }

        /// <summary>ctx [P, NH·dv] by expanding k = [W_uk·c, RoPE(k_pe)] and v = W_uv·c per head, as transformers does.</summary>
        public double[] Expanded(bool interleaved)
        {
            var ctx = new double[Positions * NH * Dv];
            var kpe = Enumerable.Range(0, Positions).Select(p => Rotate(KPe.AsSpan(p * Dr, Dr), p, interleaved)).ToArray();
            for (int t = 0; t < Positions; t++)
                for (int h = 0; h < NH; h++)
                {
                    var q = Q.AsSpan((t * NH + h) * (Dn + Dr), Dn + Dr);
                    var qpe = Rotate(q[Dn..], t, interleaved);
                    var s = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        double dot = 0;
                        for (int i = 0; i < Dn; i++)
                        {
                            double k = 0;
                            for (int a = 0; a < R; a++) k += KvB[(h * (Dn + Dv) + i) * R + a] * C[j * R + a];
                            dot += q[i] * k;
                        }
                        for (int i = 0; i < Dr; i++) dot += qpe[i] * kpe[j][i];
                        s[j] = dot * Scale;
                    }
                    double max = s.Max(), sum = s.Sum(v => Math.Exp(v - max));
                    for (int i = 0; i < Dv; i++)
                    {
                        double acc = 0;
                        for (int j = 0; j <= t; j++)
                        {
                            double v = 0;
                            for (int a = 0; a < R; a++) v += KvB[(h * (Dn + Dv) + Dn + i) * R + a] * C[j * R + a];
                            acc += Math.Exp(s[j] - max) / sum * v;
                        }
                        ctx[(t * NH + h) * Dv + i] = acc;
                    }
                }
            return ctx;
        }

        /// <summary>ctx [P, NH·dv] through the absorbed kernels, the positions in chunks of <paramref name="chunks"/>.</summary>
        public float[] Absorbed(bool interleaved, int[] chunks)
        {
            var a = Shape(interleaved);
            var cache = new float[Positions * a.Width];
            var ctx = new float[Positions * NH * Dv];
            int start = 0;
            foreach (int n in chunks)
            {
                var qc = new float[n * NH * a.Width];
                var o = new float[n * NH * R];
                var q = Q.AsSpan(start * NH * (Dn + Dr), n * NH * (Dn + Dr));
                LatentAttention.HeadMatMul(UkT, q, Dn + Dr, 0, qc, a.Width, 0, n, NH, R, Dn);
                LatentAttention.Append(q, qc, C.AsSpan(start * R, n * R), KPe.AsSpan(start * Dr, n * Dr), cache, Cos, Sin, a, n, start);
                LatentAttention.Attend(qc, cache, o, a, n, start);
                LatentAttention.HeadMatMul(Uv, o, R, 0, ctx.AsSpan(start * NH * Dv), Dv, 0, n, NH, Dv, R);
                start += n;
            }
            return ctx;
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AbsorbedAttentionOverTheLatentCacheMatchesExpandedMla(bool interleaved)
    {
        var c = new Case(7);
        var want = c.Expanded(interleaved);
        var got = c.Absorbed(interleaved, [4, 1, 2]);                     // a prompt chunk, a decode step, another chunk
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 2e-5 * (1 + Math.Abs(want[i])), $"[{i}] {want[i]} vs {got[i]}");
        // The pairings differ: rotating the wrong pairs changes the scores.
        var other = c.Absorbed(!interleaved, [7]);
        Assert.Contains(Enumerable.Range(0, want.Length), i => Math.Abs(want[i] - other[i]) > 1e-3);
    }

    [Fact]
    public void MoreThanOneBlockOfPositionsMatchesExpandedMla()
    {
        var c = new Case(300);                                             // the kernel scores 256 positions at a time
        var want = c.Expanded(true);
        var got = c.Absorbed(true, [290, 10]);                             // the prompt part runs on the worker pool
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 5e-5 * (1 + Math.Abs(want[i])), $"[{i}] {want[i]} vs {got[i]}");
    }

    [Fact]
    public void CacheHoldsTheLatentAndTheRotatedSharedKey()
    {
        var c = new Case(3);
        var a = c.Shape(true);
        var cache = new float[3 * a.Width];
        var qc = new float[3 * Case.NH * a.Width];
        LatentAttention.Append(c.Q, qc, c.C, c.KPe, cache, c.Cos, c.Sin, a, 3, 0);
        for (int p = 0; p < 3; p++)
        {
            Assert.Equal(c.C.AsSpan(p * Case.R, Case.R).ToArray(), cache.AsSpan(p * a.Width, Case.R).ToArray());
            var cs = c.Cos.AsSpan(p * 2, 2);
            var sn = c.Sin.AsSpan(p * 2, 2);
            float x0 = c.KPe[p * 4], x1 = c.KPe[p * 4 + 1];
            Assert.Equal(x0 * cs[0] - x1 * sn[0], cache[p * a.Width + Case.R], 6);
            Assert.Equal(x1 * cs[0] + x0 * sn[0], cache[p * a.Width + Case.R + 1], 6);
        }
        Assert.Equal(c.KPe[0], cache[Case.R]);                            // position 0 rotates by nothing
    }
}
