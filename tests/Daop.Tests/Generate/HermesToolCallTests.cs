using System.Text.Json;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Generate;

/// <summary>
/// Hermes tool calls: a reply splits into text and calls the same way whole and however it streams in, a block that is
/// not a call stays text, and the forced-call constraint lets through exactly the calls it names.
/// </summary>
public class HermesToolCallTests
{
    const string Weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n</tool_call>";
    const string Time = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

    public static TheoryData<string, string?, string[]> Replies => new()
    {
        { "Just text.", "Just text.", [] },
        { Weather, null, ["get_weather"] },
        { "Let me check.\n\n" + Weather + "\n" + Time + "\n", "Let me check.", ["get_weather", "get_time"] },
        { Weather + "\nDone.", "Done.", ["get_weather"] },
        // A block whose JSON is not a call stays text, tags included.
        { "<tool_call>\n{\"nam\": 1}\n</tool_call>", "<tool_call>\n{\"nam\": 1}\n</tool_call>", [] },
        { "<tool_call>\nnot json\n</tool_call> x", "<tool_call>\nnot json\n</tool_call> x", [] },
        // Cut off before the closing tag: a call when its JSON is whole, else text.
        { "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n", null, ["get_time"] },
        { "<tool_call>\n{\"name\": \"get_time\", \"argu", "<tool_call>\n{\"name\": \"get_time\", \"argu", [] },
        // Arguments given as a string of a JSON object (some fine-tunes write them so).
        { "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", null, ["f"] },
        // A text that merely starts like the tag.
        { "a <tool b", "a <tool b", [] },
        { "x <tool_cal", "x <tool_cal", [] },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void WholeRepliesSplitIntoTextAndCalls(string reply, string? content, string[] names)
    {
        var (text, calls) = HermesToolCalls.Parse(reply);
        Assert.Equal(content, text);
        Assert.Equal(names, calls.Select(c => c.Name));
        foreach (var c in calls)
        {
            Assert.StartsWith("call_", c.Id);
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(c.Arguments).RootElement.ValueKind);
        }
        if (names.Length > 0 && names[0] == "get_weather")
            Assert.Equal("Paris", JsonDocument.Parse(calls[0].Arguments).RootElement.GetProperty("city").GetString());
        Assert.Equal(calls.Select(c => c.Id).Distinct().Count(), calls.Count);
    }

    [Theory]
    [MemberData(nameof(Replies))]
    public void StreamedRepliesSplitAsWholeOnes(string reply, string? content, string[] names)
    {
        var rng = new Random(reply.Length);
        for (int trial = 0; trial < 20; trial++)
        {
            var stream = new HermesToolCalls.Stream();
            var text = new System.Text.StringBuilder();
            var calls = new List<string>();
            for (int at = 0; at < reply.Length;)
            {
                int n = trial == 0 ? 1 : Math.Min(reply.Length - at, rng.Next(1, 12)); // char by char first, then random pieces
                foreach (var (t, c) in stream.Push(reply.Substring(at, n)))
                {
                    Assert.True((t == null) != (c == null));
                    if (t != null) { Assert.NotEqual("", t.Trim()); text.Append(t); }
                    else calls.Add(c!.Name);
                }
                at += n;
            }
            foreach (var (t, c) in stream.Flush())
                if (t != null) text.Append(t); else calls.Add(c!.Name);
            Assert.Equal(names, calls);
            Assert.Equal(content ?? "", text.ToString()); // no whitespace at the ends to trim
        }
    }

    [Fact]
    public void TextBeforeACallGoesOutBeforeTheCallCloses()
    {
        var stream = new HermesToolCalls.Stream();
        Assert.Equal([("Checking", (ToolCall?)null)], stream.Push("Checking ").ToArray()); // the trailing space waits
        Assert.Equal([(" now", (ToolCall?)null)], stream.Push("now <tool").ToArray()); // so does what may open a call
        Assert.Empty(stream.Push("_call>\n{\"name\": \"f\", \"arguments\": {}}"));
        var closed = stream.Push("\n</tool_call>").ToArray();
        Assert.Single(closed);
        Assert.Equal("f", closed[0].Call!.Name);
        Assert.Empty(stream.Flush());
    }

    // Tokens: single characters, the whole tags, and some longer pieces, as a tokenizer's vocabulary mixes them.
    static readonly string[] Vocabulary =
    [
        .. Enumerable.Range(32, 95).Select(c => ((char)c).ToString()), "\n", "<tool_call>", "</tool_call>", "\"name\"", "get", "_weather",
        "get_weather", "get_time", "\": \"", "\", \"arguments\": ", "{\"", "\"}", "}}", "}\n", "Paris", " ", "", "{\"name\": \"get_time",
    ];

    [Fact]
    public void ForcedCallsFollowTheFormAndNameOnlyGivenFunctions()
    {
        var texts = Vocabulary;
        string[] names = ["get_weather", "get_time"];
        var rng = new Random(3);
        int whole = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            var c = new HermesToolCallConstraint(texts, names);
            var output = new System.Text.StringBuilder();
            for (int step = 0; step < 400 && !c.IsComplete; step++)
            {
                var allowed = Enumerable.Range(0, texts.Length).Where(c.Allows).ToArray();
                Assert.NotEmpty(allowed);
                Assert.DoesNotContain(Array.IndexOf(texts, ""), allowed);
                // Prefer closing tokens half the time so the arguments end.
                int pick = rng.Next(2) == 0 && allowed.Any(t => texts[t].Contains('}') || texts[t].Contains('<'))
                    ? allowed.Where(t => texts[t].Contains('}') || texts[t].Contains('<') || texts[t].Contains('"')).OrderBy(_ => rng.Next()).First()
                    : allowed[rng.Next(allowed.Length)];
                c.Accept(pick);
                output.Append(texts[pick]);
            }
            if (!c.IsComplete) continue; // a long random string ran out of steps
            whole++;
            Assert.DoesNotContain(Enumerable.Range(0, texts.Length), c.Allows); // nothing follows the closed block
            var (content, calls) = HermesToolCalls.Parse(output.ToString());
            Assert.True(content == null, output.ToString());
            var call = Assert.Single(calls);
            Assert.Contains(call.Name, names);
            Assert.StartsWith("<tool_call>\n{\"name\": \"" + call.Name + "\", \"arguments\": ", output.ToString());
        }
        Assert.True(whole >= 100, $"{whole} of 200 random forced calls closed");
    }

    [Theory]
    [InlineData("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>", true)]
    [InlineData("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", true)]
    [InlineData("<tool_call>\n{\"name\": \"get_tim\", \"arguments\": {}}\n</tool_call>", false)]    // not a given name
    [InlineData("<tool_call>\n{\"name\": \"get_timer\", \"arguments\": {}}\n</tool_call>", false)]  // a longer one
    [InlineData("<tool_call>\n{\"name\": \"get_time\", \"arguments\": []}\n</tool_call>", false)]   // arguments not an object
    [InlineData("<tool_call>\n{\"name\":\"get_time\", \"arguments\": {}}\n</tool_call>", false)]    // not the template's spacing
    [InlineData("Sure. <tool_call>", false)]                                                       // text first
    public void TheConstraintAcceptsExactlyTheForm(string output, bool whole)
    {
        string[] chars = [.. Enumerable.Range(0, 128).Select(c => ((char)c).ToString())];
        var c = new HermesToolCallConstraint(chars, ["get_weather", "get_time"]);
        bool ok = true;
        foreach (char ch in output)
        {
            if (!c.Allows(ch)) { ok = false; break; }
            c.Accept(ch);
        }
        Assert.Equal(whole, ok && c.IsComplete);
        if (whole) Assert.Single(HermesToolCalls.Parse(output).Calls);
    }

    [Theory]
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}", true)]
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}", true)]
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {}}", false)]                 // city is required
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {\"town\": \"Paris\"}}", false)]
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {\"city\": 7}}", false)]
    [InlineData("{\"name\": \"get_time\", \"arguments\": {\"anything\": [1]}}", true)]  // no schema: any object
    public void ForcedArgumentsFollowTheFunctionsSchema(string call, bool whole)
    {
        const string weather = """{"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"], "additionalProperties": false}""";
        string[] chars = [.. Enumerable.Range(0, 128).Select(c => ((char)c).ToString())];
        var c = new HermesToolCallConstraint(chars, ["get_weather", "get_time"], [HermesToolCallConstraint.ArgumentsGrammar(weather), null]);
        string output = "<tool_call>\n" + call + "\n</tool_call>";
        bool ok = true;
        foreach (char ch in output)
        {
            if (!c.Allows(ch)) { ok = false; break; }
            c.Accept(ch);
        }
        Assert.Equal(whole, ok && c.IsComplete);
    }

    [Fact]
    public void ArgumentSchemasOutsideTheSubsetFallBackToAnyObject()
    {
        Assert.NotNull(HermesToolCallConstraint.ArgumentsGrammar("""{"type": "object", "properties": {"a": {"type": "string"}}}"""));
        Assert.Null(HermesToolCallConstraint.ArgumentsGrammar(null));
        Assert.Null(HermesToolCallConstraint.ArgumentsGrammar("""{"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}}"""));
        Assert.Null(HermesToolCallConstraint.ArgumentsGrammar("""{"type": ["object", "null"]}""")); // arguments must be an object
        Assert.Null(HermesToolCallConstraint.ArgumentsGrammar("{}"));                             // any value: any object instead
    }

    [Fact]
    public void BadNamesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new HermesToolCallConstraint(Vocabulary, []));
        Assert.Throws<ArgumentException>(() => new HermesToolCallConstraint(Vocabulary, ["has space"]));
        Assert.Throws<ArgumentException>(() => new HermesToolCallConstraint(Vocabulary, [new string('a', 65)]));
        Assert.Throws<ArgumentException>(() => ToolDefinition.CheckName("quote\""));
        ToolDefinition.CheckName("A-b_9");
    }
}
