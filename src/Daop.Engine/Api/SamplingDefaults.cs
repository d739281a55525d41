using System.Text.Json;
using Daop.Engine.Load;

namespace Daop.Engine.Api;

/// <summary>
/// The sampling values a model's <c>generation_config.json</c> sets (<c>temperature</c>, <c>top_p</c>, <c>top_k</c>,
/// <c>min_p</c>, <c>repetition_penalty</c>; <c>"do_sample": false</c> means greedy), each null when the file does not
/// set it. The server uses them for requests that leave a value out, as vLLM does; the library and the command line
/// keep their own defaults.
/// </summary>
/// <param name="Temperature">Temperature (0 when <c>do_sample</c> is false).</param>
/// <param name="TopP">Nucleus threshold in (0, 1].</param>
/// <param name="TopK">Top-k (0 = off).</param>
/// <param name="MinP">Min-p in [0, 1].</param>
/// <param name="RepetitionPenalty">Repetition penalty in (0, 10].</param>
public sealed record SamplingDefaults(float? Temperature, float? TopP, int? TopK, float? MinP, float? RepetitionPenalty)
{
    /// <summary>No defaults (a model without generation_config.json, or one that sets none of these).</summary>
    public static SamplingDefaults None { get; } = new(null, null, null, null, null);

    /// <summary>
    /// Reads the sampling fields of a parsed <c>generation_config.json</c> (<paramref name="file"/> names it in errors);
    /// a field of the wrong type or out of range is a <see cref="ModelLoadException"/> naming the file and field.
    /// </summary>
    public static SamplingDefaults Read(JsonElement root, string file)
    {
        float? Real(string name, double min, double max, bool openMin = false)
        {
            if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d) || d < min || d > max || openMin && d == min)
                throw new ModelLoadException($"{file}: field '{name}' must be a number in {(openMin ? "(" : "[")}{min}, {max}], found {v.GetRawText()}");
            return (float)d;
        }
        int? topK = null;
        if (root.TryGetProperty("top_k", out var k) && k.ValueKind != JsonValueKind.Null)
            topK = k.ValueKind == JsonValueKind.Number && k.TryGetInt32(out int kv) && kv >= 0 ? kv
                : throw new ModelLoadException($"{file}: field 'top_k' must be a whole number >= 0, found {k.GetRawText()}");
        bool? doSample = null;
        if (root.TryGetProperty("do_sample", out var ds) && ds.ValueKind != JsonValueKind.Null)
            doSample = ds.ValueKind is JsonValueKind.True or JsonValueKind.False ? ds.GetBoolean()
                : throw new ModelLoadException($"{file}: field 'do_sample' must be true or false, found {ds.GetRawText()}");
        float? temperature = Real("temperature", 0, 100);
        if (doSample == false) temperature = 0;
        return new SamplingDefaults(temperature, Real("top_p", 0, 1, openMin: true), topK, Real("min_p", 0, 1), Real("repetition_penalty", 0, 10, openMin: true));
    }
}
