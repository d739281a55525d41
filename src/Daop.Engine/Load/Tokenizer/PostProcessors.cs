using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>A tokenizer.json post-processor; for single sequences it only wraps ids in special tokens.</summary>
internal interface IPostProcessor
{
    List<int> Process(List<int> ids);
}

/// <summary>Builds post-processors from their JSON description (single-sequence behaviour only).</summary>
internal static class PostProcessors
{
    public static IPostProcessor? Load(JsonElement? node, TokJson json)
        => node is { } n ? Load(n, "post_processor", json) : null;

    /// <summary>Most ids a post-processor may add around a sequence (real templates add one or two).</summary>
    public const int MaxAddedIds = 1024;

    private static IPostProcessor Load(JsonElement n, string where, TokJson json)
    {
        json.CountComponent(where);
        string type = json.Type(n, where);
        switch (type)
        {
            case "ByteLevel":
                // Only trims offsets, which Daop does not track: ids pass through.
                return new Wrap([], []);
            case "TemplateProcessing":
                return Template(n, where, json);
            case "RobertaProcessing":
            case "BertProcessing":
                // "cls": ["<s>", 0], "sep": ["</s>", 2]; single sequence is cls A sep.
                int cls = PairId(n, "cls", where, json), sep = PairId(n, "sep", where, json);
                return new Wrap([cls], [sep]);
            case "Sequence":
                var items = json.Array(n, "processors", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.processors[{i}]", json)).ToArray();
                return new SequenceProcessor(items);
            default:
                throw json.Unsupported(where, type);
        }
    }

    private static int PairId(JsonElement n, string name, string where, TokJson json)
    {
        if (!n.TryGetProperty(name, out var pair) || pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2)
            throw json.Error($"{where}.{name} must be a [token, id] pair");
        return json.Id(pair[1], $"{where}.{name}[1]");
    }

    /// <summary>The "single" template: SpecialToken pieces expand to their ids, Sequence "A" is the input.</summary>
    private static IPostProcessor Template(JsonElement n, string where, TokJson json)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (json.OptObject(n, "special_tokens", where) is { } st)
        {
            foreach (var p in st.EnumerateObject())
            {
                string w = $"{where}.special_tokens['{p.Name}']";
                specials[p.Name] = json.Array(p.Value, "ids", w).EnumerateArray()
                    .Select((e, i) => json.Id(e, $"{w}.ids[{i}]")).ToArray();
            }
        }
        var before = new List<int>();
        var after = new List<int>();
        bool seenSequence = false;
        int index = 0;
        foreach (var piece in json.Array(n, "single", where).EnumerateArray())
        {
            string w = $"{where}.single[{index++}]";
            if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("SpecialToken", out var special))
            {
                string id = json.String(special, "id", $"{w}.SpecialToken");
                if (!specials.TryGetValue(id, out var ids))
                    throw json.Error($"{w}.SpecialToken.id '{id}' is not in {where}.special_tokens");
                // Checked before adding: a piece names an ids list, so 1000 pieces could repeat a long list 1000 times.
                if ((long)before.Count + after.Count + ids.Length > MaxAddedIds)
                    throw json.Error($"{where}.single adds more than {MaxAddedIds} ids around the sequence");
                (seenSequence ? after : before).AddRange(ids);
            }
            else if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("Sequence", out var seq))
            {
                string id = json.String(seq, "id", $"{w}.Sequence");
                if (id != "A" || seenSequence)
                    throw json.Error($"{w}.Sequence.id '{id}' is not supported in a single-sequence template");
                seenSequence = true;
            }
            else
            {
                throw json.Error($"{w} must be a SpecialToken or Sequence piece, found {piece}");
            }
        }
        if (!seenSequence)
            throw json.Error($"{where}.single has no Sequence piece");
        return new Wrap(before.ToArray(), after.ToArray());
    }

    private sealed class Wrap(int[] before, int[] after) : IPostProcessor
    {
        public List<int> Process(List<int> ids)
        {
            if (before.Length == 0 && after.Length == 0)
                return ids;
            var result = new List<int>(before.Length + ids.Count + after.Length);
            result.AddRange(before);
            result.AddRange(ids);
            result.AddRange(after);
            return result;
        }
    }

    private sealed class SequenceProcessor(IPostProcessor[] items) : IPostProcessor
    {
        public List<int> Process(List<int> ids)
        {
            foreach (var item in items)
                ids = item.Process(ids);
            return ids;
        }
    }
}
