using System.Text.Encodings.Web;
using System.Text.Json;

namespace Daop.Cli;

/// <summary>Writes one indented JSON object to stdout with <see cref="Utf8JsonWriter"/> (no reflection, so AOT-safe).</summary>
static class JsonOut
{
    public static void Write(Action<Utf8JsonWriter> body)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
    }
}
