using System.Text;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;
using Daop.Tests.Load.Tokenizer;

namespace Daop.Tests.Generate;

/// <summary>
/// Replies of thinking models (Qwen3: <c>&lt;think&gt;\n...\n&lt;/think&gt;\n\n</c> then the answer, as its template writes
/// an earlier turn's reasoning) split into reasoning and answer, with tool calls after the reasoning; whole and streamed
/// in any pieces alike.
/// </summary>
public class ReplySplitterTests
{
    static ChatTemplate Fixture(string file) => ChatTemplate.Parse(File.ReadAllText(Path.Combine(TokTestPaths.ChatTemplates, file)));

    const string Call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

    [Fact]
    public void WhichRepliesAreSplit()
    {
        Assert.True(Fixture("qwen3.jinja").Thinks);
        Assert.False(Fixture("qwen2.5-instruct.jinja").Thinks);
        Assert.False(Fixture("openai-gpt-oss-120b.jinja").Thinks);
        Assert.Null(ReplySplitter.For(HermesToolCalls.Format, toolCalls: false));
        Assert.Null(ReplySplitter.For(null, toolCalls: true));
        Assert.NotNull(ReplySplitter.For(null, toolCalls: false, thinks: true));
        Assert.NotNull(ReplySplitter.For(HarmonyToolCalls.Format, toolCalls: false)); // harmony always
    }

    [Theory]
    [InlineData("<think>\nThe user greets me.\nBe kind.\n</think>\n\nHello!", "Hello!", "The user greets me.\nBe kind.", false)]
    [InlineData("\n<think>\n\n</think>\n\nHi", "Hi", null, false)]                              // enable_thinking=false's empty block
    [InlineData("Hello <think>x</think>", "Hello <think>x</think>", null, false)]              // not at the start: text
    [InlineData("<think>\nStill thinking", "", "Still thinking", false)]                       // cut off while thinking
    [InlineData("<think>\nNeed the weather.\n</think>\n\n" + Call, null, "Need the weather.", true)]
    [InlineData("<think>a</think>b " + Call, "b", "a", true)]
    public void ReasoningThenTheAnswer(string reply, string? content, string? reasoning, bool calls)
    {
        var format = calls ? HermesToolCalls.Format : null;
        var whole = ReplySplitter.For(format, calls, thinks: true)!.Whole(reply);
        Assert.Equal(content, whole.Content);
        Assert.Equal(reasoning, whole.Reasoning);
        Assert.Equal(calls ? ["get_weather"] : Array.Empty<string>(), whole.Calls.Select(c => c.Name));
        for (int size = 1; size <= 9; size++)
        {
            var split = ReplySplitter.For(format, calls, thinks: true)!;
            StringBuilder text = new(), thought = new();
            var made = new List<ToolCall>();
            var parts = new List<ReplyPart>();
            for (int at = 0; at < reply.Length; at += size) parts.AddRange(split.Push(reply.Substring(at, Math.Min(size, reply.Length - at))));
            parts.AddRange(split.Flush());
            foreach (var p in parts)
            {
                Assert.DoesNotContain("</think", p.Reasoning ?? "");
                text.Append(p.Content);
                thought.Append(p.Reasoning);
                if (p.Call != null) made.Add(p.Call);
            }
            Assert.Equal(whole.Content ?? "", text.ToString().Trim());
            Assert.Equal(whole.Reasoning ?? "", thought.ToString());
            Assert.Equal(whole.Calls.Count, made.Count);
        }
    }

    [Fact]
    public void ReasoningStreamsAsItComes()
    {
        var split = ReplySplitter.For(null, false, thinks: true)!;
        Assert.Empty(split.Push("<thi"));
        Assert.Equal([new ReplyPart(null, "Let me", null)], split.Push("nk>\nLet me"));
        Assert.Equal([new ReplyPart(null, " see.", null)], split.Push(" see.\n</th"));
        Assert.Equal([new ReplyPart("Yes", null, null)], split.Push("ink>\n\nYes"));
        Assert.Equal([new ReplyPart(" it is.", null, null)], split.Push(" it is."));
        Assert.Empty(split.Flush());
    }
}
