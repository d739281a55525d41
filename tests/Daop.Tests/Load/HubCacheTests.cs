using Daop.Engine.Api;
using Daop.Engine.Load;

namespace Daop.Tests.Load;

/// <summary>
/// The Hugging Face hub cache: <c>models--org--name/snapshots/&lt;rev&gt;/*</c> are relative symbolic links into <c>blobs/</c>,
/// and <c>refs/main</c> names the snapshot. A loader that takes a file's size from the link reads the length of a path.
/// </summary>
public sealed class HubCacheTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "daop-hub-" + Guid.NewGuid().ToString("N"));
    const string Rev = "0123456789abcdef0123456789abcdef01234567";

    public HubCacheTests()
    {
        string blobs = Path.Combine(_root, "blobs"), snap = Path.Combine(_root, "snapshots", Rev);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snap);
        Directory.CreateDirectory(Path.Combine(_root, "refs"));
        File.WriteAllText(Path.Combine(_root, "refs", "main"), Rev);
        int i = 0;
        foreach (string f in Directory.GetFiles(TestPaths.DefaultModel))
        {
            string blob = $"blob{i++:D4}";
            File.Copy(f, Path.Combine(blobs, blob));
            File.CreateSymbolicLink(Path.Combine(snap, Path.GetFileName(f)), Path.Combine("..", "..", "blobs", blob));
        }
    }

    public string Snapshot => Path.Combine(_root, "snapshots", Rev);

    [Fact]
    public async Task SnapshotFolderOfLinksLoadsAndGeneratesLikeTheOriginal()
    {
        var settings = new GenerationSettings { MaxTokens = 12 };
        using var original = DaopModel.Load(TestPaths.DefaultModel);
        using var linked = DaopModel.Load(Snapshot);
        Assert.Equal(await Collect(original.GenerateAsync("def add(a, b):", settings)), await Collect(linked.GenerateAsync("def add(a, b):", settings)));
    }

    [Fact]
    public void CacheEntryResolvesToTheSnapshotThatRefsMainNames()
    {
        Assert.Equal(Snapshot, ModelFiles.ResolveHubCache(_root));
        using var model = DaopModel.Load(_root);
        Assert.Equal(8, model.Info.Experts);
    }

    [Fact]
    public void DanglingLinkIsNamed()
    {
        File.Delete(Path.Combine(_root, "blobs", "blob0000"));
        string first = Path.GetFileName(Directory.GetFiles(TestPaths.DefaultModel)[0]);
        string link = Path.Combine(Snapshot, first);
        var e = Assert.Throws<ModelLoadException>(() => ModelFiles.ReadAll(link, 1 << 30));
        Assert.Contains(link, e.Message);
        Assert.Contains("symbolic link whose target is missing", e.Message);
    }

    static async Task<string> Collect(IAsyncEnumerable<string> pieces)
    {
        var sb = new System.Text.StringBuilder();
        await foreach (string p in pieces) sb.Append(p);
        return sb.ToString();
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A tokenizer whose ids run past the model's vocabulary is refused at load, not on every later request.</summary>
public class VocabularyConsistencyTests
{
    [Fact]
    public void TokenizerLargerThanTheEmbeddingIsRefused()
    {
        using var dir = new Daop.Tests.Load.Config.TempModelDir(TestPaths.Fixture("mixtral-tiny")); // vocabulary 512
        File.Copy(Path.Combine(TestPaths.DefaultModel, "tokenizer.json"), Path.Combine(dir.Path, "tokenizer.json")); // 4096 ids
        var e = Assert.Throws<ModelLoadException>(() => DaopModel.Load(dir.Path));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("ids up to 4095", e.Message);
        Assert.Contains("has 512", e.Message);
    }
}
