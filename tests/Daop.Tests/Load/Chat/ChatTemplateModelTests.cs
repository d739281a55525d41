using Daop.Engine.Load.Chat;
using Daop.Tests.Load.Tokenizer;

namespace Daop.Tests.Load.Chat;

/// <summary>Real chat templates (embedded model, Mixtral-Instruct, Qwen2.5, Qwen3) with hand-derived expected prompts.</summary>
public class ChatTemplateModelTests
{
    private const string QwenSystem = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

    private static ChatTemplate Fixture(string file, string? bos = null, string? eos = null)
        => ChatTemplate.Parse(File.ReadAllText(Path.Combine(TokTestPaths.ChatTemplates, file)), bos, eos);

    private static ChatMessage[] Msgs(params (string Role, string Content)[] m) => m.Select(x => new ChatMessage(x.Role, x.Content)).ToArray();

    [Theory]
    [InlineData(true, "<|im_start|>system\nYou are a coder.<|im_end|>\n<|im_start|>user\nWrite hello world<|im_end|>\n<|im_start|>assistant\n")]
    [InlineData(false, "<|im_start|>system\nYou are a coder.<|im_end|>\n<|im_start|>user\nWrite hello world<|im_end|>\n")]
    public void EmbeddedModelChatMl(bool addGenerationPrompt, string expected)
    {
        var template = ChatTemplate.FromDirectory(TokTestPaths.TinyModel)!;
        Assert.Equal("<|endoftext|>", template.BosToken);
        Assert.Equal("<|endoftext|>", template.EosToken);
        Assert.Equal(expected, template.Render(Msgs(("system", "You are a coder."), ("user", "Write hello world")), addGenerationPrompt));
    }

    [Fact]
    public void MistralAlternatingConversation()
    {
        var template = Fixture("mixtral-8x7b-instruct-v0.1.jinja", "<s>", "</s>");
        string prompt = template.Render(Msgs(("user", "Hi"), ("assistant", "Hello!"), ("user", "How are you?")), addGenerationPrompt: true);
        Assert.Equal("<s>[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]", prompt);
    }

    [Theory]
    [InlineData("user", "user")]
    [InlineData("system", "user")]
    [InlineData("assistant", "user")]
    public void MistralRejectsNonAlternatingRoles(string first, string second)
    {
        var template = Fixture("mixtral-8x7b-instruct-v0.1.jinja", "<s>", "</s>");
        var e = Assert.Throws<ChatTemplateException>(() => template.Render(Msgs((first, "a"), (second, "b")), true));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.Message);
    }

    [Fact]
    public void MistralRejectsOtherRolesInAssistantPosition()
    {
        var template = Fixture("mixtral-8x7b-instruct-v0.1.jinja", "<s>", "</s>");
        var e = Assert.Throws<ChatTemplateException>(() => template.Render(Msgs(("user", "a"), ("tool", "b")), true));
        Assert.Equal("Only user and assistant roles are supported!", e.Message);
    }

    [Fact]
    public void Qwen25DefaultSystemPrompt()
    {
        string prompt = Fixture("qwen2.5-instruct.jinja").Render(Msgs(("user", "Hello")), addGenerationPrompt: true);
        Assert.Equal(QwenSystem + "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void Qwen25MultiTurnWithSystem()
    {
        string prompt = Fixture("qwen2.5-instruct.jinja").Render(
            Msgs(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hey"), ("user", "Bye")), addGenerationPrompt: false);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            + "<|im_start|>assistant\nHey<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n", prompt);
    }

    private static Dictionary<string, object?> WeatherTool() => new()
    {
        ["type"] = "function",
        ["function"] = new Dictionary<string, object?>
        {
            ["name"] = "get_weather",
            ["description"] = "Get the weather",
            ["parameters"] = new Dictionary<string, object?>
            {
                ["type"] = "object",
                ["properties"] = new Dictionary<string, object?> { ["city"] = new Dictionary<string, object?> { ["type"] = "string" } },
                ["required"] = new[] { "city" },
            },
        },
    };

    [Fact]
    public void Qwen25ToolsInSystemPromptUseTojson()
    {
        string prompt = Fixture("qwen2.5-instruct.jinja").Render(Msgs(("user", "Weather in Paris?")), true,
            new Dictionary<string, object?> { ["tools"] = new[] { WeatherTool() } });
        Assert.Equal("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
            + "You may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", "
            + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n"
            + "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void Qwen25ToolCallAndToolResponse()
    {
        // Richer messages (tool_calls) go in through the "messages" variable, which overrides the list.
        var messages = new List<object?>
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Weather in Paris?" },
            new Dictionary<string, object?>
            {
                ["role"] = "assistant",
                ["content"] = "",
                ["tool_calls"] = new List<object?>
                {
                    new Dictionary<string, object?>
                    {
                        ["type"] = "function",
                        ["function"] = new Dictionary<string, object?>
                        {
                            ["name"] = "get_weather",
                            ["arguments"] = new Dictionary<string, object?> { ["city"] = "Paris" },
                        },
                    },
                },
            },
            new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "{\"temp\": 20}" },
        };
        string prompt = Fixture("qwen2.5-instruct.jinja").Render([], true, new Dictionary<string, object?> { ["messages"] = messages });
        Assert.Equal(QwenSystem + "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void ToolDefinitionsAndCallMessagesRenderAsTheirDictionaries()
    {
        // The same conversation as the two tests above, through the typed API: tools as ToolDefinition, the call as a
        // ToolCall with JSON-text arguments (parsed for tojson, as vLLM does), the answer as a "tool" message.
        var template = Fixture("qwen2.5-instruct.jinja");
        Assert.Equal(ToolCallSyntax.Hermes, template.ToolCallSyntax);
        Assert.Equal(ToolCallSyntax.None, Fixture("mixtral-8x7b-instruct-v0.1.jinja").ToolCallSyntax);
        var tool = new ToolDefinition("get_weather", "Get the weather",
            "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}");
        Assert.Equal(template.Render(Msgs(("user", "Weather in Paris?")), true, new Dictionary<string, object?> { ["tools"] = new[] { WeatherTool() } }),
            template.RenderWithTools(Msgs(("user", "Weather in Paris?")), true, [tool]));

        ChatMessage[] typed =
        [
            new("user", "Weather in Paris?"),
            new("assistant", "") { ToolCalls = [new ToolCall("call_1", "get_weather", "{\"city\": \"Paris\"}")] },
            new("tool", "{\"temp\": 20}") { ToolCallId = "call_1", Name = "get_weather" },
        ];
        Assert.Equal(QwenSystem + "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
            template.Render(typed, true));

        // Arguments that are not a JSON object go to the template as the text given; parameters that are not JSON are an error.
        string text = template.Render([typed[0], new("assistant", "") { ToolCalls = [new ToolCall("c", "f", "not json")] }], false);
        Assert.Contains("\"arguments\": \"not json\"}", text);
        var bad = Assert.Throws<ChatTemplateException>(() => template.RenderWithTools(typed, true, [new ToolDefinition("f", null, "{oops")]));
        Assert.Contains("tool 'f'", bad.Message);
    }

    [Fact]
    public void Qwen3OffersToolsAndRendersCalls()
    {
        var template = Fixture("qwen3.jinja");
        Assert.Equal(ToolCallSyntax.Hermes, template.ToolCallSyntax);
        string prompt = template.RenderWithTools(Msgs(("user", "Time?")), true, [new ToolDefinition("get_time")]);
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_time\"}}\n</tools>", prompt);
        Assert.EndsWith("<|im_start|>user\nTime?<|im_end|>\n<|im_start|>assistant\n", prompt);
        string call = template.Render([new("user", "Time?"), new("assistant", "") { ToolCalls = [new ToolCall("c", "get_time", "{}")] },
            new("tool", "12:00") { ToolCallId = "c" }], false);
        Assert.EndsWith("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n", call);
    }

    [Fact]
    public void RepeatedJsonKeysKeepTheLastValue()
    {
        var template = ChatTemplate.Parse("{{ tools[0].function.parameters | tojson }}");
        Assert.Equal("{\"a\": 2, \"b\": 3}", template.RenderWithTools([], false, [new ToolDefinition("f", null, "{\"a\": 1, \"b\": 3, \"a\": 2}")]));
    }

    private static readonly ChatMessage[] Qwen3Conversation =
        Msgs(("system", "You are helpful."), ("user", "Hi"), ("assistant", "<think>\nhmm\n</think>\n\nHello!"), ("user", "Bye"));

    private const string Qwen3Expected = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        + "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";

    [Fact]
    public void Qwen3DropsReasoningOfEarlierTurns()
    {
        Assert.Equal(Qwen3Expected, Fixture("qwen3.jinja").Render(Qwen3Conversation, addGenerationPrompt: true));
    }

    [Fact]
    public void Qwen3EnableThinkingFalseAddsEmptyThinkBlock()
    {
        string prompt = Fixture("qwen3.jinja").Render(Qwen3Conversation, true, new Dictionary<string, object?> { ["enable_thinking"] = false });
        Assert.Equal(Qwen3Expected + "<think>\n\n</think>\n\n", prompt);
        // enable_thinking=true is the default behaviour.
        Assert.Equal(Qwen3Expected, Fixture("qwen3.jinja").Render(Qwen3Conversation, true, new Dictionary<string, object?> { ["enable_thinking"] = true }));
    }

    [Fact]
    public void Qwen3KeepsReasoningOfTheFinalAssistantTurn()
    {
        string prompt = Fixture("qwen3.jinja").Render(Msgs(("user", "2+2?"), ("assistant", "<think>\nadd\n</think>\n\n4")), false);
        Assert.Equal("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n", prompt);
    }

    [Fact]
    public void Qwen3MultiStepToolKeepsReasoningAfterTheLastRealQuery()
    {
        // A user turn that is only a <tool_response> is not a query: the reversed scan (namespace,
        // messages[::-1], startswith/endswith) puts last_query_index on "Q", so the reasoning stays.
        var template = Fixture("qwen3.jinja");
        string withTool = template.Render(
            Msgs(("user", "Q"), ("assistant", "<think>\nplan\n</think>\n\nA1"), ("user", "<tool_response>x</tool_response>")), true);
        Assert.Equal("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\nA1<|im_end|>\n"
            + "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n", withTool);

        string withQuery = template.Render(Msgs(("user", "Q"), ("assistant", "<think>\nplan\n</think>\n\nA1"), ("user", "R")), true);
        Assert.Equal("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            + "<|im_start|>user\nR<|im_end|>\n<|im_start|>assistant\n", withQuery);
    }
}
