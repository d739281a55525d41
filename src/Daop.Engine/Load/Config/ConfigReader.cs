using System.Text.Json;

namespace Daop.Engine.Load.Config;

/// <summary>
/// Typed access to a config.json object. Every failure names the file and the field, so a user can fix
/// the config without reading our code.
/// </summary>
public sealed class ConfigReader
{
    readonly JsonElement _root;

    /// <summary>Path of the config file, for messages.</summary>
    public string Path { get; }

    /// <summary>Wraps an already-parsed object.</summary>
    public ConfigReader(string path, JsonElement root)
    {
        Path = path;
        _root = root;
    }

    /// <summary>The names of the object's fields, in file order.</summary>
    public IEnumerable<string> FieldNames => _root.EnumerateObject().Select(p => p.Name);

    /// <summary>True if <paramref name="field"/> is present and not null.</summary>
    public bool Has(string field) => _root.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>The raw element, or null when absent or null.</summary>
    public JsonElement? Raw(string field) => Has(field) ? _root.GetProperty(field) : null;

    /// <summary>A required positive integer.</summary>
    public int PositiveInt(string field)
    {
        int v = Int(field);
        if (v <= 0) throw Error(field, $"must be a positive integer, found {v}");
        return v;
    }

    /// <summary>A required integer.</summary>
    public int Int(string field)
    {
        var v = Raw(field) ?? throw Error(field, "is missing");
        return AsInt(field, v);
    }

    /// <summary>An optional integer.</summary>
    public int IntOr(string field, int fallback) => Raw(field) is { } v ? AsInt(field, v) : fallback;

    /// <summary>An optional integer that may be null.</summary>
    public int? IntOrNull(string field) => Raw(field) is { } v ? AsInt(field, v) : null;

    /// <summary>An optional float.</summary>
    public double DoubleOr(string field, double fallback) => Raw(field) is { } v ? AsDouble(field, v) : fallback;

    /// <summary>A required float.</summary>
    public double Double(string field) => AsDouble(field, Raw(field) ?? throw Error(field, "is missing"));

    /// <summary>An optional boolean.</summary>
    public bool BoolOr(string field, bool fallback)
    {
        if (Raw(field) is not { } v) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(field, $"must be true or false, found {v.GetRawText()}"),
        };
    }

    /// <summary>An optional string.</summary>
    public string? StringOrNull(string field)
    {
        if (Raw(field) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error(field, $"must be a string, found {v.GetRawText()}");
    }

    /// <summary>An integer or a list of integers (eos_token_id takes both forms).</summary>
    public int[] IntList(string field)
    {
        if (Raw(field) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.Array)
            return v.EnumerateArray().Select((x, i) => AsInt($"{field}[{i}]", x)).ToArray();
        return [AsInt(field, v)];
    }

    /// <summary>A list of strings (GPT-OSS's layer_types); empty when absent.</summary>
    public string[] StringList(string field)
    {
        if (Raw(field) is not { } v) return [];
        if (v.ValueKind != JsonValueKind.Array) throw Error(field, $"must be a list of strings, found {v.GetRawText()}");
        return v.EnumerateArray().Select((x, i) => x.ValueKind == JsonValueKind.String ? x.GetString()!
            : throw Error($"{field}[{i}]", $"must be a string, found {x.GetRawText()}")).ToArray();
    }

    /// <summary>A nested object (e.g. rope_parameters), or null.</summary>
    public ConfigReader? Object(string field)
    {
        if (Raw(field) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Object) throw Error(field, $"must be an object, found {v.GetRawText()}");
        return new ConfigReader($"{Path}: {field}", v);
    }

    /// <summary>A list of floats (rope long/short factors).</summary>
    public double[] DoubleList(string field)
    {
        if (Raw(field) is not { } v) throw Error(field, "is missing");
        if (v.ValueKind != JsonValueKind.Array) throw Error(field, $"must be a list of numbers, found {v.GetRawText()}");
        return v.EnumerateArray().Select((x, i) => AsDouble($"{field}[{i}]", x)).ToArray();
    }

    int AsInt(string field, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l) && l is >= int.MinValue and <= int.MaxValue)
            return (int)l;
        // Some configs write integers as 4096.0.
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue)
            return (int)d;
        throw Error(field, $"must be an integer, found {v.GetRawText()}");
    }

    double AsDouble(string field, JsonElement v) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d)
            ? d
            : throw Error(field, $"must be a number, found {v.GetRawText()}");

    /// <summary>An error naming this file and <paramref name="field"/>.</summary>
    public ModelLoadException Error(string field, string what) => new($"{Path}: field '{field}' {what}");
}
