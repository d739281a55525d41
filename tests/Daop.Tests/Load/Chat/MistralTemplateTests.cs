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
        Assert.Equal("<s>[AVAILABLE_TOOLS]" + Tools + "[/AVAILABLE_TOOLS][INST]What's 2+2?[/INST][TOOL_CALLS]" + Call + "</s>"
            + "[TOOL_RESULTS]" + Result + "[/TOOL_RESULTS]2+2=4</s>",
            template.RenderWithTools(Conversation(), false, [Calculator]));
    }
}
