namespace Daop.Engine.Load.Chat;

/// <summary>One chat turn as chat templates see it: <c>message['role']</c> and <c>message['content']</c>, and for tool use <c>tool_calls</c> and <c>tool_call_id</c>.</summary>
/// <param name="Role">"system", "user", "assistant" or "tool".</param>
/// <param name="Content">The message text.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>The calls an assistant turn made (<c>message['tool_calls']</c>), or null.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>A "tool" turn: the id of the call it answers (<c>message['tool_call_id']</c>), or null.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>A "tool" turn: the function that answered (<c>message['name']</c>), or null.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// An assistant turn's reasoning (OpenAI-compatible servers' <c>reasoning_content</c>), or null: templates see it as
    /// <c>message['reasoning_content']</c> (Qwen3) and <c>message['thinking']</c> (GPT-OSS's harmony analysis channel).
    /// </summary>
    public string? Reasoning { get; init; }
}
