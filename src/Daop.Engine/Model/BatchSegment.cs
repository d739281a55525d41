using Daop.Engine.Device;

namespace Daop.Engine.Model;

/// <summary>
/// One sequence's share of a batched step (<see cref="MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/>):
/// <paramref name="Tokens"/> consecutive tokens at positions <paramref name="StartPos"/>.. of <paramref name="Cache"/>, appended
/// to it — one token for a decode step, a prompt chunk otherwise. <paramref name="Logits"/>: whether the step writes the
/// logits of its last token (a prompt chunk that does not end the prompt needs none).
/// </summary>
public readonly record struct BatchSegment(KvCache Cache, int StartPos, int Tokens, bool Logits = true)
{
    /// <summary>The segments' tokens in all, after checking that each has a cache and fits it (the devices' <see cref="IDevice.BeginStep"/>).</summary>
    internal static int CountTokens(ReadOnlySpan<BatchSegment> segments)
    {
        int total = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            var s = segments[i];
            if (s.Cache == null) throw new ArgumentNullException(nameof(segments), $"segment {i}: its cache is null");
            if (s.Tokens < 1 || s.StartPos < 0 || s.StartPos + s.Tokens > s.Cache.Capacity)
                throw new ArgumentOutOfRangeException(nameof(segments),
                    $"segment {i}: {s.Tokens} tokens at positions from {s.StartPos} do not fit its cache of {s.Cache.Capacity}");
            total += s.Tokens;
        }
        return total;
    }
}
