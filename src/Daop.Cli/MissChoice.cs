using System.CommandLine;
using System.Globalization;
using Daop.Engine.Schedule;

namespace Daop.Cli;

/// <summary>
/// <c>--miss-dtype</c> and <c>--miss-max-weight</c> (mixed precision on a miss, <see cref="MissPrecision"/>) and the
/// benchmarks' lists of them.
/// </summary>
static class MissChoice
{
    /// <summary>The types a low-precision miss copy may have.</summary>
    public static readonly string[] Types = ["q4_0", "q8_0", "mxfp4"];

    public static Option<string?> DType() => new("--miss-dtype")
    {
        Description = "With offloaded experts: keep a copy of every routed expert in this type (q4_0, q8_0, mxfp4; made at load) and run a " +
            "decode miss on the CPU from it when its router weight is at most --miss-max-weight (HOBBIT; see docs/miss-precision.md).",
    };

    public static Option<double?> MaxWeight() => new("--miss-max-weight")
    {
        Description = "With --miss-dtype: the largest router weight (0 to 1, after the model's normalisation) whose CPU miss reads the low-precision copy.",
    };

    /// <summary>The switch the two options ask for, or null when neither is given.</summary>
    public static MissPrecision? Parse(string? type, double? maxWeight)
    {
        if (type == null && maxWeight == null) return null;
        if (type == null) throw new ArgumentException("--miss-max-weight needs --miss-dtype (the low-precision copy's type)");
        if (maxWeight == null) throw new ArgumentException("--miss-dtype needs --miss-max-weight (the largest router weight that uses the copy, e.g. 0.2)");
        return new MissPrecision(WeightTypes.Parse(type)!.Value, (float)maxWeight.Value);
    }

    /// <summary>Every (type, bound) of two lists, after an "off" entry (null) when <paramref name="withOff"/>; nothing given: off only.</summary>
    public static List<MissPrecision?> Grid(string? types, string? maxWeights, bool withOff = true)
    {
        if (types == null && maxWeights == null) return [null];
        if (types == null) throw new ArgumentException("--miss-max-weights needs --miss-dtypes");
        if (maxWeights == null) throw new ArgumentException("--miss-dtypes needs --miss-max-weights");
        var list = new List<MissPrecision?>();
        if (withOff) list.Add(null);
        foreach (var t in OptionRules.Items(types))
            foreach (var w in OptionRules.Items(maxWeights))
                list.Add(new MissPrecision(WeightTypes.Parse(t)!.Value, float.Parse(w, NumberStyles.Float, CultureInfo.InvariantCulture)));
        return list;
    }
}
