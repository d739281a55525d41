using System.Buffers.Binary;
using System.Diagnostics;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Model;
using Daop.Tests.Load.Gguf;
using Xunit.Abstractions;

namespace Daop.Tests.Hardening;

/// <summary>
/// Seeded, time-bounded fuzzing of GGUF headers: mutants of the header (bytes of the metadata and tensor infos, or one
/// metadata value replaced by an edge value of any type, or removed) of two fixtures — mixtral-tiny written by
/// llama-quantize (q8_0) and qwen2moe-tiny in bf16 — are opened, their tokenizer built and their model loaded and run once. Each must work, or fail with a <see cref="ModelLoadException"/> whose message starts with the
/// file's path; any other exception, or a mutant running past <see cref="PerMutantTimeout"/>, fails with the seed and the
/// mutation. Two other stops are counted apart: a <see cref="NonFiniteException"/> (a mutant that points a tensor at other
/// bytes makes NaN weights, which the forward pass refuses by layer, as for any checkpoint), and a block format this build
/// has no CPU kernel for (<see cref="NotSupportedException"/>).
/// </summary>
public sealed class GgufFuzzTests(ITestOutputHelper output) : IDisposable
{
    static readonly int Seed = FuzzReport.EnvInt("DAOP_FUZZ_SEED", 20251205);
    static readonly TimeSpan Budget = TimeSpan.FromSeconds(FuzzReport.EnvInt("DAOP_FUZZ_SECONDS", 12));
    static readonly int MaxMutants = (int)(3000 * Math.Max(1, Budget.TotalSeconds / 12));
    static readonly TimeSpan PerMutantTimeout = FuzzReport.HangAfter;

    readonly string _dir = Directory.CreateTempSubdirectory("daop-gguf-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    enum Kind { FlipByte, Edge32, Edge64, Truncate, DeleteRange, DuplicateRange, SwapRanges }

    static readonly ulong[] Edges = [0, 1, 2, 3, 7, 8, 31, 32, 33, 64, 255, 256, 4096, 1 << 20, int.MaxValue, uint.MaxValue, 1UL << 32,
        long.MaxValue, ulong.MaxValue, 1UL << 63];

    [Fact]
    public void MutatedHeadersLoadOrFailWithModelLoadException()
    {
        string[] sources = [GgufFixtureFiles.Committed("mixtral-tiny-q8_0.gguf"), GgufFixtureFiles.Committed("qwen2moe-tiny-bf16.gguf")];
        var originals = sources.Select(File.ReadAllBytes).ToArray();
        var headerEnds = sources.Select(HeaderEnd).ToArray();
        var rng = new Random(Seed);
        int loaded = 0, rejected = 0, noKernel = 0, nonFinite = 0, i = 0;
        var failures = new Dictionary<string, string>();
        var sw = Stopwatch.StartNew();
        for (; FuzzReport.KeepGoing(i, MaxMutants, sw, Budget) && failures.Count < 10; i++)
        {
            int s = rng.Next(sources.Length);
            var (bytes, what) = rng.Next(3) == 0 ? MutateValue(sources[s], rng) : Mutate(originals[s], headerEnds[s], rng);
            string path = Path.Combine(_dir, $"mutant{i % 4}.gguf");
            File.WriteAllBytes(path, bytes);
            var (finished, e) = FuzzReport.RunIsolated(() => Load(path, bytes.Length), PerMutantTimeout);
            if (!finished)
            {
                failures.TryAdd("timeout", $"mutant {i} (seed {Seed}, {Path.GetFileName(sources[s])}: {what}): still loading after {PerMutantTimeout.TotalSeconds} s");
                break;
            }
            if (e == null) loaded++;
            else if (e is ModelLoadException && e.Message.StartsWith(path + ":", StringComparison.Ordinal)) rejected++;
            else if (e is NotSupportedException && e.Message.Contains("no CPU kernel", StringComparison.Ordinal)) noKernel++;
            else if (e is NonFiniteException) nonFinite++; // an offset moved onto other bytes: NaN weights, refused by name
            else failures.TryAdd(FuzzReport.Site(e), $"mutant {i} (seed {Seed}, {Path.GetFileName(sources[s])}: {what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
        output.WriteLine($"gguf fuzz: {i} mutants in {sw.Elapsed.TotalSeconds:F1} s: {loaded} loaded and ran, {rejected} rejected with ModelLoadException, " +
            $"{noKernel} stopped at a missing block-format kernel, {nonFinite} stopped at non-finite weights, {failures.Count} failures");
        Assert.True(failures.Count == 0, string.Join("\n\n", failures.Values));
    }

    // Open, check every tensor lies in the file, build the tokenizer, load the model and run two tokens.
    static void Load(string path, long length)
    {
        using var c = GgufCheckpoint.Open(path);
        foreach (var t in c.Tensors)
            if (t.Offset < c.Files[0].DataOffset || t.Offset + t.ByteLength > length)
                throw new InvalidOperationException($"tensor '{t.Name}' [{t.Offset}, {t.Offset + t.ByteLength}) accepted outside the file");
        try { _ = GgufTokenizer.Load(c.Metadata); }
        catch (ModelLoadException) { } // a broken vocabulary: the model may still load (MoeModel does not need one)
        try { if (c.Metadata.StringOrNull("tokenizer.chat_template") is { } t) _ = ChatTemplate.Parse(t); }
        catch (ChatTemplateException) { } // a template outside the supported Jinja subset: refused by name, as from a folder
        catch (ModelLoadException) { }
        using var model = MoeModel.LoadGguf(path, new ModelOptions { ContextLength = 16 });
        var logits = new float[model.Config.VocabSize];
        model.Forward([Math.Min(1, model.Config.VocabSize - 1), 0], 0, model.NewCache(), logits);
    }

    // Keys the families and the tokenizer read (of both architectures), so value mutants reach their checks.
    static readonly string[] Keys =
    [
        "general.architecture", "general.alignment", "{a}.block_count", "{a}.context_length", "{a}.embedding_length",
        "{a}.feed_forward_length", "{a}.expert_feed_forward_length", "{a}.expert_shared_feed_forward_length", "{a}.expert_count",
        "{a}.expert_used_count", "{a}.attention.head_count", "{a}.attention.head_count_kv", "{a}.attention.key_length",
        "{a}.attention.value_length", "{a}.attention.layer_norm_rms_epsilon", "{a}.attention.sliding_window", "{a}.rope.dimension_count",
        "{a}.rope.freq_base", "{a}.rope.scaling.type", "{a}.rope.scaling.factor", "{a}.rope.scaling.original_context_length",
        "{a}.rope.scaling.attn_factor", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "split.count", "split.no",
    ];

    static readonly object[] Values =
    [
        0u, 1u, 2u, 3u, 7u, 64u, 4096u, uint.MaxValue, -1, 0, 1, int.MaxValue, 0f, -1f, 1e-30f, 1e30f, float.NaN, float.PositiveInfinity,
        0.5f, 10000f, 1e6, double.NaN, true, false, "", "llama", "qwen2moe", "phimoe", "olmoe", "qwen3moe", "yarn", "linear", "longrope",
        "gpt2", "llama", "qwen2", "{{ x }}", "{% for %}", new[] { 1, 2 }, new[] { "a b" }, new[] { 1f }, Array.Empty<string>(), ulong.MaxValue,
        (ushort)5, (byte)0, long.MinValue,
    ];

    // A metadata value replaced (or removed) and the file rewritten with its tensors as they are.
    static (byte[], string) MutateValue(string source, Random rng)
    {
        using var c = GgufCheckpoint.Open(source);
        string arch = c.Architecture, key = Keys[rng.Next(Keys.Length)].Replace("{a}", arch, StringComparison.Ordinal);
        object? value = rng.Next(6) == 0 ? null : Values[rng.Next(Values.Length)];
        var w = new GgufWriter();
        foreach (var (k, v) in c.Metadata.Values)
            if (k != key) w.AddRaw(k, v.Type, v.Data, v.ElementType);
        if (value != null) w.Add(key, value);
        foreach (var t in c.Files[0].TensorList) w.Tensor(t.Name, t.Type, t.Dims, c.Files[0].Bytes(t).ToArray());
        return (w.ToBytes(), value == null ? $"remove {key}" : $"{key} = {value} ({value.GetType().Name})");
    }

    // The end of the tensor infos: everything the reader parses. Mutations stay in it (and a little past it).
    static int HeaderEnd(string path)
    {
        using var f = GgufFile.Open(path);
        return (int)f.DataOffset;
    }

    static (byte[], string) Mutate(byte[] original, int headerEnd, Random rng)
    {
        var b = (byte[])original.Clone();
        var kind = (Kind)rng.Next(Enum.GetValues<Kind>().Length);
        int at = rng.Next(4, headerEnd);
        switch (kind)
        {
            case Kind.FlipByte:
                b[at] ^= (byte)(1 << rng.Next(8));
                return (b, $"flip a bit of byte {at}");
            case Kind.Edge32:
            {
                uint v = (uint)Edges[rng.Next(Edges.Length)];
                if (at + 4 <= b.Length) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v);
                return (b, $"uint32 {v} at {at}");
            }
            case Kind.Edge64:
            {
                ulong v = Edges[rng.Next(Edges.Length)];
                if (at + 8 <= b.Length) BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v);
                return (b, $"uint64 {v} at {at}");
            }
            case Kind.Truncate:
                return (b[..at], $"truncate to {at} bytes");
            case Kind.DeleteRange:
            {
                int n = rng.Next(1, 64);
                return ([.. b.AsSpan(0, at), .. b.AsSpan(Math.Min(b.Length, at + n))], $"delete {n} bytes at {at}");
            }
            case Kind.DuplicateRange:
            {
                int n = rng.Next(1, 64);
                var piece = b.AsSpan(at, Math.Min(n, b.Length - at));
                return ([.. b.AsSpan(0, at), .. piece, .. b.AsSpan(at)], $"duplicate {n} bytes at {at}");
            }
            default:
            {
                int other = rng.Next(4, headerEnd), n = rng.Next(1, 16);
                if (at + n <= b.Length && other + n <= b.Length)
                {
                    var tmp = b.AsSpan(at, n).ToArray();
                    b.AsSpan(other, n).CopyTo(b.AsSpan(at));
                    tmp.CopyTo(b.AsSpan(other));
                }
                return (b, $"swap {n} bytes at {at} and {other}");
            }
        }
    }
}
