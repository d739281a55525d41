using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Model;

namespace Daop.Tests.Load.Config;

/// <summary>Config values that cannot be right (they give NaN, ∞ or impossible allocations) are refused at load, naming the field.</summary>
public class ConfigValueTests
{
    static string LoadFails(TempModelDir dir) => Assert.Throws<ModelLoadException>(() => MoeModel.Load(dir.Path)).Message;

    [Theory]
    [InlineData("rms_norm_eps", 0.0, "must be in (0, 1), found 0")]
    [InlineData("rms_norm_eps", -1e-6, "must be in (0, 1)")]
    [InlineData("rms_norm_eps", 2.0, "must be in (0, 1)")]
    [InlineData("rope_theta", 0.0, "must be positive, found 0")]
    [InlineData("rope_theta", -10000.0, "must be positive")]
    [InlineData("max_position_embeddings", 0.0, "must be positive, found 0")]
    [InlineData("hidden_size", 4194304.0, "must be at most 1048576")]
    [InlineData("vocab_size", 100000000.0, "must be at most 16777216")]
    public void ImpossibleValueIsNamed(string field, double value, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c =>
        {
            c.Remove("rope_parameters"); // so a top-level rope_theta is what is read
            c[field] = value;
        });
        string m = LoadFails(dir);
        Assert.Contains($"'{field}'", m);
        Assert.Contains(message, m);
        Assert.Contains("config.json", m);
    }

    [Fact]
    public void HeadProductThatOverflowsIsRefused()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c =>
        {
            c["num_attention_heads"] = 65536;
            c["num_key_value_heads"] = 1;
            c["head_dim"] = 65536; // 2^32 elements per token: int arithmetic would wrap to 0
        });
        Assert.Contains("'num_attention_heads' times head_dim (65536 x 65536) must be at most", LoadFails(dir));
    }

    [Theory]
    [InlineData("yarn", "factor", 0.0, "'factor' must be positive")]
    [InlineData("llama3", "high_freq_factor", 1.0, "'high_freq_factor' must be greater than low_freq_factor")]
    [InlineData("llama3", "original_max_position_embeddings", 0.0, "'original_max_position_embeddings' must be positive")]
    [InlineData("yarn", "attention_factor", -1.0, "'attention_factor' must be positive")]
    public void BadRopeScalingIsNamed(string type, string field, double value, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c =>
        {
            var rope = new JsonObject
            {
                ["rope_type"] = type, ["rope_theta"] = 10000.0, ["factor"] = 4.0, ["original_max_position_embeddings"] = 1024,
                ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            };
            rope[field] = value;
            c["rope_parameters"] = rope;
        });
        Assert.Contains(message, LoadFails(dir));
    }

    [Fact]
    public void YarnNeedsThetaAboveOne()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["rope_parameters"] = new JsonObject { ["rope_type"] = "yarn", ["rope_theta"] = 1.0, ["factor"] = 2.0 });
        Assert.Contains("must be greater than 1 for yarn scaling", LoadFails(dir));
    }
}

