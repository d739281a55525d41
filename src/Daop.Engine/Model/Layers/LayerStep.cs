using Daop.Engine.Device;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// One layer's share of a forward chunk: the device, the chunk's buffers (a layer reads xn [T, H] and writes
/// out [T, H]), the layer's index and the chunk's T tokens at positions StartPos.. of one sequence — or, with
/// <paramref name="Batch"/>, the T tokens of several sequences, each segment of rows at its own positions and cache.
/// </summary>
readonly record struct LayerStep(IDevice Device, RunState S, int Layer, int Tokens, int StartPos, SequenceBatch? Batch = null);

/// <summary>
/// The segments of a batched step (<see cref="MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/>)
/// in row order, and the rows whose logits are wanted (the last row of each segment that asks for them), ascending.
/// Sized once for the largest chunk; refilled every step.
/// </summary>
sealed class SequenceBatch(int maxTokens)
{
    readonly BatchSegment[] _segments = new BatchSegment[maxTokens];
    readonly int[] _logitRows = new int[maxTokens];
    int _count, _logitCount;

    public ReadOnlySpan<BatchSegment> Segments => _segments.AsSpan(0, _count);
    /// <summary>True when some sequence has more than one token: the step carries a prompt chunk.</summary>
    public bool Prompt { get; private set; }

    public void Set(ReadOnlySpan<BatchSegment> segments)
    {
        int row = 0;
        _count = _logitCount = 0;
        Prompt = false;
        foreach (var s in segments)
        {
            _segments[_count++] = s;
            row += s.Tokens;
            if (s.Logits) _logitRows[_logitCount++] = row - 1;
            Prompt |= s.Tokens > 1;
        }
    }

    /// <summary>
    /// Moves the logit rows r_0 &lt; r_1 &lt; ... of x [T, width] to rows 0, 1, ... in place: r_j ≥ j, and no later copy
    /// reads row j (r_i &gt; r_j ≥ j for i &gt; j).
    /// </summary>
    public void GatherLogitRows(IDevice d, DeviceBuffer x, int width)
    {
        for (int j = 0; j < _logitCount; j++)
            if (_logitRows[j] != j) d.Copy(x, _logitRows[j] * width, x, j * width, width);
    }
}
