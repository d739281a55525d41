using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// The register tiles of <see cref="OuterGemm{TF, TS, TV}"/> (generated shapes; keep them in step). Each takes
/// <c>wf</c> [R, Kc] widened weights (rows at immediate offsets), <c>xt</c> [kl, tokens] packed activations and
/// <c>acc</c> [R, tokens] running sums, <c>s</c> floats per row, which it loads unless <c>first</c>.
/// </summary>
internal static unsafe partial class OuterGemm<TF, TS, TV>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV Init(float* p, bool first) => first ? TS.Zero : TS.Load(p);

    /// <summary>12 rows × 2·Width tokens over <paramref name="kl"/> columns; acc rows are <paramref name="s"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void K12x2(float* wf, float* xt, int kl, float* acc, nint s, bool first)
    {
        nint w = TS.Width;
        TV c0a = Init(acc + 0 * s, first), c0b = Init(acc + 0 * s + w, first);
        TV c1a = Init(acc + 1 * s, first), c1b = Init(acc + 1 * s + w, first);
        TV c2a = Init(acc + 2 * s, first), c2b = Init(acc + 2 * s + w, first);
        TV c3a = Init(acc + 3 * s, first), c3b = Init(acc + 3 * s + w, first);
        TV c4a = Init(acc + 4 * s, first), c4b = Init(acc + 4 * s + w, first);
        TV c5a = Init(acc + 5 * s, first), c5b = Init(acc + 5 * s + w, first);
        TV c6a = Init(acc + 6 * s, first), c6b = Init(acc + 6 * s + w, first);
        TV c7a = Init(acc + 7 * s, first), c7b = Init(acc + 7 * s + w, first);
        TV c8a = Init(acc + 8 * s, first), c8b = Init(acc + 8 * s + w, first);
        TV c9a = Init(acc + 9 * s, first), c9b = Init(acc + 9 * s + w, first);
        TV c10a = Init(acc + 10 * s, first), c10b = Init(acc + 10 * s + w, first);
        TV c11a = Init(acc + 11 * s, first), c11b = Init(acc + 11 * s + w, first);
        for (nint k = 0; k < kl; k++)
        {
            TV xa = TS.Load(xt), xb = TS.Load(xt + w);
            TV b;
            b = TS.Broadcast(wf + 0 * Kc); c0a = TS.Fma(b, xa, c0a); c0b = TS.Fma(b, xb, c0b);
            b = TS.Broadcast(wf + 1 * Kc); c1a = TS.Fma(b, xa, c1a); c1b = TS.Fma(b, xb, c1b);
            b = TS.Broadcast(wf + 2 * Kc); c2a = TS.Fma(b, xa, c2a); c2b = TS.Fma(b, xb, c2b);
            b = TS.Broadcast(wf + 3 * Kc); c3a = TS.Fma(b, xa, c3a); c3b = TS.Fma(b, xb, c3b);
            b = TS.Broadcast(wf + 4 * Kc); c4a = TS.Fma(b, xa, c4a); c4b = TS.Fma(b, xb, c4b);
            b = TS.Broadcast(wf + 5 * Kc); c5a = TS.Fma(b, xa, c5a); c5b = TS.Fma(b, xb, c5b);
            b = TS.Broadcast(wf + 6 * Kc); c6a = TS.Fma(b, xa, c6a); c6b = TS.Fma(b, xb, c6b);
            b = TS.Broadcast(wf + 7 * Kc); c7a = TS.Fma(b, xa, c7a); c7b = TS.Fma(b, xb, c7b);
            b = TS.Broadcast(wf + 8 * Kc); c8a = TS.Fma(b, xa, c8a); c8b = TS.Fma(b, xb, c8b);
            b = TS.Broadcast(wf + 9 * Kc); c9a = TS.Fma(b, xa, c9a); c9b = TS.Fma(b, xb, c9b);
            b = TS.Broadcast(wf + 10 * Kc); c10a = TS.Fma(b, xa, c10a); c10b = TS.Fma(b, xb, c10b);
            b = TS.Broadcast(wf + 11 * Kc); c11a = TS.Fma(b, xa, c11a); c11b = TS.Fma(b, xb, c11b);
            wf++;
            xt += 2 * w;
        }
        TS.Store(c0a, acc + 0 * s); TS.Store(c0b, acc + 0 * s + w);
        TS.Store(c1a, acc + 1 * s); TS.Store(c1b, acc + 1 * s + w);
        TS.Store(c2a, acc + 2 * s); TS.Store(c2b, acc + 2 * s + w);
        TS.Store(c3a, acc + 3 * s); TS.Store(c3b, acc + 3 * s + w);
        TS.Store(c4a, acc + 4 * s); TS.Store(c4b, acc + 4 * s + w);
        TS.Store(c5a, acc + 5 * s); TS.Store(c5b, acc + 5 * s + w);
        TS.Store(c6a, acc + 6 * s); TS.Store(c6b, acc + 6 * s + w);
        TS.Store(c7a, acc + 7 * s); TS.Store(c7b, acc + 7 * s + w);
        TS.Store(c8a, acc + 8 * s); TS.Store(c8b, acc + 8 * s + w);
        TS.Store(c9a, acc + 9 * s); TS.Store(c9b, acc + 9 * s + w);
        TS.Store(c10a, acc + 10 * s); TS.Store(c10b, acc + 10 * s + w);
        TS.Store(c11a, acc + 11 * s); TS.Store(c11b, acc + 11 * s + w);
    }

    /// <summary>12 rows × Width tokens (the last half tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void K12x1(float* wf, float* xt, int kl, float* acc, nint s, bool first)
    {
        nint w = TS.Width;
        TV c0a = Init(acc + 0 * s, first);
        TV c1a = Init(acc + 1 * s, first);
        TV c2a = Init(acc + 2 * s, first);
        TV c3a = Init(acc + 3 * s, first);
        TV c4a = Init(acc + 4 * s, first);
        TV c5a = Init(acc + 5 * s, first);
        TV c6a = Init(acc + 6 * s, first);
        TV c7a = Init(acc + 7 * s, first);
        TV c8a = Init(acc + 8 * s, first);
        TV c9a = Init(acc + 9 * s, first);
        TV c10a = Init(acc + 10 * s, first);
        TV c11a = Init(acc + 11 * s, first);
        for (nint k = 0; k < kl; k++)
        {
            TV xa = TS.Load(xt);
            TV b;
            b = TS.Broadcast(wf + 0 * Kc); c0a = TS.Fma(b, xa, c0a);
            b = TS.Broadcast(wf + 1 * Kc); c1a = TS.Fma(b, xa, c1a);
            b = TS.Broadcast(wf + 2 * Kc); c2a = TS.Fma(b, xa, c2a);
            b = TS.Broadcast(wf + 3 * Kc); c3a = TS.Fma(b, xa, c3a);
            b = TS.Broadcast(wf + 4 * Kc); c4a = TS.Fma(b, xa, c4a);
            b = TS.Broadcast(wf + 5 * Kc); c5a = TS.Fma(b, xa, c5a);
            b = TS.Broadcast(wf + 6 * Kc); c6a = TS.Fma(b, xa, c6a);
            b = TS.Broadcast(wf + 7 * Kc); c7a = TS.Fma(b, xa, c7a);
            b = TS.Broadcast(wf + 8 * Kc); c8a = TS.Fma(b, xa, c8a);
            b = TS.Broadcast(wf + 9 * Kc); c9a = TS.Fma(b, xa, c9a);
            b = TS.Broadcast(wf + 10 * Kc); c10a = TS.Fma(b, xa, c10a);
            b = TS.Broadcast(wf + 11 * Kc); c11a = TS.Fma(b, xa, c11a);
            wf++;
            xt += w;
        }
        TS.Store(c0a, acc + 0 * s);
        TS.Store(c1a, acc + 1 * s);
        TS.Store(c2a, acc + 2 * s);
        TS.Store(c3a, acc + 3 * s);
        TS.Store(c4a, acc + 4 * s);
        TS.Store(c5a, acc + 5 * s);
        TS.Store(c6a, acc + 6 * s);
        TS.Store(c7a, acc + 7 * s);
        TS.Store(c8a, acc + 8 * s);
        TS.Store(c9a, acc + 9 * s);
        TS.Store(c10a, acc + 10 * s);
        TS.Store(c11a, acc + 11 * s);
    }

    /// <summary>6 rows × 2·Width tokens: the tile for 16-register ISAs (AVX2), 12 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void K6x2(float* wf, float* xt, int kl, float* acc, nint s, bool first)
    {
        nint w = TS.Width;
        TV c0a = Init(acc + 0 * s, first), c0b = Init(acc + 0 * s + w, first);
        TV c1a = Init(acc + 1 * s, first), c1b = Init(acc + 1 * s + w, first);
        TV c2a = Init(acc + 2 * s, first), c2b = Init(acc + 2 * s + w, first);
        TV c3a = Init(acc + 3 * s, first), c3b = Init(acc + 3 * s + w, first);
        TV c4a = Init(acc + 4 * s, first), c4b = Init(acc + 4 * s + w, first);
        TV c5a = Init(acc + 5 * s, first), c5b = Init(acc + 5 * s + w, first);
        for (nint k = 0; k < kl; k++)
        {
            TV xa = TS.Load(xt), xb = TS.Load(xt + w);
            TV b;
            b = TS.Broadcast(wf + 0 * Kc); c0a = TS.Fma(b, xa, c0a); c0b = TS.Fma(b, xb, c0b);
            b = TS.Broadcast(wf + 1 * Kc); c1a = TS.Fma(b, xa, c1a); c1b = TS.Fma(b, xb, c1b);
            b = TS.Broadcast(wf + 2 * Kc); c2a = TS.Fma(b, xa, c2a); c2b = TS.Fma(b, xb, c2b);
            b = TS.Broadcast(wf + 3 * Kc); c3a = TS.Fma(b, xa, c3a); c3b = TS.Fma(b, xb, c3b);
            b = TS.Broadcast(wf + 4 * Kc); c4a = TS.Fma(b, xa, c4a); c4b = TS.Fma(b, xb, c4b);
            b = TS.Broadcast(wf + 5 * Kc); c5a = TS.Fma(b, xa, c5a); c5b = TS.Fma(b, xb, c5b);
            wf++;
            xt += 2 * w;
        }
        TS.Store(c0a, acc + 0 * s); TS.Store(c0b, acc + 0 * s + w);
        TS.Store(c1a, acc + 1 * s); TS.Store(c1b, acc + 1 * s + w);
        TS.Store(c2a, acc + 2 * s); TS.Store(c2b, acc + 2 * s + w);
        TS.Store(c3a, acc + 3 * s); TS.Store(c3b, acc + 3 * s + w);
        TS.Store(c4a, acc + 4 * s); TS.Store(c4b, acc + 4 * s + w);
        TS.Store(c5a, acc + 5 * s); TS.Store(c5b, acc + 5 * s + w);
    }

    /// <summary>6 rows × Width tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void K6x1(float* wf, float* xt, int kl, float* acc, nint s, bool first)
    {
        nint w = TS.Width;
        TV c0a = Init(acc + 0 * s, first);
        TV c1a = Init(acc + 1 * s, first);
        TV c2a = Init(acc + 2 * s, first);
        TV c3a = Init(acc + 3 * s, first);
        TV c4a = Init(acc + 4 * s, first);
        TV c5a = Init(acc + 5 * s, first);
        for (nint k = 0; k < kl; k++)
        {
            TV xa = TS.Load(xt);
            TV b;
            b = TS.Broadcast(wf + 0 * Kc); c0a = TS.Fma(b, xa, c0a);
            b = TS.Broadcast(wf + 1 * Kc); c1a = TS.Fma(b, xa, c1a);
            b = TS.Broadcast(wf + 2 * Kc); c2a = TS.Fma(b, xa, c2a);
            b = TS.Broadcast(wf + 3 * Kc); c3a = TS.Fma(b, xa, c3a);
            b = TS.Broadcast(wf + 4 * Kc); c4a = TS.Fma(b, xa, c4a);
            b = TS.Broadcast(wf + 5 * Kc); c5a = TS.Fma(b, xa, c5a);
            wf++;
            xt += w;
        }
        TS.Store(c0a, acc + 0 * s);
        TS.Store(c1a, acc + 1 * s);
        TS.Store(c2a, acc + 2 * s);
        TS.Store(c3a, acc + 3 * s);
        TS.Store(c4a, acc + 4 * s);
        TS.Store(c5a, acc + 5 * s);
    }
}
