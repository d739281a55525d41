using System.Text;
using System.Text.Json;
using Daop.Engine.Api;
using Daop.Engine.Load;
using Daop.Server;

namespace Daop.Tests.Server;

/// <summary>
/// generation_config.json's sampling values: read with their ranges (do_sample false is greedy), offered by
/// <see cref="DaopModel.SamplingDefaults"/>, and used by the server for what a request leaves out; what a request
/// sets wins.
/// </summary>
public class SamplingDefaultsTests
{
    static SamplingDefaults Read(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return SamplingDefaults.Read(doc.RootElement, "gen.json");
    }

    [Fact]
    public void FieldsAreReadAndDoSampleFalseIsGreedy()
    {
        Assert.Equal(new SamplingDefaults(0.6f, 0.95f, 20, 0f, 1.1f),
            Read("""{"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0, "repetition_penalty": 1.1, "eos_token_id": 2}"""));
        Assert.Equal(new SamplingDefaults(0f, null, null, null, null), Read("""{"do_sample": false, "temperature": 0.9}"""));
        Assert.Equal(SamplingDefaults.None, Read("""{"bos_token_id": 1}"""));
    }

    [Theory]
    [InlineData("""{"temperature": -1}""", "temperature")]
    [InlineData("""{"top_p": 0}""", "top_p")]
    [InlineData("""{"top_k": 1.5}""", "top_k")]
    [InlineData("""{"min_p": "0.1"}""", "min_p")]
    [InlineData("""{"repetition_penalty": 0}""", "repetition_penalty")]
    [InlineData("""{"do_sample": "no"}""", "do_sample")]
    public void BadFieldsNameTheFileAndField(string json, string field)
    {
        var e = Assert.Throws<ModelLoadException>(() => Read(json));
        Assert.Contains("gen.json", e.Message);
        Assert.Contains($"'{field}'", e.Message);
    }

    [Fact]
    public void TheServerFillsWhatARequestLeavesOut()
    {
        var defaults = new SamplingDefaults(0.6f, 0.9f, 20, 0.05f, 1.2f);
        var o = new DaopServerOptions();
        var bare = OpenAiRequests.ParseCompletion(Encoding.UTF8.GetBytes("""{"prompt": "x"}"""), o, 64, defaults).Common.Settings;
        Assert.Equal((0.6f, 0.9f, 20, 0.05f, 1.2f), (bare.Temperature, bare.TopP, bare.TopK, bare.MinP, bare.RepetitionPenalty));
        var set = OpenAiRequests.ParseChat(Encoding.UTF8.GetBytes(
            """{"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "top_p": 1, "top_k": 0, "min_p": 0, "repetition_penalty": 1}"""),
            o, 64, defaults).Common.Settings;
        Assert.Equal((0f, 1f, 0, 0f, 1f), (set.Temperature, set.TopP, set.TopK, set.MinP, set.RepetitionPenalty));
        var none = OpenAiRequests.ParseCompletion(Encoding.UTF8.GetBytes("""{"prompt": "x"}"""), o, 64, SamplingDefaults.None).Common.Settings;
        Assert.Equal(1f, none.Temperature); // OpenAI's default
    }

    [Fact]
    public void AModelFolderOffersItsGenerationConfig()
    {
        string dir = Directory.CreateTempSubdirectory("daop-gencfg").FullName;
        try
        {
            foreach (var f in Directory.GetFiles(TestPaths.DefaultModel))
                if (Path.GetFileName(f) != "generation_config.json") File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(f)), f);
            File.WriteAllText(Path.Combine(dir, "generation_config.json"), """{"eos_token_id": 0, "do_sample": true, "temperature": 0.7, "top_k": 40}""");
            using (var m = DaopModel.Load(dir))
                Assert.Equal(new SamplingDefaults(0.7f, null, 40, null, null), m.SamplingDefaults);
            File.WriteAllText(Path.Combine(dir, "generation_config.json"), """{"top_p": 7}""");
            var e = Assert.Throws<ModelLoadException>(() => DaopModel.Load(dir));
            Assert.Contains("generation_config.json", e.Message);
            Assert.Contains("'top_p'", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
