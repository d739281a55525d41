namespace Daop.Engine.Device;

/// <summary>
/// Routed positions grouped by expert (or by GPU slot): a stable counting sort, so each group keeps its positions in
/// ascending order and an expert's weights are read once for all its tokens. The one grouping every expert path uses:
/// the CPU device's experts, the CPU experts beside a GPU, and the GPU tile builder.
/// </summary>
/// <param name="keys">Groups: experts of a layer, or slots.</param>
/// <param name="capacity">Positions to size for now (more grow the buffer).</param>
public sealed class ExpertGroups(int keys, int capacity = 0)
{
    readonly int[] _count = new int[keys], _start = new int[keys + 1], _fill = new int[keys];
    int[] _order = new int[capacity];
    int _items, _max;

    /// <summary>Groups.</summary>
    public int Keys => _count.Length;

    /// <summary>Positions grouped by the latest <see cref="Sort"/>.</summary>
    public int Items => _items;

    /// <summary>The largest group.</summary>
    public int MaxCount => _max;

    /// <summary>[Items] positions, group by group, ascending within each group.</summary>
    public ReadOnlySpan<int> Order => _order.AsSpan(0, _items);

    /// <summary>Positions in group <paramref name="key"/>.</summary>
    public int Count(int key) => _count[key];

    /// <summary>Where group <paramref name="key"/> starts in <see cref="Order"/>.</summary>
    public int Start(int key) => _start[key];

    /// <summary>Group <paramref name="key"/>'s positions, ascending.</summary>
    public ReadOnlySpan<int> Group(int key) => _order.AsSpan(_start[key], _count[key]);

    /// <summary>
    /// Groups positions 0..keyOf.Length−1 by <paramref name="keyOf"/>[i] (a negative key leaves position i out).
    /// Allocates only when more positions come than ever before.
    /// </summary>
    public void Sort(ReadOnlySpan<int> keyOf)
    {
        Array.Clear(_count);
        int n = 0;
        foreach (int key in keyOf)
            if (key >= 0) { _count[key]++; n++; }
        if (_order.Length < n) _order = new int[Math.Max(n, 2 * _order.Length)];
        _start[0] = 0;
        _max = 0;
        for (int e = 0; e < _count.Length; e++)
        {
            _start[e + 1] = _start[e] + _count[e];
            _max = Math.Max(_max, _count[e]);
        }
        Array.Copy(_start, _fill, _count.Length);
        for (int i = 0; i < keyOf.Length; i++)
            if (keyOf[i] >= 0) _order[_fill[keyOf[i]]++] = i;
        _items = n;
    }
}
