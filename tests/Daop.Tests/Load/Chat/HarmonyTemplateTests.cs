using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;
using Daop.Tests.Load.Tokenizer;

namespace Daop.Tests.Load.Chat;

/// <summary>
/// GPT-OSS's chat template (openai-gpt-oss-120b.jinja, the same for gpt-oss-20b) renders OpenAI's harmony format. The
/// expected strings are the documented format (openai/harmony docs/format.md: the system message with its date and
/// reasoning lines, the developer message with "# Instructions" and the TypeScript-like tools namespace, channels), in the
/// spelling the template's own logic gives where the two differ: the template writes a call's recipient before its
/// channel and no <c>&lt;|constrain|&gt;</c> (<c>&lt;|start|&gt;assistant to=functions.f&lt;|channel|&gt;commentary json</c>), and a
/// tool result's content through <c>tojson</c>, and ends a parameter line with "," after its default comment too. The
/// date comes from a fixed clock.
/// </summary>
public class HarmonyTemplateTests
{
    static ChatTemplate Template()
    {
        var t = ChatTemplate.Parse(File.ReadAllText(Path.Combine(TokTestPaths.ChatTemplates, "openai-gpt-oss-120b.jinja")), null, "<|return|>");
        t.Clock = () => new DateTime(2025, 6, 28, 23, 59, 0);
        return t;
    }

    static string System(bool tools) =>
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\n"
        + "Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message."
        + (tools ? "\nCalls to these tools must go to the commentary channel: 'functions'." : "") + "<|end|>";

    static readonly ToolDefinition[] Tools =
    [
        new("get_location", "Gets the location of the user."),
        new("get_current_weather", "Gets the current weather in the provided location.",
            """{"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}, "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}, "days": {"type": "array", "items": {"type": "integer"}}}, "required": ["location"]}"""),
    ];

    const string ToolsNamespace = "# Tools\n\n## functions\n\nnamespace functions {\n\n"
        + "// Gets the location of the user.\ntype get_location = () => any;\n\n"
        + "// Gets the current weather in the provided location.\ntype get_current_weather = (_: {\n"
        + "// The city and state, e.g. San Francisco, CA\nlocation: string,\n"
        + "format?: \"celsius\" | \"fahrenheit\", // default: celsius,\n" // the template's ",\n" follows the comment (format.md has none)
        + "days?: number[],\n"
        + "}) => any;\n\n} // namespace functions";

    [Fact]
    public void SystemAndUserTurnBecomeDeveloperInstructions()
    {
        var t = Template();
        Assert.Equal(ToolCallSyntax.Harmony, t.ToolCallSyntax);
        Assert.Equal(System(false) + "<|start|>developer<|message|># Instructions\n\nAnswer in French.\n\n<|end|>"
            + "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant",
            t.Render([new("system", "Answer in French."), new("user", "What is 2 + 2?")], true));
        // A "developer" first message is the same; without one there is no developer message at all.
        Assert.Equal(t.Render([new("system", "Answer in French."), new("user", "Hi")], true),
            t.Render([new("developer", "Answer in French."), new("user", "Hi")], true));
        Assert.Equal(System(false) + "<|start|>user<|message|>Hi<|end|>", t.Render([new("user", "Hi")], false));
    }

    [Fact]
    public void EarlierReasoningIsDroppedAndTheLastAssistantTurnKeepsIt()
    {
        var t = Template();
        ChatMessage[] turns =
        [
            new("user", "Hi"),
            new("assistant", "Hello!") { Reasoning = "The user greets me." },
            new("user", "How are you?"),
        ];
        // Inference: an earlier turn is its final message only, ended by <|end|>.
        Assert.Equal(System(false) + "<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|end|>"
            + "<|start|>user<|message|>How are you?<|end|><|start|>assistant", t.Render(turns, true));
        // A conversation that ends with the assistant (training): its analysis, then its final message ended by <|return|>.
        Assert.Equal(System(false) + "<|start|>user<|message|>Hi<|end|>"
            + "<|start|>assistant<|channel|>analysis<|message|>The user greets me.<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>",
            t.Render(turns[..2], false));
    }

    [Fact]
    public void ToolsRenderAsATypeScriptNamespace()
    {
        var t = Template();
        Assert.Equal(System(true) + "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n" + ToolsNamespace + "<|end|>"
            + "<|start|>user<|message|>Weather in Tokyo?<|end|><|start|>assistant",
            t.RenderWithTools([new("system", "Be brief."), new("user", "Weather in Tokyo?")], true, Tools));
        Assert.Equal(System(true) + "<|start|>developer<|message|>" + ToolsNamespace + "<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant",
            t.RenderWithTools([new("user", "Hi")], true, Tools));
    }

    [Fact]
    public void CallAndResultKeepTheCallsReasoningUntilAFinalAnswer()
    {
        var t = Template();
        var call = new ToolCall("call_1", "get_current_weather", """{"location": "Tokyo"}""");
        ChatMessage[] turns =
        [
            new("user", "Weather in Tokyo?"),
            new("assistant", "") { ToolCalls = [call], Reasoning = "I need the weather tool." },
            new("tool", "Sunny, 20 C") { ToolCallId = "call_1" },
        ];
        string head = System(true) + "<|start|>developer<|message|>" + ToolsNamespace + "<|end|><|start|>user<|message|>Weather in Tokyo?<|end|>";
        const string Call = "<|start|>assistant to=functions.get_current_weather<|channel|>commentary json<|message|>{\"location\": \"Tokyo\"}<|call|>";
        const string Result = "<|start|>functions.get_current_weather to=assistant<|channel|>commentary<|message|>\"Sunny, 20 C\"<|end|>";
        Assert.Equal(head + "<|start|>assistant<|channel|>analysis<|message|>I need the weather tool.<|end|>" + Call + Result + "<|start|>assistant",
            t.RenderWithTools(turns, true, Tools));
        // Once a final answer follows, the call's analysis is dropped.
        Assert.Equal(head + Call + Result + "<|start|>assistant<|channel|>final<|message|>It is sunny.<|end|><|start|>user<|message|>Thanks<|end|><|start|>assistant",
            t.RenderWithTools([.. turns, new("assistant", "It is sunny."), new("user", "Thanks")], true, Tools));
    }

    [Fact]
    public void TheTemplatesOwnChecksStillRaise()
    {
        var t = Template();
        var e = Assert.Throws<ChatTemplateException>(() => t.Render([new("user", "Hi"), new("tool", "x")], true));
        Assert.Equal("Message has tool role, but there was no previous assistant message with a tool call!", e.Message);
        e = Assert.Throws<ChatTemplateException>(() => t.Render([new("user", "Hi"), new("assistant", "<|channel|>final<|message|>Hey")], true));
        Assert.StartsWith("You have passed a message containing <|channel|> tags in the content field.", e.Message);
    }

    [Fact]
    public void ReasoningEffortAndIdentityAreTemplateVariables()
    {
        string prompt = Template().Render([new("user", "Hi")], true,
            new Dictionary<string, object?> { ["reasoning_effort"] = "high", ["model_identity"] = "You are a test." });
        Assert.StartsWith("<|start|>system<|message|>You are a test.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: high\n\n", prompt);
    }
}
