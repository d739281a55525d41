using System.Globalization;
using System.Text;

namespace Daop.Engine.Load.Tokenizer.Unicode;

/// <summary>
/// NFC/NFD/NFKC/NFKD in managed code. Daop builds with InvariantGlobalization, where
/// <see cref="string.Normalize()"/> silently returns its input, so the tokenizer.json "NFC"/"NFKC"
/// normalizers (Qwen uses NFC) would not match the Rust tokenizers library without this.
/// Tables come from <see cref="UnicodeTables"/>; Hangul is algorithmic (UAX #15).
/// </summary>
internal static class UnicodeNormalizer
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Tables.Load);

    /// <summary>Normalizes <paramref name="text"/>; <paramref name="compose"/> selects NFC/NFKC, <paramref name="compat"/> NFK*.</summary>
    public static string Normalize(string text, bool compose, bool compat) => Normalize(text, compose, compat, int.MaxValue)!;

    /// <summary>
    /// Like <see cref="Normalize(string, bool, bool)"/>, but null as soon as the decomposition passes
    /// <paramref name="maxLength"/> code points (NFKD can grow text 18-fold, e.g. U+FDFA).
    /// </summary>
    public static string? Normalize(string text, bool compose, bool compat, int maxLength)
    {
        // Fast path: below U+00A0 nothing decomposes, composes or has a combining class.
        if (IsAllBelow(text, '\u00A0'))
            return text;
        // Below U+0300 every character is NFC-stable and none composes with another (NFD and NFK*
        // still rewrite e.g. U+00E9 and U+00A0 there).
        if (compose && !compat && IsAllBelow(text, '\u0300'))
            return text;

        var tables = Data.Value;
        var cps = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            Decompose(rune.Value, compat, tables, cps);
            if (cps.Count > maxLength)
                return null;
        }
        ReorderCanonically(cps, tables);
        if (compose)
            Compose(cps, tables);

        var sb = new StringBuilder(cps.Count);
        foreach (var cp in cps)
            sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static bool IsAllBelow(string text, char limit)
    {
        foreach (var c in text)
            if (c >= limit)
                return false;
        return true;
    }

    private static void Decompose(int cp, bool compat, Tables t, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0)
                output.Add(TBase + s % TCount);
            return;
        }
        if (compat && t.Compat.TryGetValue(cp, out var kd))
            output.AddRange(kd);
        else if (t.Canonical.TryGetValue(cp, out var d))
            output.AddRange(d);
        else
            output.Add(cp);
    }

    // Canonical ordering: stable sort of each run of non-starters by combining class. Runs are short in real text,
    // but a prompt can hold 100,000 combining marks in a row, so long runs are sorted in O(n log n), not by insertion.
    private static void ReorderCanonically(List<int> cps, Tables t)
    {
        for (int start = 0; start < cps.Count; start++)
        {
            if (t.Ccc(cps[start]) == 0)
                continue;
            int end = start + 1;
            while (end < cps.Count && t.Ccc(cps[end]) != 0)
                end++;
            if (end - start <= 32)
            {
                InsertionSort(cps, start, end, t);
            }
            else
            {
                int[] sorted = cps.GetRange(start, end - start).OrderBy(t.Ccc).ToArray(); // OrderBy is stable
                for (int i = 0; i < sorted.Length; i++)
                    cps[start + i] = sorted[i];
            }
            start = end; // cps[end] is a starter (or the end)
        }
    }

    private static void InsertionSort(List<int> cps, int start, int end, Tables t)
    {
        for (int i = start + 1; i < end; i++)
        {
            int ccc = t.Ccc(cps[i]);
            for (int j = i; j > start && t.Ccc(cps[j - 1]) > ccc; j--)
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
    }

    // Canonical composition algorithm of UAX #15, section 1.3.
    private static void Compose(List<int> cps, Tables t)
    {
        if (cps.Count == 0)
            return;
        int starterIndex = -1;
        int lastCcc = -1;
        int write = 0;
        for (int read = 0; read < cps.Count; read++)
        {
            int cp = cps[read];
            int ccc = t.Ccc(cp);
            if (starterIndex >= 0 && (lastCcc < ccc || lastCcc == 0 && write == starterIndex + 1)
                && TryCompose(cps[starterIndex], cp, t, out int composite))
            {
                cps[starterIndex] = composite;
                continue;
            }
            if (ccc == 0)
            {
                starterIndex = write;
                lastCcc = 0;
            }
            else
            {
                lastCcc = ccc;
            }
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, Tables t, out int composite)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            composite = SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            return true;
        }
        if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0
            && second > TBase && second < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }
        return t.Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compat = new();
        public readonly Dictionary<long, int> Compositions = new();
        private readonly Dictionary<int, int> _ccc = new();

        public int Ccc(int cp) => cp < 0x300 ? 0 : _ccc.GetValueOrDefault(cp);

        public static Tables Load()
        {
            var t = new Tables();
            foreach (var entry in UnicodeTables.CombiningClasses.Split(';'))
            {
                var (range, ccc) = SplitOnce(entry, ':');
                var (start, end) = SplitOnce(range, '-');
                int value = int.Parse(ccc, CultureInfo.InvariantCulture);
                for (int cp = Hex(start); cp <= Hex(end); cp++)
                    t._ccc[cp] = value;
            }
            foreach (var entry in UnicodeTables.CanonicalDecompositions.Split(';'))
            {
                var (cp, seq) = SplitOnce(entry, ':');
                t.Canonical[Hex(cp)] = HexList(seq);
            }
            foreach (var entry in UnicodeTables.CompatibilityDecompositions.Split(';'))
            {
                var (cp, seq) = SplitOnce(entry, ':');
                t.Compat[Hex(cp)] = HexList(seq);
            }
            foreach (var entry in UnicodeTables.Compositions.Split(';'))
            {
                var (pair, composite) = SplitOnce(entry, ':');
                var p = HexList(pair);
                t.Compositions[((long)p[0] << 21) | (uint)p[1]] = Hex(composite);
            }
            return t;
        }

        private static (string, string) SplitOnce(string s, char sep)
        {
            int i = s.IndexOf(sep);
            return (s[..i], s[(i + 1)..]);
        }

        private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

        private static int[] HexList(string s) => s.Split(' ').Select(Hex).ToArray();
    }
}
