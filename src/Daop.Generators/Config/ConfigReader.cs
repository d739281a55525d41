using System.Collections.Generic;
using System.Globalization;
using Daop.Generators.Json;
using Daop.Generators.Model;
using Microsoft.CodeAnalysis.Text;

namespace Daop.Generators.Config;

/// <summary>
/// Reads the expert FFN shapes out of a Hugging Face config.json (Mixtral, Qwen2/Qwen3 MoE, OLMoE, PhiMoE layouts).
/// Never throws for bad input: every problem becomes a <see cref="DiagnosticInfo"/> pointing into the file.
/// </summary>
/// <remarks>
/// The routed experts' width is <c>moe_intermediate_size</c> where present (Qwen MoE, whose
/// <c>intermediate_size</c> is the dense MLP's), else <c>intermediate_size</c>. A positive
/// <c>shared_expert_intermediate_size</c> names a second, shared-expert shape. The dtype is <c>dtype</c>
/// (transformers ≥ 4.56) or <c>torch_dtype</c>; the activation <c>hidden_act</c> must be SiLU, the default of
/// every supported family when absent.
/// </remarks>
internal sealed class ConfigReader
{
    /// <summary>Largest width accepted: far above any real model, small enough that byte sizes stay in range.</summary>
    const int MaxDim = 1 << 20;

    readonly string _path;
    readonly SourceText _text;
    readonly List<DiagnosticInfo> _diagnostics = new List<DiagnosticInfo>();

    ConfigReader(string path, SourceText text)
    {
        _path = path;
        _text = text;
    }

    /// <summary>Parses <paramref name="text"/> (null when the file could not be read) from <paramref name="path"/>.</summary>
    public static ParsedConfig Read(string path, SourceText? text)
    {
        var reader = new ConfigReader(path, text ?? SourceText.From(""));
        var shapes = text == null ? Unreadable(reader) : reader.Shapes();
        return new ParsedConfig(path, new EquatableArray<ExpertShapeUse>(shapes.ToArray()),
            new EquatableArray<DiagnosticInfo>(reader._diagnostics.ToArray()));
    }

    static List<ExpertShapeUse> Unreadable(ConfigReader r)
    {
        r.Report("DAOP001", r._path + ": the file could not be read", 0, 0);
        return new List<ExpertShapeUse>();
    }

    List<ExpertShapeUse> Shapes()
    {
        var shapes = new List<ExpertShapeUse>();
        JsonValue root;
        try
        {
            root = JsonReader.Parse(_text.ToString());
        }
        catch (JsonException e)
        {
            var pos = _text.Lines.GetLinePosition(System.Math.Min(e.Offset, _text.Length));
            Report("DAOP001", string.Format(CultureInfo.InvariantCulture, "{0}({1},{2}): invalid JSON: {3}",
                _path, pos.Line + 1, pos.Character + 1, e.Message), e.Offset, e.Offset < _text.Length ? 1 : 0);
            return shapes;
        }
        if (root.Kind != JsonKind.Object)
        {
            Report("DAOP001", _path + ": the top-level value is " + root.Describe() + ", expected an object", root.Start, root.End - root.Start);
            return shapes;
        }

        int? hidden = RequiredInt(root, "hidden_size");
        int? routed = root.Get("moe_intermediate_size") != null
            ? RequiredInt(root, "moe_intermediate_size")
            : RequiredInt(root, "intermediate_size", "'intermediate_size' (or 'moe_intermediate_size')");
        int? shared = OptionalInt(root, "shared_expert_intermediate_size");
        bool swiglu = Activation(root);
        WeightType? type = DType(root);
        if (hidden == null || !swiglu || type == null) return shapes;

        string model = ConfigFiles.ModelName(_path);
        if (routed != null) shapes.Add(new ExpertShapeUse(hidden.Value, routed.Value, type.Value, model, "routed experts"));
        if (shared != null && shared.Value > 0)
            shapes.Add(new ExpertShapeUse(hidden.Value, shared.Value, type.Value, model, "shared expert"));
        return shapes;
    }

    int? RequiredInt(JsonValue root, string field, string? described = null)
    {
        var v = root.Get(field);
        if (v == null)
        {
            Report("DAOP002", _path + ": missing " + (described ?? "'" + field + "'") + ", needed for the expert shape",
                root.Start, 1);
            return null;
        }
        return Positive(field, v);
    }

    int? OptionalInt(JsonValue root, string field)
    {
        var v = root.Get(field);
        if (v == null || v.Kind == JsonKind.Null) return null;
        // 0 is how some configs say "no shared expert".
        if (v.Kind == JsonKind.Number && v.Text == "0") return 0;
        return Positive(field, v);
    }

    int? Positive(string field, JsonValue v)
    {
        if (v.Kind == JsonKind.Number && IsIntegerLiteral(v.Text) &&
            int.TryParse(v.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n) && n > 0 && n <= MaxDim)
            return n;
        Report("DAOP003", _path + ": '" + field + "' must be a positive integer (at most " + MaxDim + "), found " + v.Describe(),
            v.Start, v.End - v.Start);
        return null;
    }

    static bool IsIntegerLiteral(string s)
    {
        foreach (char c in s)
            if (c == '.' || c == 'e' || c == 'E' || c == 'N' || c == 'I') return false;
        return true;
    }

    bool Activation(JsonValue root)
    {
        var v = root.Get("hidden_act");
        if (v == null) return true;
        if (v.Kind != JsonKind.String)
        {
            Report("DAOP003", _path + ": 'hidden_act' must be a string, found " + v.Describe(), v.Start, v.End - v.Start);
            return false;
        }
        // transformers maps both names to the same SiLU.
        if (v.Text == "silu" || v.Text == "swish") return true;
        Report("DAOP005", _path + ": 'hidden_act' is \"" + v.Text + "\"; only SwiGLU experts (\"silu\") get generated kernels",
            v.Start, v.End - v.Start);
        return false;
    }

    WeightType? DType(JsonValue root)
    {
        string field = "dtype";
        var v = root.Get(field);
        if (v == null || v.Kind == JsonKind.Null)
        {
            field = "torch_dtype";
            v = root.Get(field);
        }
        if (v == null || v.Kind == JsonKind.Null)
        {
            Report("DAOP004", _path + ": no 'torch_dtype' or 'dtype', so the weight type is unknown; no kernel generated",
                root.Start, 1);
            return null;
        }
        if (v.Kind == JsonKind.String)
        {
            switch (v.Text)
            {
                case "bfloat16": return WeightType.BF16;
                case "float16": return WeightType.F16;
                case "float32": return WeightType.F32;
            }
        }
        Report("DAOP004", _path + ": '" + field + "' is " + v.Describe() + "; supported are \"bfloat16\", \"float16\", \"float32\"",
            v.Start, v.End - v.Start);
        return null;
    }

    void Report(string id, string message, int start, int length)
    {
        start = System.Math.Max(0, System.Math.Min(start, _text.Length));
        length = System.Math.Max(0, System.Math.Min(length, _text.Length - start));
        var span = new TextSpan(start, length);
        _diagnostics.Add(new DiagnosticInfo(id, message, _path, span, _text.Lines.GetLinePositionSpan(span)));
    }
}
