using Daop.Engine.Schedule;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;

namespace Daop.Cli;

/// <summary>Token files of held-out sequences (safetensors, <c>input_ids</c> [N, T]) and the routing traces recorded on them.</summary>
static class TokenSequences
{
    /// <summary>A model folder's own token file, used when <c>--sequences</c> is not given.</summary>
    public static string PathFor(string modelDir, string? file) => file ?? Path.Combine(modelDir, "routing-sequences.safetensors");

    /// <summary>The first <paramref name="count"/> (default all) rows of <paramref name="file"/>'s input_ids, which must be 2-D.</summary>
    public static List<int[]> Read(string file, int? count = null)
    {
        using var st = TensorStore.OpenFile(file);
        var (ids, shape) = st.Int64s("input_ids");
        if (shape.Length != 2) throw new ModelLoadException($"{file}: input_ids must be [sequences, length], found [{string.Join(", ", shape)}]");
        int n = (int)Math.Min(shape[0], count ?? int.MaxValue), len = (int)shape[1];
        return Enumerable.Range(0, n).Select(s => ids.Skip(s * len).Take(len).Select(x => (int)x).ToArray()).ToList();
    }

    /// <summary>One routing trace per sequence, each run through <paramref name="model"/> as one prefill.</summary>
    public static List<RoutingTrace> Record(MoeModel model, IEnumerable<int[]> sequences) =>
        sequences.Select(s => RoutingTrace.Record(model, s)).ToList();
}
