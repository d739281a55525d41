using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Xunit.Abstractions;

namespace Daop.Tests.Load.Safetensors;

/// <summary>
/// Seeded mutation fuzzing of a real checkpoint header. Every mutant must either open with every
/// range inside the data section and no overlaps, or fail with a <see cref="ModelLoadException"/>
/// whose message starts with the file path. Anything else (another exception type, a crash) fails.
/// </summary>
public sealed class SafetensorsFuzzTests(ITestOutputHelper output) : IDisposable
{
    const int Seed = 20240611;
    const int MaxIterations = 2000;
    static readonly TimeSpan MaxTime = TimeSpan.FromSeconds(10);

    readonly StTempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    enum Kind { FlipBytes, Truncate, Splice, ChangeDigit, ReplaceNumber, DeleteRange, DuplicateEntry, LengthPrefix }

    // Bytes that keep a mutant close to JSON, so splices reach the reader's checks instead of
    // stopping at the parser every time; raw bytes (including invalid UTF-8) are mixed in too.
    static readonly byte[] JsonAlphabet = Encoding.ASCII.GetBytes("{}[]\":,0123456789-+.eE \"_aFBI");
    static readonly string[] EdgeNumbers =
        ["-1", "-0", "0", "1e3", "3.0", "0.5", "1E2", "9223372036854775807", "9223372036854775808",
         "18446744073709551615", "18446744073709551616", "4294967296", "null", "\"12\"", "[]", "{}"];

    [Fact]
    public void MutatedFixtureHeadersNeverEscapeModelLoadException()
    {
        string source = Path.Combine(StTestPaths.HfFixtures, "mixtral-tiny", "model.safetensors");
        byte[] original = File.ReadAllBytes(source);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        string header = Encoding.UTF8.GetString(original, 8, headerEnd - 8);
        int[] digits = Enumerable.Range(8, headerEnd - 8).Where(i => original[i] is >= (byte)'0' and <= (byte)'9').ToArray();
        var numbers = NumberRuns(original, headerEnd);
        var entries = EntryTexts(header);

        var rng = new Random(Seed);
        string path = _tmp.PathOf("mutant.safetensors");
        var ok = new int[8];
        var rejected = new int[8];
        var sw = Stopwatch.StartNew();
        int iter = 0;
        for (; Hardening.FuzzReport.KeepGoing(iter, MaxIterations, sw, MaxTime); iter++)
        {
            var kind = (Kind)rng.Next(8);
            byte[] mutant = Mutate(kind, original, headerEnd, digits, numbers, entries, rng, out string what);
            File.WriteAllBytes(path, mutant);
            try
            {
                using var f = SafetensorsFile.Open(path);
                ulong prefix = BinaryPrimitives.ReadUInt64LittleEndian(mutant);
                SafetensorsFixtureTests.AssertRangesSound(f, mutant.Length - 8 - (long)prefix);
                // The mapping must really cover every accepted range.
                foreach (var t in f.Tensors.Values.Where(t => t.ByteLength > 0))
                {
                    var b = f.Bytes(t);
                    _ = b[0] ^ b[^1];
                }
                ok[(int)kind]++;
            }
            catch (ModelLoadException e)
            {
                Assert.True(e.Message.StartsWith(path + ": ", StringComparison.Ordinal),
                    $"iteration {iter} ({kind}: {what}): message does not start with the path: {e.Message}");
                rejected[(int)kind]++;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"iteration {iter} (seed {Seed}, {kind}: {what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
        sw.Stop();

        output.WriteLine($"{iter} mutants in {sw.Elapsed.TotalSeconds:F2} s (seed {Seed})");
        for (int k = 0; k < 8; k++) output.WriteLine($"  {(Kind)k,-15} opened {ok[k],5}  rejected {rejected[k],5}");
        // Both outcomes must occur, or the mutators have degenerated into always (or never) breaking the file.
        Assert.True(ok.Sum() > 0 && rejected.Sum() > 0, $"opened {ok.Sum()}, rejected {rejected.Sum()}");
    }

    static byte[] Mutate(Kind kind, byte[] src, int headerEnd, int[] digits, (int Start, int Length)[] numbers,
        string[] entries, Random rng, out string what)
    {
        switch (kind)
        {
            case Kind.FlipBytes:
            {
                var m = (byte[])src.Clone();
                int n = 1 + rng.Next(4);
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    int at = rng.Next(headerEnd);
                    byte x = rng.Next(2) == 0 ? (byte)(1 << rng.Next(8)) : (byte)(1 + rng.Next(255));
                    m[at] ^= x;
                    sb.Append($"{at}^{x:X2} ");
                }
                what = sb.ToString();
                return m;
            }
            case Kind.Truncate:
            {
                // Half the cuts land in or just past the header, where the interesting boundaries are.
                int len = rng.Next(2) == 0 ? rng.Next(Math.Min(src.Length, headerEnd + 64)) : rng.Next(src.Length);
                what = $"length {len}";
                return src[..len];
            }
            case Kind.Splice:
            {
                int at = 8 + rng.Next(headerEnd - 8 + 1);
                var ins = new byte[1 + rng.Next(8)];
                for (int i = 0; i < ins.Length; i++)
                    ins[i] = rng.Next(4) == 0 ? (byte)rng.Next(256) : JsonAlphabet[rng.Next(JsonAlphabet.Length)];
                bool fix = rng.Next(2) == 0;
                what = $"insert {Convert.ToHexString(ins)} at {at}, prefix {(fix ? "fixed" : "kept")}";
                return Splice(src, headerEnd, at, 0, ins, fix);
            }
            case Kind.ChangeDigit:
            {
                var m = (byte[])src.Clone();
                int n = 1 + rng.Next(3);
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    int at = digits[rng.Next(digits.Length)];
                    m[at] = (byte)('0' + rng.Next(10));
                    sb.Append($"{at}={(char)m[at]} ");
                }
                what = sb.ToString();
                return m;
            }
            case Kind.ReplaceNumber:
            {
                var (start, length) = numbers[rng.Next(numbers.Length)];
                string repl = rng.Next(3) == 0
                    ? rng.NextInt64(src.Length * 2L).ToString()
                    : EdgeNumbers[rng.Next(EdgeNumbers.Length)];
                what = $"number at {start} -> {repl}";
                return Splice(src, headerEnd, start, length, Encoding.ASCII.GetBytes(repl), fixPrefix: true);
            }
            case Kind.DeleteRange:
            {
                int at = 8 + rng.Next(headerEnd - 8);
                int len = Math.Min(1 + rng.Next(16), headerEnd - at);
                bool fix = rng.Next(2) == 0;
                what = $"delete {len} at {at}, prefix {(fix ? "fixed" : "kept")}";
                return Splice(src, headerEnd, at, len, [], fix);
            }
            case Kind.DuplicateEntry:
            {
                // Re-insert an existing entry first in the object: under its own name (a duplicate key
                // JsonDocument accepts) or under a new name (a second tensor over the same bytes).
                string entry = entries[rng.Next(entries.Length)];
                if (rng.Next(2) == 0) entry = "\"dup." + rng.Next(1000) + entry[1..];
                what = $"prepend {entry[..Math.Min(60, entry.Length)]}";
                return Splice(src, headerEnd, 9, 0, Encoding.UTF8.GetBytes(entry + ","), fixPrefix: true);
            }
            default:
            {
                var m = (byte[])src.Clone();
                ulong v = rng.Next(3) switch
                {
                    0 => (ulong)(headerEnd - 8 + rng.Next(-16, 17)),
                    1 => (ulong)rng.NextInt64(src.Length + 16L),
                    _ => (ulong)rng.NextInt64() << rng.Next(2),
                };
                what = $"length prefix {v}";
                BinaryPrimitives.WriteUInt64LittleEndian(m, v);
                return m;
            }
        }
    }

    /// <summary>Replaces <paramref name="remove"/> bytes at <paramref name="at"/> with <paramref name="insert"/>, optionally fixing the length prefix.</summary>
    static byte[] Splice(byte[] src, int headerEnd, int at, int remove, byte[] insert, bool fixPrefix)
    {
        var m = new byte[src.Length - remove + insert.Length];
        src.AsSpan(0, at).CopyTo(m);
        insert.CopyTo(m, at);
        src.AsSpan(at + remove).CopyTo(m.AsSpan(at + insert.Length));
        if (fixPrefix) BinaryPrimitives.WriteUInt64LittleEndian(m, (ulong)(headerEnd - 8 - remove + insert.Length));
        return m;
    }

    /// <summary>Every maximal run of digits (with a leading minus) in the header.</summary>
    static (int, int)[] NumberRuns(byte[] b, int headerEnd)
    {
        var runs = new List<(int, int)>();
        for (int i = 8; i < headerEnd; i++)
        {
            if (b[i] is < (byte)'0' or > (byte)'9') continue;
            int j = i;
            while (j < headerEnd && b[j] is >= (byte)'0' and <= (byte)'9') j++;
            runs.Add((i, j - i));
            i = j;
        }
        return runs.ToArray();
    }

    /// <summary>Each top-level member as its JSON text <c>"name":{...}</c>.</summary>
    static string[] EntryTexts(string header)
    {
        using var doc = JsonDocument.Parse(header);
        return doc.RootElement.EnumerateObject().Select(p => JsonSerializer.Serialize(p.Name) + ":" + p.Value.GetRawText()).ToArray();
    }
}
