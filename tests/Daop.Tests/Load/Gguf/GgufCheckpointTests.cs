using Daop.Engine.Load;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Kernels;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// GGUF files as a tensor source: expert matrices are views into the stacked tensors, q/k rows come back in Hugging Face
/// order, types map one to one, split sets load as one file, and what cannot load says which tensor, key or part.
/// </summary>
public sealed unsafe class GgufCheckpointTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("daop-gguf-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    [Fact]
    public void ExpertsAreViewsIntoTheStackedTensorsWithTheCheckpointsBytes()
    {
        using var model = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"));
        using var st = TensorStore.OpenDirectory(TestPaths.Fixture("mixtral-tiny"));
        var first = model.Weights.Layers[1].Experts[0].Up;
        for (int e = 0; e < 8; e++)
        {
            var up = model.Weights.Layers[1].Experts[e].Up; // [I, H]
            Assert.Equal(DType.BF16, up.Type);
            Assert.True(first.Data + (long)e * up.ByteLength == up.Data, "an expert is a view at its place in the stack");
            var hf = st.Matrix($"model.layers.1.block_sparse_moe.experts.{e}.w3.weight", up.Rows, up.Cols);
            Assert.True(new ReadOnlySpan<byte>(hf.Data, (int)hf.ByteLength).SequenceEqual(new ReadOnlySpan<byte>(up.Data, (int)up.ByteLength)));
        }
    }

    [Fact]
    public void QkRowsOfLlamaFilesAreBackInHuggingFaceOrder()
    {
        // The file holds LlamaModel.permute's rows (checked: unlike the checkpoint's); the model holds the checkpoint's.
        using var model = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-odd-bf16.gguf"));
        using var st = TensorStore.OpenDirectory(TestPaths.Fixture("mixtral-odd"));
        using var gguf = GgufCheckpoint.Open(GgufFixtureFiles.Committed("mixtral-odd-bf16.gguf"));
        for (int l = 0; l < model.Config.NumLayers; l++)
        {
            var attn = (Daop.Engine.Model.Layers.GqaAttention)model.Weights.Layers[l].Attention;
            foreach (var (m, hfName, ggName) in new[] { (attn.Q.W, "q_proj", "attn_q"), (attn.K.W, "k_proj", "attn_k") })
            {
                var hf = st.Matrix($"model.layers.{l}.self_attn.{hfName}.weight", m.Rows, m.Cols);
                var stored = gguf.Matrix($"blk.{l}.{ggName}.weight", m.Rows, m.Cols);
                Assert.True(Bytes(hf).SequenceEqual(Bytes(m)), $"layer {l} {hfName}: rows not restored");
                Assert.False(Bytes(hf).SequenceEqual(Bytes(stored)), $"layer {l} {hfName}: the file should hold permuted rows");
            }
        }
    }

    static ReadOnlySpan<byte> Bytes(in WeightMatrix m) => new(m.Data, (int)m.ByteLength);

    [Fact]
    public void PermutationIsTheInverseOfTheConvertersForAnyHeadSize()
    {
        foreach (int d in new[] { 2, 4, 16, 128 })
            for (int heads = 1; heads <= 3; heads++)
            {
                int rows = heads * d;
                var x = Enumerable.Range(0, rows).Select(i => (float)i).ToArray();
                var stored = HfToGguf.Permute(x, [rows], heads);
                for (int k = 0; k < rows; k++) Assert.Equal(x[k], stored[RopeRowOrder.Stored(k, d)]);
            }
    }

    [Fact]
    public void TypesMapToDaopFormatsAndTheRestNameTheTensor()
    {
        var w = new GgufWriter()
            .Tensor("f16", GgmlType.F16, [32, 2], new byte[128]).Tensor("bf16", GgmlType.BF16, [32, 2], new byte[128])
            .Tensor("q8", GgmlType.Q8_0, [32, 2], new byte[68]).Tensor("q4", GgmlType.Q4_0, [32, 2], new byte[36])
            .Tensor("mx", GgmlType.MXFP4, [32, 2], new byte[34]).Tensor("k", GgmlType.Q4_K, [256, 2], new byte[288])
            .Tensor("k5", GgmlType.Q5_K, [256, 1], new byte[176]).Tensor("k6", GgmlType.Q6_K, [512, 1], new byte[420])
            .Tensor("q3", GgmlType.Q3_K, [256, 1], new byte[110]).Tensor("q2", GgmlType.Q2_K, [256, 1], new byte[84]).Tensor("iq", GgmlType.IQ2_XXS, [256, 1], new byte[66])
            .Tensor("stack", GgmlType.Q8_0, [32, 2, 3], new byte[3 * 68]).Tensor("q8v", GgmlType.Q8_0, [32], new byte[34]).Tensor("v", GgmlType.F16, [4], [0, 0x3C, 0, 0xC0, 0, 0, 0, 0x7C])
            .Tensor("q41", GgmlType.Q4_1, [32, 2], new byte[40]).Tensor("q50", GgmlType.Q5_0, [64, 1], new byte[44]).Tensor("q51", GgmlType.Q5_1, [32, 2], BadMin(24, 2))
            .Tensor("q81", GgmlType.Q8_1, [32, 1], new byte[36]);
        // Q5_1 row 1's min (fp16 at byte 2 of its block) is +Inf
        static byte[] BadMin(int bb, int blocks)
        {
            var b = new byte[bb * blocks];
            b[bb + 3] = 0x7C;
            return b;
        }
        using var c = GgufCheckpoint.Open(w.Write(Path.Combine(_tmp, "types.gguf")));
        Assert.Equal(DType.Q4_1, c.Matrix("q41", 2, 32).Type);
        Assert.Equal(DType.Q5_0, c.Matrix("q50", 1, 64).Type);
        Assert.Equal(DType.Q5_1, c.Matrix("q51", 2, 32).Type);
        Assert.Equal(-1, c.FirstNonFinite("q41"));
        Assert.Equal(32, c.FirstNonFinite("q51"));
        Assert.Equal(DType.F16, c.Matrix("f16", 2, 32).Type);
        Assert.Equal(DType.BF16, c.Matrix("bf16", 2, 32).Type);
        Assert.Equal(DType.Q8_0, c.Matrix("q8", 2, 32).Type);
        Assert.Equal(DType.Q4_0, c.Matrix("q4", 2, 32).Type);
        Assert.Equal(DType.MXFP4, c.Matrix("mx", 2, 32).Type);
        Assert.Equal(68, c.Matrix("stack[1]", 2, 32).Data - c.Matrix("stack[0]", 2, 32).Data);
        Assert.Equal([1f, -2, 0, float.PositiveInfinity], c.Vector("v", 4));
        Assert.Equal(3, c.FirstNonFinite("v"));
        string Fails(Action a) => Assert.Throws<ModelLoadException>(a).Message;
        Assert.Equal(DType.Q4_K, c.Matrix("k", 2, 256).Type);
        Assert.Equal(DType.Q5_K, c.Matrix("k5", 1, 256).Type);
        Assert.Equal(DType.Q6_K, c.Matrix("k6", 1, 512).Type);
        Assert.Equal(-1, c.FirstNonFinite("k"));
        Assert.Equal(DType.Q3_K, c.Matrix("q3", 1, 256).Type);
        Assert.Equal(DType.Q2_K, c.Matrix("q2", 1, 256).Type);
        Assert.Contains("tensor 'iq' is iq2_xxs, which Daop cannot compute with yet", Fails(() => c.Matrix("iq", 1, 256)));
        Assert.Contains("tensor 'q81' is q8_1, which Daop cannot compute with yet", Fails(() => c.Matrix("q81", 1, 32)));
        Assert.Contains("tensor 'q8' has shape [2, 32], expected [32, 2]", Fails(() => c.Matrix("q8", 32, 2)));
        Assert.Contains("tensor 'stack' has shape [3, 2, 32], expected [2, 32] (matrix 3 of a stack)", Fails(() => c.Matrix("stack[3]", 2, 32)));
        Assert.Contains("tensor 'q8v' is q8_0; a vector must be f32, f16 or bf16", Fails(() => c.Vector("q8v", 32)));
        var missing = Assert.Throws<ModelLoadException>(() => c.Matrix("nope|nope.0", 1, 1));
        Assert.Equal($"{c.Path}: missing tensor 'nope'", missing.Message);
        Assert.NotNull(missing.MissingTensor);
    }

    [Fact]
    public void OlderFilesWithOneTensorPerExpertLoad()
    {
        // Files converted before April 2024 store blk.N.ffn_gate.E.weight; the table's alternative name finds them.
        using var gguf = GgufCheckpoint.Open(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"));
        var w = new GgufWriter();
        foreach (var (key, v) in gguf.Metadata.Values) w.AddRaw(key, v.Type, v.Data, v.ElementType);
        var f = gguf.Files[0];
        foreach (var t in f.TensorList)
        {
            if (!t.Name.Contains("_exps.", StringComparison.Ordinal)) { w.Tensor(t.Name, t.Type, t.Dims, f.Bytes(t).ToArray()); continue; }
            long per = t.ByteLength / t.Dims[2];
            for (int e = 0; e < t.Dims[2]; e++)
                w.Tensor(t.Name.Replace("_exps.", $".{e}.", StringComparison.Ordinal), t.Type, t.Dims[..2], f.Bytes(t).Slice((int)(e * per), (int)per).ToArray());
        }
        string old = w.Write(Path.Combine(_tmp, "per-expert.gguf"));
        using var a = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"));
        using var b = MoeModel.Load(old);
        Assert.Equal(LlamaCppReference.DaopLogits(a, "mixtral-tiny"), LlamaCppReference.DaopLogits(b, "mixtral-tiny"));
    }

    [Fact]
    public void SplitSetsLoadFromAnyPartAndEqualTheSingleFile()
    {
        var parts = Directory.GetFiles(GgufFixtureFiles.Dir, "mixtral-tiny-split-*.gguf").Order(StringComparer.Ordinal).ToArray();
        Assert.True(parts.Length >= 2, "the fixture is a split set written by llama-gguf-split");
        using var single = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"));
        var want = LlamaCppReference.DaopLogits(single, "mixtral-tiny");
        foreach (string part in new[] { parts[0], parts[^1] })
        {
            using var split = MoeModel.Load(part);
            Assert.Equal(parts[0], split.Directory);
            Assert.Equal(want, LlamaCppReference.DaopLogits(split, "mixtral-tiny"));
        }
        using var c = GgufCheckpoint.Open(parts[1]);
        Assert.Equal(parts.Length, c.Files.Count);
    }

    [Fact]
    public void BrokenSplitSetsNameThePartAndKey()
    {
        string Part(int no, int count, int tensors = 1, bool tensor = true, int? declared = null)
        {
            var w = new GgufWriter().Add("split.no", (ushort)no).Add("split.count", (ushort)(declared ?? count)).Add("split.tensors.count", tensors);
            if (tensor) w.F32($"t{no}", [1], [no]);
            return w.Write(Path.Combine(_tmp, $"m-{no + 1:D5}-of-{count:D5}.gguf"));
        }
        string Fails(string path) => Assert.Throws<ModelLoadException>(() => { using var _ = GgufCheckpoint.Open(path); }).Message;

        string first = Part(0, 2, tensors: 2);
        Assert.Equal($"{Path.Combine(_tmp, "m-00002-of-00002.gguf")}: file not found (part of the split model {first})", Fails(first));
        string second = Part(1, 2);
        using (var ok = GgufCheckpoint.Open(second)) Assert.Equal(2, ok.Tensors.Count());
        Part(1, 2, declared: 3);
        Assert.Contains("m-00002-of-00002.gguf: key 'split.count' is 3, but the file name says the set has 2 parts", Fails(first));
        Part(1, 2);
        Part(0, 2, tensors: 5);
        Assert.Contains("key 'split.tensors.count' is 5, but the 2 parts hold 2 tensors", Fails(first));
        var lone = new GgufWriter().Add("split.count", (ushort)3).Write(Path.Combine(_tmp, "lone.gguf"));
        Assert.Contains("key 'split.count' is 3: the file is part of a split model", Fails(lone));
    }

    [Fact]
    public void FoldersHoldingOneGgufModelLoadAndOthersAreNamed()
    {
        string one = Directory.CreateDirectory(Path.Combine(_tmp, "one")).FullName;
        File.Copy(GgufFixtureFiles.Committed("qwen3moe-tiny-bf16.gguf"), Path.Combine(one, "model.gguf"));
        using (var m = MoeModel.Load(one)) Assert.Equal("qwen3_moe", m.Config.ModelType);
        File.Copy(GgufFixtureFiles.Committed("phimoe-tiny-bf16.gguf"), Path.Combine(one, "other.gguf"));
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(one));
        Assert.Equal($"{one}: holds 2 GGUF models (model.gguf, other.gguf); give the file to load", e.Message);
        Assert.Null(GgufSplits.Find(TestPaths.Fixture("mixtral-tiny"))); // a Hugging Face folder stays one
        Assert.Equal(Path.Combine(GgufFixtureFiles.Dir, "x-00001-of-00002.gguf"),
            GgufSplits.Parts(Path.Combine(GgufFixtureFiles.Dir, "x-00002-of-00002.gguf"))[0]);
    }

    [Fact]
    public void FilesWithoutAnOutputTensorTieTheLmHeadToTheEmbedding()
    {
        using var gguf = GgufCheckpoint.Open(GgufFixtureFiles.Committed("qwen2moe-tiny-bf16.gguf"));
        var w = new GgufWriter();
        foreach (var (key, v) in gguf.Metadata.Values) w.AddRaw(key, v.Type, v.Data, v.ElementType);
        foreach (var t in gguf.Files[0].TensorList.Where(t => t.Name != "output.weight"))
            w.Tensor(t.Name, t.Type, t.Dims, gguf.Files[0].Bytes(t).ToArray());
        using var model = MoeModel.Load(w.Write(Path.Combine(_tmp, "tied.gguf")));
        Assert.True(model.Config.LmHead.TiedToEmbedding);
        Assert.True(model.Weights.LmHead.W.Data == model.Weights.Embed.Data);
    }

    [Fact]
    public void QuantizingExpertsOnLoadWritesLlamaQuantizesBits()
    {
        // The bf16 file with --expert-dtype q4_0 holds exactly what llama-quantize --pure wrote into mixtral-tiny-q4_0.gguf.
        using var converted = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"), new ModelOptions { ExpertDType = DType.Q4_0 });
        using var quantized = MoeModel.Load(GgufFixtureFiles.Committed("mixtral-tiny-q4_0.gguf"));
        Assert.NotNull(converted.Conversion);
        for (int l = 0; l < converted.Config.NumLayers; l++)
            for (int e = 0; e < converted.Config.NumExperts; e++)
            {
                var (a, b) = (converted.Weights.Layers[l].Experts[e], quantized.Weights.Layers[l].Experts[e]);
                foreach (var (x, y) in new[] { (a.Gate, b.Gate), (a.Up, b.Up), (a.Down, b.Down) })
                {
                    Assert.Equal(DType.Q4_0, x.Type);
                    Assert.True(Bytes(x).SequenceEqual(Bytes(y)), $"layer {l} expert {e}");
                }
            }
        Assert.Equal(DType.BF16, converted.Weights.Embed.Type); // kept as stored
    }

    [Fact]
    public void HubCacheEntriesOfGgufRepositoriesLoad()
    {
        // models--org--name/{refs/main, snapshots/<rev>/model.gguf}: the entry resolves to its snapshot, which holds one model.
        string entry = Directory.CreateDirectory(Path.Combine(_tmp, "models--org--tiny-GGUF")).FullName;
        string snap = Directory.CreateDirectory(Path.Combine(entry, "snapshots", "abc123")).FullName;
        Directory.CreateDirectory(Path.Combine(entry, "refs"));
        File.WriteAllText(Path.Combine(entry, "refs", "main"), "abc123");
        File.Copy(GgufFixtureFiles.Committed("olmoe-tiny-mha-bf16.gguf"), Path.Combine(snap, "olmoe-tiny-mha-bf16.gguf"));
        using var model = Daop.Engine.Api.DaopModel.Load(entry);
        Assert.Equal("olmoe", model.Info.Architecture);
        Assert.Equal(Path.Combine(snap, "olmoe-tiny-mha-bf16.gguf"), model.Info.Path);
    }

    [Fact]
    public void UnsupportedArchitecturesAndIncompleteDenseLlamaFilesAreNamed()
    {
        string Write(string name, GgufWriter w) => w.Write(Path.Combine(_tmp, name));
        // llama without expert_count is a dense Llama (not Mixtral): its own keys are then required.
        var dense = Write("dense.gguf", new GgufWriter().Add("general.architecture", "llama").Add("llama.block_count", 1u));
        Assert.Equal($"{dense}: key 'llama.feed_forward_length' is missing",
            Assert.Throws<ModelLoadException>(() => MoeModel.Load(dense)).Message);
        var gemma = Write("gemma.gguf", new GgufWriter().Add("general.architecture", "gemma2"));
        Assert.StartsWith($"{gemma}: key 'general.architecture' 'gemma2' is not a supported architecture (supported: llama, qwen2moe, qwen3moe, olmoe, phimoe, granitemoe, qwen2",
            Assert.Throws<ModelLoadException>(() => MoeModel.Load(gemma)).Message);
    }

    [Fact]
    public void MetadataThatContradictsTheTensorsBlamesTheMetadata()
    {
        using var gguf = GgufCheckpoint.Open(GgufFixtureFiles.Committed("mixtral-tiny-bf16.gguf"));
        var w = new GgufWriter();
        foreach (var (key, v) in gguf.Metadata.Values)
            w.AddRaw(key, v.Type, key == "llama.block_count" ? 4u : v.Data, v.ElementType);
        foreach (var t in gguf.Files[0].TensorList) w.Tensor(t.Name, t.Type, t.Dims, gguf.Files[0].Bytes(t).ToArray());
        string path = w.Write(Path.Combine(_tmp, "layers.gguf"));
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(path));
        Assert.Equal($"{path}: missing tensor 'blk.3.attn_norm.weight', which the metadata of {path} (llama, 4 layers, 8 experts) calls for", e.Message);
    }
}
