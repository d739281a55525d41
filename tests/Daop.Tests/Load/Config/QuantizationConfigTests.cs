using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Tests.Model;

namespace Daop.Tests.Load.Config;

/// <summary>config.json's quantization_config is read and checked like every other field: errors name the file, field and value.</summary>
public class QuantizationConfigTests
{
    static ModelLoadException Fails(Action<JsonObject> edit)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(edit);
        var e = Assert.Throws<ModelLoadException>(() => ModelFamilies.ReadConfig(dir.ConfigPath));
        Assert.Contains(dir.ConfigPath, e.Message);
        return e;
    }

    static JsonObject Daop(JsonObject format) => new() { ["quant_method"] = "daop", ["version"] = 1, ["format"] = format };

    [Fact]
    public void ReadsWhatQuantizeWrites()
    {
        foreach (var q in new[] { new QuantizationConfig(DType.Q4_0, null), new QuantizationConfig(DType.MXFP4, DType.Q8_0), new QuantizationConfig(null, DType.Q4_0) })
        {
            using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
            dir.EditConfig(c => c["quantization_config"] = q.ToJson());
            Assert.Equal(q, ModelFamilies.ReadConfig(dir.ConfigPath).Config.Quantization);
        }
        Assert.Null(ModelFamilies.ReadConfig(Path.Combine(TestPaths.Fixture("mixtral-tiny"), "config.json")).Config.Quantization);
        Assert.Equal(DType.Q4_0, new QuantizationConfig(DType.Q4_0, DType.Q8_0).For(WeightClass.Experts));
        Assert.Equal(DType.Q8_0, new QuantizationConfig(DType.Q4_0, DType.Q8_0).For(WeightClass.Dense));
        Assert.Null(new QuantizationConfig(DType.Q4_0, DType.Q8_0).For(WeightClass.Kept));
    }

    [Fact]
    public void OtherMethodsAreNamed()
    {
        var e = Fails(c => c["quantization_config"] = new JsonObject { ["quant_method"] = "gptq", ["bits"] = 4 });
        Assert.Contains("quantization_config: field 'quant_method' is 'gptq'", e.Message);
        Assert.Contains("daop quantize", e.Message);
        Assert.Contains("'quant_method' is missing", Fails(c => c["quantization_config"] = new JsonObject { ["format"] = new JsonObject() }).Message);
        Assert.Contains("must be an object", Fails(c => c["quantization_config"] = "q4_0").Message);
        Assert.Contains("field 'version' is 2", Fails(c => c["quantization_config"] = Daop(new JsonObject { ["experts"] = "q4_0" }).With("version", 2)).Message);
    }

    [Theory]
    [InlineData("experts", "q3_k", "field 'experts' is 'q3_k'")]
    [InlineData("experts", "bf16", "field 'experts' is 'bf16'")]   // a float type is stored as itself, not declared
    [InlineData("dense", "q5", "field 'dense' is 'q5'")]
    [InlineData("attention", "q4_0", "field 'attention' is not a weight class")]
    public void UnknownFormatsAndClassesAreNamed(string key, string value, string message)
    {
        var e = Fails(c => c["quantization_config"] = Daop(new JsonObject { [key] = value }));
        Assert.Contains("quantization_config: format", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void AFormatMustNameAClass()
    {
        Assert.Contains("names no quantized weight class", Fails(c => c["quantization_config"] = Daop(new JsonObject())).Message);
        Assert.Contains("field 'format' is missing", Fails(c => c["quantization_config"] = new JsonObject { ["quant_method"] = "daop" }).Message);
        Assert.Contains("field 'experts' must be a string", Fails(c => c["quantization_config"] = Daop(new JsonObject { ["experts"] = 4 })).Message);
    }

    [Fact]
    public void ACheckpointThatContradictsItsConfigNamesTheTensor()
    {
        // A bf16 checkpoint whose config claims q4_0 experts.
        using var dir = new TempModelDir(TestPaths.Fixture("mixtral-tiny"));
        dir.EditConfig(c => c["quantization_config"] = new QuantizationConfig(DType.Q4_0, null).ToJson());
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(dir.Path));
        Assert.Contains("experts.0.w1.weight' has dtype BF16", e.Message);
        Assert.Contains("q4_0", e.Message);
        // A q4_0 checkpoint whose config lost its quantization_config.
        using var q = new TempModelDir(QuantizedModels.EmbeddedQ4);
        q.EditConfig(c => c.Remove("quantization_config"));
        Assert.Contains("has dtype U8", Assert.Throws<ModelLoadException>(() => MoeModel.Load(q.Path)).Message);
        // ... or says mxfp4: the bytes do not fit that format's rows.
        using var m = new TempModelDir(QuantizedModels.EmbeddedQ4);
        m.EditConfig(c => c["quantization_config"] = new QuantizationConfig(DType.MXFP4, null).ToJson());
        var x = Assert.Throws<ModelLoadException>(() => MoeModel.Load(m.Path));
        Assert.Contains("[256, 144]", x.Message);
        Assert.Contains("expected U8 [256, 136]", x.Message);
    }
}

static class JsonObjectExtensions
{
    public static JsonObject With(this JsonObject o, string key, JsonNode? value)
    {
        o[key] = value;
        return o;
    }
}
