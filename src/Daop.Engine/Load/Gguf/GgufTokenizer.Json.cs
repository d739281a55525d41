using System.Text.Json;

namespace Daop.Engine.Load.Gguf;

// The tokenizer.json pieces a GGUF vocabulary is described with: added tokens, post-processor, BPE model, and the small
// components, written with Utf8JsonWriter (no reflection: the engine is trim- and AOT-safe).
public static partial class GgufTokenizer
{
    static void AddedTokens(Utf8JsonWriter w, Vocabulary v)
    {
        w.WriteStartArray("added_tokens");
        for (int i = 0; i < v.Tokens.Length; i++)
        {
            if (!v.IsAdded(i)) continue;
            w.WriteStartObject();
            w.WriteNumber("id", i);
            w.WriteString("content", v.Tokens[i]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", v.Types[i] != TokenType.UserDefined);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    static void PostProcessor(Utf8JsonWriter w, Vocabulary v)
    {
        int? bos = v.AddBos ? v.Bos : null, eos = v.AddEos ? v.Eos : null;
        if (bos == null && eos == null)
        {
            w.WriteNull("post_processor");
            return;
        }
        w.WriteStartObject("post_processor");
        w.WriteString("type", "TemplateProcessing");
        w.WriteStartArray("single");
        if (bos is { } b) SpecialPiece(w, v.Tokens[b]);
        w.WriteStartObject();
        w.WriteStartObject("Sequence");
        w.WriteString("id", "A");
        w.WriteNumber("type_id", 0);
        w.WriteEndObject();
        w.WriteEndObject();
        if (eos is { } e) SpecialPiece(w, v.Tokens[e]);
        w.WriteEndArray();
        w.WriteStartObject("special_tokens");
        foreach (int id in new[] { bos, eos }.OfType<int>().Distinct())
        {
            w.WriteStartObject(v.Tokens[id]);
            w.WriteString("id", v.Tokens[id]);
            w.WriteStartArray("ids");
            w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("tokens");
            w.WriteStringValue(v.Tokens[id]);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    static void SpecialPiece(Utf8JsonWriter w, string token)
    {
        w.WriteStartObject();
        w.WriteStartObject("SpecialToken");
        w.WriteString("id", token);
        w.WriteNumber("type_id", 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    static void Model(Utf8JsonWriter w, Vocabulary v, List<(string A, string B)> merges, bool ignoreMerges, bool byteFallback)
    {
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteBoolean("byte_fallback", byteFallback);
        w.WriteBoolean("fuse_unk", byteFallback);
        w.WriteBoolean("ignore_merges", ignoreMerges);
        if (byteFallback && v.Unk is { } unk) w.WriteString("unk_token", v.Tokens[unk]);
        w.WriteStartObject("vocab");
        for (int i = 0; i < v.Tokens.Length; i++) w.WriteNumber(v.Tokens[i], i);
        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (a, b) in merges)
        {
            w.WriteStartArray();
            w.WriteStringValue(a);
            w.WriteStringValue(b);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void ByteLevel(Utf8JsonWriter w, string? property)
    {
        if (property == null) w.WriteStartObject();
        else w.WriteStartObject(property);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", false);
        w.WriteBoolean("use_regex", false);
        w.WriteEndObject();
    }

    static void Replace(Utf8JsonWriter w, string from, string to)
    {
        w.WriteStartObject();
        w.WriteString("type", "Replace");
        w.WriteStartObject("pattern");
        w.WriteString("String", from);
        w.WriteEndObject();
        w.WriteString("content", to);
        w.WriteEndObject();
    }

    static void Simple(Utf8JsonWriter w, string type)
    {
        w.WriteStartObject();
        w.WriteString("type", type);
        w.WriteEndObject();
    }

    static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1 << 16);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            body(w);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
