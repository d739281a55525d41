namespace Daop.Engine.Load.Chat;

/// <summary>
/// A chat template that cannot be parsed or rendered: unsupported Jinja syntax (the message names the
/// construct and line), a type error while rendering, or the template's own raise_exception(message).
/// </summary>
public sealed class ChatTemplateException(string message, Exception? inner = null) : Exception(message, inner);
