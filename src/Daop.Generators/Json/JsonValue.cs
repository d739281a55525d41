using System.Collections.Generic;

namespace Daop.Generators.Json;

/// <summary>The kind of a <see cref="JsonValue"/>.</summary>
internal enum JsonKind
{
    Null,
    False,
    True,
    Number,
    String,
    Array,
    Object,
}

/// <summary>
/// A parsed JSON value that remembers where it came from, so a diagnostic can point at the offending text.
/// Numbers keep their source text: the config reader decides what counts as an integer, not the parser.
/// </summary>
internal sealed class JsonValue
{
    JsonValue(JsonKind kind, int start, int end)
    {
        Kind = kind;
        Start = start;
        End = end;
    }

    /// <summary>What the value is.</summary>
    public JsonKind Kind { get; }

    /// <summary>Offset of the value's first character in the source text.</summary>
    public int Start { get; }

    /// <summary>Offset just past the value's last character.</summary>
    public int End { get; }

    /// <summary>The decoded string (<see cref="JsonKind.String"/>) or the literal text (<see cref="JsonKind.Number"/>).</summary>
    public string Text { get; private set; } = "";

    /// <summary>Members in source order (<see cref="JsonKind.Object"/>); duplicates are kept, lookups take the last.</summary>
    public IReadOnlyList<KeyValuePair<string, JsonValue>> Members { get; private set; } = s_noMembers;

    /// <summary>Elements (<see cref="JsonKind.Array"/>).</summary>
    public IReadOnlyList<JsonValue> Items { get; private set; } = s_noItems;

    static readonly KeyValuePair<string, JsonValue>[] s_noMembers = new KeyValuePair<string, JsonValue>[0];
    static readonly JsonValue[] s_noItems = new JsonValue[0];

    public static JsonValue Literal(JsonKind kind, int start, int end) => new JsonValue(kind, start, end);

    public static JsonValue Scalar(JsonKind kind, string text, int start, int end) =>
        new JsonValue(kind, start, end) { Text = text };

    public static JsonValue Array(List<JsonValue> items, int start, int end) =>
        new JsonValue(JsonKind.Array, start, end) { Items = items };

    public static JsonValue Object(List<KeyValuePair<string, JsonValue>> members, int start, int end) =>
        new JsonValue(JsonKind.Object, start, end) { Members = members };

    /// <summary>The member named <paramref name="name"/> (the last one, as Python's json does), or null.</summary>
    public JsonValue? Get(string name)
    {
        for (int i = Members.Count - 1; i >= 0; i--)
            if (Members[i].Key == name) return Members[i].Value;
        return null;
    }

    /// <summary>A short description of the value for messages: <c>string "big"</c>, <c>number 1.5</c>, <c>object</c>.</summary>
    public string Describe()
    {
        switch (Kind)
        {
            case JsonKind.String: return "string \"" + (Text.Length > 40 ? Text.Substring(0, 40) + "…" : Text) + "\"";
            case JsonKind.Number: return "number " + Text;
            case JsonKind.Null: return "null";
            case JsonKind.True: return "true";
            case JsonKind.False: return "false";
            case JsonKind.Array: return "an array";
            default: return "an object";
        }
    }
}
