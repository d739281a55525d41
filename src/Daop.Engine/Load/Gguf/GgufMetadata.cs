namespace Daop.Engine.Load.Gguf;

/// <summary>
/// Typed access to a GGUF file's metadata. Every failure names the file and the key, like <see cref="Config.ConfigReader"/>
/// does for config.json. Integer keys accept any integer type that holds the value (writers differ: gguf-py writes
/// uint32, others int32 or uint64), float keys any number.
/// </summary>
public sealed class GgufMetadata(string path, IReadOnlyDictionary<string, GgufValue> values)
{
    /// <summary>The file the metadata came from, for messages.</summary>
    public string Path { get; } = path;

    /// <summary>All values by key.</summary>
    public IReadOnlyDictionary<string, GgufValue> Values { get; } = values;

    /// <summary>True if <paramref name="key"/> is present.</summary>
    public bool Has(string key) => Values.ContainsKey(key);

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public GgufValue? Raw(string key) => Values.TryGetValue(key, out var v) ? v : null;

    /// <summary>A required string.</summary>
    public string String(string key) => StringOrNull(key) ?? throw Error(key, "is missing");

    /// <summary>An optional string.</summary>
    public string? StringOrNull(string key) => Raw(key) is not { } v ? null
        : v.Data as string ?? throw Error(key, $"must be a string, found {v.TypeName} {v}");

    /// <summary>A required integer that fits an int.</summary>
    public int Int(string key) => IntOrNull(key) ?? throw Error(key, "is missing");

    /// <summary>An optional integer.</summary>
    public int IntOr(string key, int fallback) => IntOrNull(key) ?? fallback;

    /// <summary>An optional integer that fits an int, or null when absent.</summary>
    public int? IntOrNull(string key)
    {
        if (Raw(key) is not { } v) return null;
        if (v.IsArray || v.AsInteger() is not { } i) throw Error(key, $"must be an integer, found {v.TypeName} {v}");
        return i is >= int.MinValue and <= int.MaxValue ? (int)i : throw Error(key, $"is {i}, out of range");
    }

    /// <summary>A required positive integer.</summary>
    public int PositiveInt(string key)
    {
        int v = Int(key);
        return v > 0 ? v : throw Error(key, $"must be a positive integer, found {v}");
    }

    /// <summary>An optional finite number.</summary>
    public double NumberOr(string key, double fallback) => NumberOrNull(key) ?? fallback;

    /// <summary>An optional finite number, or null when absent.</summary>
    public double? NumberOrNull(string key)
    {
        if (Raw(key) is not { } v) return null;
        if (v.IsArray || v.AsNumber() is not { } d) throw Error(key, $"must be a number, found {v.TypeName} {v}");
        return double.IsFinite(d) ? d : throw Error(key, $"must be a finite number, found {v}");
    }

    /// <summary>An optional boolean.</summary>
    public bool BoolOr(string key, bool fallback) => Raw(key) is not { } v ? fallback
        : v.Data is bool b ? b : throw Error(key, $"must be a bool, found {v.TypeName} {v}");

    /// <summary>An array of strings, or null when absent.</summary>
    public string[]? StringsOrNull(string key) => Raw(key) is not { } v ? null
        : v.Data as string[] ?? throw Error(key, $"must be an array of strings, found {v.TypeName}");

    /// <summary>An array of numbers as floats, or null when absent; every element finite.</summary>
    public float[]? FloatsOrNull(string key)
    {
        if (Raw(key) is not { } v) return null;
        if (!v.IsArray || v.ElementType is GgufValueType.String or GgufValueType.Bool) throw Error(key, $"must be an array of numbers, found {v.TypeName}");
        var r = new float[v.Count];
        for (int i = 0; i < r.Length; i++)
        {
            double d = v.NumberAt(i)!.Value;
            r[i] = double.IsFinite(d) ? (float)d : throw Error($"{key}[{i}]", $"must be a finite number, found {d}");
        }
        return r;
    }

    /// <summary>An array of integers, or null when absent; every element must fit an int.</summary>
    public int[]? IntsOrNull(string key)
    {
        if (Raw(key) is not { } v) return null;
        if (!v.IsArray || !GgufValue.IsInteger(v.ElementType)) throw Error(key, $"must be an array of integers, found {v.TypeName}");
        var r = new int[v.Count];
        for (int i = 0; i < r.Length; i++)
            r[i] = v.IntegerAt(i) is { } x and >= int.MinValue and <= int.MaxValue ? (int)x
                : throw Error($"{key}[{i}]", $"is out of range ({v.IntegerAt(i)?.ToString() ?? "above 2^63"})");
        return r;
    }

    /// <summary>An error naming this file and <paramref name="key"/>.</summary>
    public ModelLoadException Error(string key, string what) => new($"{Path}: key '{key}' {what}");
}
