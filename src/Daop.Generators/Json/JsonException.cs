using System;

namespace Daop.Generators.Json;

/// <summary>Malformed JSON: what was wrong and the offset in the source text where it was noticed.</summary>
internal sealed class JsonException : Exception
{
    public JsonException(string message, int offset) : base(message)
    {
        Offset = offset;
    }

    /// <summary>Offset of the offending character (the text length at an unexpected end).</summary>
    public int Offset { get; }
}
