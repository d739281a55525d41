using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;
using Daop.Tests.Load.Tokenizer;

namespace Daop.Tests.Load.Chat;

/// <summary>
/// Mistral's tool-calling templates (Mistral-7B-Instruct-v0.3, Mistral-Nemo) render tools, calls and results as Mistral
/// documents them: the expected strings are the cookbook's (mistralai/cookbook, tokenization/tool_calling.md, the
/// "calculator" scenario for tokenizer V3 and V3-Tekken), not output of the templates.
/// </summary>
public class MistralTemplateTests
{
    static ChatTemplate Fixture(string file) =>
        ChatTemplate.Parse(File.ReadAllText(Path.Combine(TokTestPaths.ChatTemplates, file)), "<s>", "</s>");

    static readonly ToolDefinition Calculator = new("calculator", "Performs mathematical calculations",
        """{"type": "object", "properties": {"operation": {"type": "string", "description": "The operation to be done in python format."}}, "required": ["operation"]}""");

    const string Tools = """[{"type": "function", "function": {"name": "calculator", "description": "Performs mathematical calculations", "parameters": {"type": "object", "properties": {"operation": {"type": "string", "description": "The operation to be done in python format."}}, "required": ["operation"]}}}]""";
    const string Call = """[{"name": "calculator", "arguments": {"operation": "2+2", "format": "celsius"}, "id": "VvvODy9mT"}]""";
    const string Result = """{"content": 4, "call_id": "VvvODy9mT"}""";

    static ChatMessage[] Conversation(string id = "VvvODy9mT") =>
    [
        new("user", "What's 2+2?"),
        new("assistant", "") { ToolCalls = [new ToolCall(id, "calculator", """{"operation": "2+2", "format": "celsius"}""")] },
        new("tool", "4") { ToolCallId = id, Name = "calculator" },
        new("assistant", "2+2=4"),
    ];

    [Fact]
    public void V3RendersToolsCallsAndResultsAsDocumented()
    {
        var template = Fixture("mistral-7b-instruct-v0.3.jinja");
        Assert.Equal(ToolCallSyntax.Mistral, template.ToolCallSyntax);
        Assert.Equal("<s>[AVAILABLE_TOOLS] " + Tools + "[/AVAILABLE_TOOLS][INST] What's 2+2?[/INST]",
            template.RenderWithTools([new("user", "What's 2+2?")], true, [Calculator]));
        Assert.Equal("<s>[AVAILABLE_TOOLS] " + Tools + "[/AVAILABLE_TOOLS][INST] What's 2+2?[/INST][TOOL_CALLS] " + Call + "</s>"
            + "[TOOL_RESULTS] " + Result + "[/TOOL_RESULTS] 2+2=4</s>",
            template.RenderWithTools(Conversation(), false, [Calculator]));
    }

    [Fact]
    public void TekkenRendersToolsCallsAndResultsAsDocumented()
    {
        var template = Fixture("mistral-nemo-instruct-2407.jinja");
        Assert.Equal(ToolCallSyntax.Mistral, template.ToolCallSyntax);
        // A forced call follows the template's spacing: none after the marker with tekken, one with sentencepiece.
        Assert.Same(MistralToolCalls.Tight, ToolCallFormat.Of(template));
        Assert.Same(MistralToolCalls.Spaced, ToolCallFormat.Of(Fixture("mistral-7b-instruct-v0.3.jinja")));
        Assert.Null(ToolCallFormat.Of(Fixture("mixtral-8x7b-instruct-v0.1.jinja")));
        Assert.Equal("<s>[AVAILABLE_TOOLS]" + Tools + "[/AVAILABLE_TOOLS][INST]What's 2+2?[/INST][TOOL_CALLS]" + Call + "</s>"
            + "[TOOL_RESULTS]" + Result + "[/TOOL_RESULTS]2+2=4</s>",
            template.RenderWithTools(Conversation(), false, [Calculator]));
    }

    [Fact]
    public void OtherCallIdsReachTheTemplateAsNineCharacterOnes()
    {
        // The template itself refuses OpenAI-style ids...
        var template = Fixture("mistral-7b-instruct-v0.3.jinja");
        var raw = new List<object?>
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Time?" },
            new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "12:00", ["tool_call_id"] = "call_1" },
        };
        var e = Assert.Throws<ChatTemplateException>(() => template.Render([], false, new Dictionary<string, object?> { ["messages"] = raw }));
        Assert.Equal("Tool call IDs should be alphanumeric strings with length 9!", e.Message);

        // ...so they are mapped, the same way in the call and in its result; ids that fit stay as they are.
        string id = ToolCall.MistralId("call_1");
        Assert.Matches("^[A-Za-z0-9]{9}$", id);
        string prompt = template.Render(Conversation("call_1"), false);
        Assert.Contains("\"id\": \"" + id + "\"}]</s>", prompt);
        Assert.Contains("\"call_id\": \"" + id + "\"}[/TOOL_RESULTS]", prompt);
        Assert.Contains("\"id\": \"VvvODy9mT\"", template.Render(Conversation(), false));
        // Hermes templates get ids as given.
        Assert.Contains("call_1", ChatTemplate.Parse("{{ messages[1].tool_calls[0].id }}").Render(Conversation("call_1"), false));
    }

    // The assistant turn of Mistral's v11+ templates (Ministral 3, Devstral Small 2, Magistral: chat_template.jinja).
    const string ArgsTemplate = """
        {%- for message in messages %}
            {%- if message['role'] == 'user' %}
                {{- '[INST]' + message['content'] + '[/INST]' }}
            {%- elif message['role'] == 'assistant' %}
                {%- if message['tool_calls'] is defined and message['tool_calls'] is not none and message['tool_calls']|length > 0 %}
                    {%- for tool in message['tool_calls'] %}
                        {%- set arguments = tool['function']['arguments'] %}
                        {%- if arguments is not string %}
                            {%- set arguments = arguments|tojson|safe %}
                        {%- elif arguments == '' %}
                            {%- set arguments = '{}' %}
                        {%- endif %}
                        {{- '[TOOL_CALLS]' + tool['function']['name'] + '[ARGS]' + arguments }}
                    {%- endfor %}
                {%- endif %}
                {{- eos_token }}
            {%- elif message['role'] == 'tool' %}
                {{- '[TOOL_RESULTS]' + message['content']|string + '[/TOOL_RESULTS]' }}
            {%- endif %}
        {%- endfor %}
        """;

    [Fact]
    public void V11TemplatesWriteEachCallWithArgs()
    {
        var template = ChatTemplate.Parse(ArgsTemplate, "<s>", "</s>");
        Assert.Equal(ToolCallSyntax.MistralArgs, template.ToolCallSyntax);
        Assert.Same(MistralToolCalls.ArgsForm, ToolCallFormat.Of(template));
        ChatMessage[] messages =
        [
            new("user", "Weather and time?"),
            new("assistant", "") { ToolCalls = [new ToolCall("a", "get_weather", """{"city": "Paris"}"""), new ToolCall("b", "get_time", "")] },
            new("tool", "sunny") { ToolCallId = "a" },
        ];
        Assert.Equal("""[INST]Weather and time?[/INST][TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}</s>[TOOL_RESULTS]sunny[/TOOL_RESULTS]""",
            template.Render(messages, false));
    }
}
