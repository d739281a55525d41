namespace Daop.Engine.Api;

/// <summary>
/// Cuts streamed text at the first stop sequence. Text that could be the start of a stop sequence is held back
/// until the following pieces show whether it is one, so no part of a stop sequence is ever emitted.
/// </summary>
sealed class StopSequenceFilter(IReadOnlyList<string> stops)
{
    string _pending = "";

    /// <summary>True once a stop sequence was seen; nothing more is emitted.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a piece; returns the text that is now safe to emit.</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        string s = _pending + piece;
        int cut = -1;
        foreach (var stop in stops)
        {
            int i = s.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _pending = "";
            return s[..cut];
        }
        int hold = 0;
        foreach (var stop in stops)
            for (int k = Math.Min(stop.Length - 1, s.Length); k > hold; k--)
                if (s.AsSpan(s.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    hold = k;
                    break;
                }
        _pending = s[(s.Length - hold)..];
        return s[..(s.Length - hold)];
    }

    /// <summary>What is still held back (generation ended without completing a stop sequence).</summary>
    public string Flush()
    {
        string s = Stopped ? "" : _pending;
        _pending = "";
        return s;
    }
}
