using System.Text;
using System.Text.Json;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Generate;

/// <summary>
/// Mistral tool calls: <c>[TOOL_CALLS]</c> with a JSON array (v3) or <c>name[ARGS]{...}</c> (v11) split from the text the
/// same way whole and however the reply streams in, with ids Mistral's templates accept; what is not calls stays text; a
/// forced call takes the format's form and writes the marker with its own token.
/// </summary>
public class MistralToolCallTests
{
    const string Weather = """[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}]""";

    public static TheoryData<string, string?, string[]> Replies => new()
    {
        { "Just text.", "Just text.", [] },
        { Weather, null, ["get_weather"] },
        { "Let me check.\n" + Weather, "Let me check.", ["get_weather"] },
        // Several calls in one array; tekken spacing; the model's own id member; a lone object.
        { """[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}, {"name": "get_time", "arguments": {}}]""", null, ["get_weather", "get_time"] },
        { """[TOOL_CALLS] {"name": "get_time", "arguments": "{}"}""", null, ["get_time"] },
        { Weather + " Done.", "Done.", ["get_weather"] },
        // The v11 form, one marker per call, [CALL_ID] allowed before [ARGS].
        { """Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]a1B2c3D4e[ARGS]{}""", "Sure.", ["get_weather", "get_time"] },
        // Not calls: malformed JSON, elements that are not calls, an empty list, a bad name or marker, cut off.
        { """[TOOL_CALLS] [{"name": oops}] and on""", """[TOOL_CALLS] [{"name": oops}] and on""", [] },
        { """[TOOL_CALLS] [{"name": "f", "arguments": {}}, 3]""", """[TOOL_CALLS] [{"name": "f", "arguments": {}}, 3]""", [] },
        { "[TOOL_CALLS] []", "[TOOL_CALLS] []", [] },
        { "[TOOL_CALLS]bad name[ARGS]{}", "[TOOL_CALLS]bad name[ARGS]{}", [] },
        { "[TOOL_CALLS]f[ARG]{}", "[TOOL_CALLS]f[ARG]{}", [] },
        { """[TOOL_CALLS] [{"name": "get_time", "argu""", """[TOOL_CALLS] [{"name": "get_time", "argu""", [] },
        { "[TOOL_CALLS]f[ARGS]{\"a\":", "[TOOL_CALLS]f[ARGS]{\"a\":", [] },
        // Text that merely starts like the marker.
        { "a [TOOL b", "a [TOOL b", [] },
        { "x [TOOL_CALL", "x [TOOL_CALL", [] },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void WholeRepliesSplitIntoTextAndCalls(string reply, string? content, string[] names)
    {
        var (text, calls) = MistralToolCalls.Parse(reply);
        Assert.Equal(content, text);
        Assert.Equal(names, calls.Select(c => c.Name));
        foreach (var c in calls)
        {
            Assert.True(ToolCall.IsMistralId(c.Id), c.Id);
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(c.Arguments).RootElement.ValueKind);
        }
        if (names.Length > 0 && names[0] == "get_weather")
            Assert.Equal("Paris", JsonDocument.Parse(calls[0].Arguments).RootElement.GetProperty("city").GetString());
        Assert.Equal(calls.Count, calls.Select(c => c.Id).Distinct().Count());
        // Every Mistral format reads both forms.
        foreach (var format in new[] { MistralToolCalls.Tight, MistralToolCalls.ArgsForm })
            Assert.Equal(names, format.Parse(reply).Calls.Select(c => c.Name));
    }

    [Theory]
    [MemberData(nameof(Replies))]
    public void StreamedRepliesSplitAsWholeOnes(string reply, string? content, string[] names)
    {
        // Cut in two at every position, then one character at a time, then random pieces.
        var cuts = Enumerable.Range(0, reply.Length + 1).Select(i => new[] { reply[..i], reply[i..] })
            .Append(reply.Select(c => c.ToString()).ToArray());
        var rng = new Random(reply.Length);
        cuts = cuts.Concat(Enumerable.Range(0, 10).Select(_ => Pieces(reply, rng)));
        foreach (var pieces in cuts)
        {
            var stream = MistralToolCalls.Spaced.NewStream();
            var text = new StringBuilder();
            var calls = new List<string>();
            var parts = pieces.SelectMany(stream.Push).ToList();
            parts.AddRange(stream.Flush());
            foreach (var (t, c) in parts)
            {
                Assert.True((t == null) != (c == null));
                if (t != null) { Assert.NotEqual("", t.Trim()); text.Append(t); }
                else { Assert.True(ToolCall.IsMistralId(c!.Id)); calls.Add(c.Name); }
            }
            Assert.Equal(names, calls);
            Assert.Equal(content ?? "", text.ToString());
        }
    }

    static string[] Pieces(string s, Random rng)
    {
        var list = new List<string>();
        for (int at = 0; at < s.Length;)
        {
            int n = Math.Min(s.Length - at, rng.Next(1, 12));
            list.Add(s.Substring(at, n));
            at += n;
        }
        return [.. list];
    }

    [Fact]
    public void CallsGoOutWhenTheirJsonCloses()
    {
        var stream = MistralToolCalls.Spaced.NewStream();
        Assert.Equal([("Checking", (ToolCall?)null)], stream.Push("Checking [TOOL").ToArray()); // what may open calls waits
        Assert.Empty(stream.Push("_CALLS] [{\"name\": \"f\", \"arguments\": {}}"));
        var closed = stream.Push("]").ToArray();
        Assert.Equal("f", Assert.Single(closed).Call!.Name);
        Assert.Empty(stream.Flush());
    }

    [Fact]
    public void MistralIdsAreNineLettersAndDigits()
    {
        var ids = Enumerable.Range(0, 200).Select(_ => ToolCall.NewMistralId()).ToArray();
        Assert.All(ids, id => Assert.Matches("^[A-Za-z0-9]{9}$", id));
        Assert.True(ids.Distinct().Count() > 190);
        // Foreign ids map to such ones, the same every time; Mistral ids stay.
        Assert.Matches("^[A-Za-z0-9]{9}$", ToolCall.MistralId("call_0123456789abcdef01234567"));
        Assert.Equal(ToolCall.MistralId("call_1"), ToolCall.MistralId("call_1"));
        Assert.NotEqual(ToolCall.MistralId("call_1"), ToolCall.MistralId("call_2"));
        Assert.Equal("VvvODy9mT", ToolCall.MistralId("VvvODy9mT"));
        Assert.False(ToolCall.IsMistralId("call_1"));
    }

    // Tokens: single characters, some longer pieces, and the markers as special tokens (no text of their own).
    static readonly string[] Vocabulary =
    [
        .. Enumerable.Range(32, 95).Select(c => ((char)c).ToString()), "\n", "get", "_weather", "get_weather", "get_time", "\": \"",
        "\", \"arguments\": ", "{\"", "\"}", "}}", "}]", " [{\"name\": \"", "[TOOL", "_CALLS]", "", "", "",
    ];
    static readonly int ToolCallsId = Vocabulary.Length - 3, ArgsId = Vocabulary.Length - 2, CallIdId = Vocabulary.Length - 1;
    static readonly Dictionary<int, string> Markers = new()
    {
        [ToolCallsId] = MistralToolCalls.Open, [ArgsId] = MistralToolCalls.Args, [CallIdId] = MistralToolCalls.CallId,
    };

    static string Text(int token) => Markers.TryGetValue(token, out var m) ? m : Vocabulary[token];

    public static TheoryData<string> Formats => ["spaced", "tight", "args"];

    static ToolCallFormat Format(string name) => name switch
    {
        "spaced" => MistralToolCalls.Spaced,
        "tight" => MistralToolCalls.Tight,
        _ => MistralToolCalls.ArgsForm,
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void ForcedCallsFollowTheFormAndNameOnlyGivenFunctions(string formatName)
    {
        var format = Format(formatName);
        string[] names = ["get_weather", "get_time"];
        var rng = new Random(5);
        int whole = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            var c = format.Constraint(Vocabulary, names, markerTokens: Markers);
            // The marker comes first, and only as its token: the same text spelt in pieces is refused.
            Assert.Equal([ToolCallsId], Enumerable.Range(0, Vocabulary.Length).Where(c.Allows));
            var output = new StringBuilder();
            for (int step = 0; step < 400 && !c.IsComplete; step++)
            {
                var allowed = Enumerable.Range(0, Vocabulary.Length).Where(c.Allows).ToArray();
                Assert.NotEmpty(allowed);
                Assert.DoesNotContain(CallIdId, allowed);
                int pick = rng.Next(2) == 0 && allowed.Any(t => Text(t).Contains('}') || Text(t).StartsWith('['))
                    ? allowed.Where(t => Text(t).Contains('}') || Text(t).StartsWith('[') || Text(t).Contains('"')).OrderBy(_ => rng.Next()).First()
                    : allowed[rng.Next(allowed.Length)];
                c.Accept(pick);
                output.Append(Text(pick));
            }
            if (!c.IsComplete) continue;
            whole++;
            Assert.DoesNotContain(Enumerable.Range(0, Vocabulary.Length), c.Allows);
            var (content, calls) = format.Parse(output.ToString());
            Assert.True(content == null, output.ToString());
            var call = Assert.Single(calls);
            Assert.Contains(call.Name, names);
            Assert.True(ToolCall.IsMistralId(call.Id));
            Assert.StartsWith(format.Forced.Head + call.Name + format.Forced.Between, output.ToString());
        }
        Assert.True(whole >= 100, $"{whole} of 200 random forced calls closed");
    }

    [Theory]
    [InlineData("spaced", "[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]", true)]
    [InlineData("tight", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", true)]
    [InlineData("spaced", "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]", false)]       // not the template's spacing
    [InlineData("spaced", "[TOOL_CALLS] [{\"name\": \"get_tim\", \"arguments\": {}}]", false)]      // not a given name
    [InlineData("spaced", "[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": []}]", false)]     // arguments not an object
    [InlineData("args", "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", true)]
    [InlineData("args", "[TOOL_CALLS]get_timer[ARGS]{}", false)]                                   // a longer name
    [InlineData("args", "[TOOL_CALLS]get_time[ARGS]{\"a\": 1", false)]                             // not closed
    [InlineData("args", "Sure.[TOOL_CALLS]get_time[ARGS]{}", false)]                               // text first
    public void TheConstraintAcceptsExactlyTheForm(string formatName, string output, bool whole)
    {
        // One token per character, the markers (where the output has them) as their special tokens.
        string[] chars = [.. Enumerable.Range(0, 128).Select(c => ((char)c).ToString()), "", ""];
        var markers = new Dictionary<int, string> { [128] = MistralToolCalls.Open, [129] = MistralToolCalls.Args };
        var format = Format(formatName);
        var c = format.Constraint(chars, ["get_weather", "get_time"], [ToolCallConstraint.ArgumentsGrammar(
            """{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"""), null], markers);
        bool ok = true;
        for (int at = 0; at < output.Length && ok;)
        {
            var marker = markers.FirstOrDefault(m => output.AsSpan(at).StartsWith(m.Value));
            int token = marker.Value != null ? marker.Key : output[at];
            ok = c.Allows(token);
            if (ok) c.Accept(token);
            at += marker.Value?.Length ?? 1;
        }
        Assert.Equal(whole, ok && c.IsComplete);
        if (whole) Assert.Single(format.Parse(output).Calls);
    }

    [Fact]
    public void WithoutMarkerTokensTheMarkersAreSpeltOut()
    {
        // A vocabulary without the control tokens: the marker is written in characters, as text the parser still reads.
        string[] chars = [.. Enumerable.Range(0, 128).Select(c => ((char)c).ToString())];
        var c = MistralToolCalls.ArgsForm.Constraint(chars, ["f"]);
        foreach (char ch in "[TOOL_CALLS]f[ARGS]{}")
        {
            Assert.True(c.Allows(ch), $"'{ch}'");
            c.Accept(ch);
        }
        Assert.True(c.IsComplete);
    }
}
