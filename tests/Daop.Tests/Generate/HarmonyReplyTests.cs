using System.Text;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Generate;

/// <summary>
/// Harmony replies (GPT-OSS) split into answer, reasoning and calls. The replies are the documented ones (openai/harmony
/// docs/format.md), as decoded after the prompt's <c>&lt;|start|&gt;assistant</c>, the stop token that ends them
/// (<c>&lt;|return|&gt;</c>, <c>&lt;|call|&gt;</c>) left out as generation leaves it out, or kept.
/// </summary>
public class HarmonyReplyTests
{
    const string Answer = "<|channel|>analysis<|message|>User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.<|end|>"
        + "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.";

    const string CallReply = "<|channel|>analysis<|message|>Need to use function get_current_weather.<|end|>"
        + "<|start|>assistant<|channel|>commentary to=functions.get_current_weather <|constrain|>json<|message|>{\"location\":\"San Francisco\"}";

    // The template's spelling of a call: the recipient before the channel, the content type without <|constrain|>.
    const string TemplateCallReply = "<|start|>assistant to=functions.get_current_weather<|channel|>commentary json<|message|>{\"location\": \"Tokyo\"}<|call|>";

    [Theory]
    [InlineData("")]
    [InlineData("<|return|>")]
    public void AnalysisIsReasoningAndFinalIsTheAnswer(string stop)
    {
        var (content, reasoning, calls) = HarmonyReply.Parse(Answer + stop);
        Assert.Equal("2 + 2 = 4.", content);
        Assert.Equal("User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.", reasoning);
        Assert.Empty(calls);
    }

    [Theory]
    [InlineData(CallReply, "get_current_weather", "{\"location\":\"San Francisco\"}", "Need to use function get_current_weather.")]
    [InlineData(CallReply + "<|call|>", "get_current_weather", "{\"location\":\"San Francisco\"}", "Need to use function get_current_weather.")]
    [InlineData(TemplateCallReply, "get_current_weather", "{\"location\": \"Tokyo\"}", null)]
    public void AMessageToAFunctionIsACall(string reply, string name, string arguments, string? reasoning)
    {
        var (content, thought, calls) = HarmonyReply.Parse(reply);
        Assert.Null(content);
        Assert.Equal(reasoning, thought);
        var call = Assert.Single(calls);
        Assert.Equal(name, call.Name);
        Assert.Equal(arguments, call.Arguments);
        Assert.StartsWith("call_", call.Id);
    }

    [Fact]
    public void APreambleOnCommentaryIsAnswerText()
    {
        var (content, _, calls) = HarmonyReply.Parse("<|channel|>commentary<|message|>Let me check.<|end|>" + TemplateCallReply);
        Assert.Equal("Let me check.", content);
        Assert.Single(calls);
    }

    [Theory]
    [InlineData("Hello there.")]                                                                         // no harmony at all
    [InlineData("<|channel|>commentary to=browser.search <|constrain|>json<|message|>{\"query\":\"x\"}")]  // a built-in tool, not offered
    [InlineData("<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\": ")]             // cut off JSON
    [InlineData("<|channel|>commentary to=functions.f")]                                                 // cut off header
    [InlineData("<|message|>no header")]                                                                 // a body without a header
    public void WhatIsNotACallStaysTextAsWritten(string reply)
    {
        var (content, _, calls) = HarmonyReply.Parse(reply);
        Assert.Empty(calls);
        Assert.Equal(reply, content);
    }

    [Fact]
    public void ATooLongHeaderIsText()
    {
        string junk = new('x', HarmonyReply.MaxHeaderLength + 10);
        var (content, reasoning, _) = HarmonyReply.Parse(junk + "<|message|>tail");
        Assert.Equal(junk + "<|message|>tail", content);
        Assert.Null(reasoning);
    }

    [Theory]
    [InlineData(Answer)]
    [InlineData(CallReply)]
    [InlineData(TemplateCallReply)]
    [InlineData("<|channel|>analysis<|message|>a<|b|>c <|en<|end|><|start|>assistant<|channel|>final<|message|>x <|retur")]
    [InlineData("Plain text, no channels <|end|> at all")]
    [InlineData("<|message|>no header<|end|><|start|>assistant<|channel|>final<|message|>ok")]
    public void StreamingInAnyPiecesGivesTheWholeSplit(string reply)
    {
        var whole = HarmonyReply.Parse(reply);
        for (int size = 1; size <= 12; size++)
        {
            var stream = new HarmonyReply.Stream();
            StringBuilder content = new(), reasoning = new();
            var calls = new List<ToolCall>();
            var parts = new List<ReplyPart>();
            for (int at = 0; at < reply.Length; at += size) parts.AddRange(stream.Push(reply.Substring(at, Math.Min(size, reply.Length - at))));
            parts.AddRange(stream.Flush());
            foreach (var p in parts)
            {
                Assert.Equal(1, (p.Content != null ? 1 : 0) + (p.Reasoning != null ? 1 : 0) + (p.Call != null ? 1 : 0));
                // No piece carries a marker that ends a message, or a part of one at its end.
                foreach (string end in new[] { HarmonyReply.End, HarmonyReply.Return, HarmonyReply.Call })
                    Assert.DoesNotContain(end, (p.Content ?? "") + (p.Reasoning ?? ""));
                content.Append(p.Content);
                reasoning.Append(p.Reasoning);
                if (p.Call != null) calls.Add(p.Call);
            }
            Assert.Equal(whole.Content ?? "", content.ToString());
            Assert.Equal(whole.Reasoning ?? "", reasoning.ToString());
            Assert.Equal(whole.Calls.Select(c => (c.Name, c.Arguments)), calls.Select(c => (c.Name, c.Arguments)));
        }
    }

    [Fact]
    public void ReasoningStreamsBeforeTheMessageEnds()
    {
        var stream = new HarmonyReply.Stream();
        Assert.Empty(stream.Push("<|channel|>analysis<|mess"));
        // What may begin the marker that ends the message waits; the rest goes on.
        Assert.Equal([new ReplyPart(null, "Thinking ", null)], stream.Push("age|>Thinking <|e"));
        Assert.Equal([new ReplyPart(null, "<|ex", null)], stream.Push("x"));
        Assert.Empty(stream.Push("<|end|><|start|>assistant<|channel|>final<|message|>"));
        Assert.Equal([new ReplyPart("Hi", null, null)], stream.Push("Hi"));
        Assert.Empty(stream.Flush());
    }

    [Fact]
    public void TheFormatGivesAnswerAndCallsAndForcesTheDocumentedCall()
    {
        var format = ToolCallFormat.Of(ChatTemplate.Parse("{{ '<|channel|>' }}{{ '<|call|>' }}"))!;
        Assert.Same(HarmonyToolCalls.Format, format);
        // Harmony replies are not blocks: a plain block splitter over the format is refused.
        Assert.Throws<ArgumentException>(() => new ToolCallStream(format));
        var (content, calls) = format.Parse(CallReply);
        Assert.Null(content);
        Assert.Equal("get_current_weather", Assert.Single(calls).Name);
        Assert.Equal("2 + 2 = 4.", format.Parse(Answer).Content);

        // One token per character and the markers as their special tokens, as the forced call writes them.
        string[] chars = [.. Enumerable.Range(0, 128).Select(c => ((char)c).ToString()), .. HarmonyReply.Markers.Select(_ => "")];
        var markers = HarmonyReply.Markers.Select((m, i) => (m, i)).ToDictionary(x => 128 + x.i, x => x.m);
        string forced = "<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{\"zone\": \"UTC\"}<|call|>";
        var c = format.Constraint(chars, ["get_weather", "get_time"], markerTokens: markers);
        for (int at = 0; at < forced.Length;)
        {
            var marker = markers.FirstOrDefault(m => forced.AsSpan(at).StartsWith(m.Value));
            int token = marker.Value != null ? marker.Key : forced[at];
            Assert.True(c.Allows(token), forced[..at]);
            // A marker is written by its token only.
            if (marker.Value != null) Assert.False(c.Allows(forced[at]));
            c.Accept(token);
            at += marker.Value?.Length ?? 1;
        }
        Assert.True(c.IsComplete);
        var call = Assert.Single(HarmonyReply.Parse(forced).Calls);
        Assert.Equal(("get_time", "{\"zone\": \"UTC\"}"), (call.Name, call.Arguments));
    }
}
