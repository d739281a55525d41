using System.Text.Json.Nodes;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;

namespace Daop.Tests.Load.Config;

/// <summary>Bad configs and checkpoints fail with a message that names the file and what is wrong.</summary>
public class ModelLoadErrorTests
{
    static ModelLoadException LoadFails(TempModelDir dir) => Assert.Throws<ModelLoadException>(() => MoeModel.Load(dir.Path));

    [Fact]
    public void UnknownArchitectureIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["model_type"] = "gemma2");
        var e = LoadFails(dir);
        Assert.Contains("config.json", e.Message);
        Assert.Contains("'gemma2' is not a supported architecture", e.Message);
        Assert.Contains("mixtral", e.Message);
    }

    [Theory]
    [InlineData("hidden_size", "field 'hidden_size' is missing")]
    [InlineData("num_local_experts", "field 'num_local_experts' is missing")]
    [InlineData("model_type", "field 'model_type' is missing")]
    public void MissingFieldIsNamed(string field, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c.Remove(field));
        Assert.Contains(message, LoadFails(dir).Message);
    }

    [Theory]
    [InlineData("num_key_value_heads", 3, "must be a positive divisor of num_attention_heads")]
    [InlineData("num_experts_per_tok", 9, "must be between 1 and the number of experts (8)")]
    [InlineData("hidden_size", -64, "must be a positive integer, found -64")]
    public void BadValueIsNamed(string field, int value, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c[field] = value);
        var e = LoadFails(dir);
        Assert.Contains($"'{field}'", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void WrongTypeIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["vocab_size"] = "lots");
        Assert.Contains("field 'vocab_size' must be an integer, found \"lots\"", LoadFails(dir).Message);
    }

    [Fact]
    public void InvalidJsonIsReported()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        File.WriteAllText(dir.ConfigPath, "{ \"model_type\": \"mixtral\", ");
        var e = LoadFails(dir);
        Assert.Contains("config.json: not valid JSON", e.Message);
    }

    [Fact]
    public void UnsupportedRopeScalingIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["rope_parameters"] = new JsonObject { ["rope_theta"] = 10000.0, ["rope_type"] = "wavy" });
        Assert.Contains("'wavy' is not a supported RoPE scaling", LoadFails(dir).Message);
    }

    [Fact]
    public void UnsupportedActivationIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["hidden_act"] = "gelu");
        Assert.Contains("field 'hidden_act' 'gelu' is not supported", LoadFails(dir).Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditWeightsHeader(h => h.Remove("model.layers.1.block_sparse_moe.experts.5.w2.weight"));
        var e = LoadFails(dir);
        Assert.Contains("missing tensor 'model.layers.1.block_sparse_moe.experts.5.w2.weight'", e.Message);
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("the config does not match the checkpoint", e.Message); // the loader points at the config too
        Assert.Equal("model.layers.1.block_sparse_moe.experts.5.w2.weight", Assert.IsType<ModelLoadException>(e.InnerException).MissingTensor);
    }

    [Fact]
    public void ConfigThatDisagreesWithWeightsNamesTheTensorAndShapes()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["intermediate_size"] = 100);
        var e = LoadFails(dir);
        Assert.Contains("experts.0.w1.weight' has shape [96, 64], expected [100, 64]", e.Message);
    }

    [Fact]
    public void UnsupportedWeightDtypeIsNamed()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        // Re-label a bf16 [8, 64] router as I16: same byte size, so only the dtype check can catch it.
        dir.EditWeightsHeader(h => h["model.layers.0.block_sparse_moe.gate.weight"]!["dtype"] = "I16");
        Assert.Contains("gate.weight' has dtype I16; Daop computes with BF16, F16 or F32 weights", LoadFails(dir).Message);
    }

    [Fact]
    public void MissingFolderIsNamed()
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load("/nonexistent/daop-model"));
        Assert.Contains("/nonexistent/daop-model: model folder not found", e.Message);
    }

    [Fact]
    public void OlderTopLevelRopeThetaGivesTheSameLogits()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("qwen2moe-tiny"));
        dir.EditConfig(c =>
        {
            double theta = c["rope_parameters"]!["rope_theta"]!.GetValue<double>();
            c.Remove("rope_parameters");
            c["rope_theta"] = theta;
        });
        var (_, cfg) = ModelFamilies.ReadConfig(dir.ConfigPath);
        Assert.Equal(1_000_000.0, cfg.Rope.Theta);
        int[] tokens = [1, 5, 9, 200, 3];
        using var a = MoeModel.Load(TestPaths.Fixture("qwen2moe-tiny"));
        using var b = MoeModel.Load(dir.Path);
        var la = new float[tokens.Length * a.Config.VocabSize];
        var lb = new float[la.Length];
        a.Forward(tokens, 0, a.NewCache(), la, allLogits: true);
        b.Forward(tokens, 0, b.NewCache(), lb, allLogits: true);
        Assert.Equal(la, lb);
    }

    [Fact]
    public void PromptPastTheContextIsRefused()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 16 });
        var prompt = Enumerable.Range(1, 20).ToArray();
        var e = Assert.Throws<ContextOverflowException>(() => new Generator(model).Generate(prompt, new SamplingOptions()));
        Assert.Contains("the prompt has 20 tokens but the context holds 16", e.Message);
    }

    [Fact]
    public void TokenOutsideVocabularyIsRefused()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"));
        var e = Assert.Throws<ArgumentException>(() => new Generator(model).Generate([1, 512], new SamplingOptions()));
        Assert.Contains("token id 512 is outside the vocabulary [0, 512)", e.Message);
    }
}
