namespace Daop.Engine.Load.Chat;

/// <summary>One chat turn as chat templates see it: <c>message['role']</c> and <c>message['content']</c>.</summary>
/// <param name="Role">"system", "user", "assistant" or "tool".</param>
/// <param name="Content">The message text.</param>
public sealed record ChatMessage(string Role, string Content);
