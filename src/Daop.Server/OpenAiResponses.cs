using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Server;

/// <summary>
/// Writes OpenAI response bodies with <see cref="Utf8JsonWriter"/> (no reflection; AOT-safe). <paramref name="tokenText"/>
/// spells a token id for log-probabilities.
/// </summary>
sealed class OpenAiResponses(string id, long created, string model, bool chat, Func<int, string>? tokenText = null)
{
    static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    string Object => chat ? "chat.completion" : "text_completion";
    string ChunkObject => chat ? "chat.completion.chunk" : "text_completion";

    /// <summary>One choice of a whole response: its text (null: a chat message with only tool calls), finish reason, log-probabilities, tool calls and reasoning.</summary>
    public sealed record Choice(string? Text, string Finish, IReadOnlyList<TokenLogprob>? Logprobs, IReadOnlyList<ToolCall>? Calls = null,
        string? Reasoning = null);

    /// <summary>The whole (non-streamed) response: one entry per choice; usage over all of them.</summary>
    public byte[] Whole(IReadOnlyList<Choice> choices, IReadOnlyList<GenerationStats> stats) => Write(w =>
    {
        Head(w, Object);
        w.WriteStartArray("choices");
        for (int i = 0; i < choices.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("index", i);
            if (chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                if (choices[i].Text is { } text) w.WriteString("content", text); else w.WriteNull("content");
                if (choices[i].Reasoning is { } reasoning) w.WriteString("reasoning_content", reasoning);
                if (choices[i].Calls is { Count: > 0 } calls)
                {
                    w.WriteStartArray("tool_calls");
                    foreach (var call in calls) ToolCallBody(w, call, null);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            else w.WriteString("text", choices[i].Text ?? "");
            Logprobs(w, choices[i].Logprobs, 0);
            w.WriteString("finish_reason", choices[i].Finish);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        Usage(w, stats);
        w.WriteEndObject();
    });

    /// <summary>The first chat chunk of choice <paramref name="index"/>: the assistant role, no content yet.</summary>
    public byte[] ChunkRole(int index) => Chunk(index, null, null, role: true);

    /// <summary>
    /// A chunk of choice <paramref name="index"/> carrying <paramref name="text"/> and the log-probabilities of the tokens
    /// generated since the last chunk (when asked for); <paramref name="textOffset"/> is where the text starts in the choice.
    /// </summary>
    public byte[] Chunk(int index, string text, IReadOnlyList<TokenLogprob>? logprobs = null, int textOffset = 0) =>
        Chunk(index, text, null, role: false, logprobs, textOffset);

    /// <summary>A chat chunk of choice <paramref name="index"/> carrying reasoning text: <c>delta.reasoning_content</c>.</summary>
    public byte[] ChunkReasoning(int index, string reasoning, IReadOnlyList<TokenLogprob>? logprobs = null) =>
        Chunk(index, null, null, role: false, logprobs, reasoning: reasoning);

    /// <summary>
    /// A chat chunk of choice <paramref name="index"/> carrying a whole tool call (its <paramref name="callIndex"/>-th):
    /// <c>delta.tool_calls</c> with its id, name and arguments at once.
    /// </summary>
    public byte[] ChunkToolCall(int index, int callIndex, ToolCall call, IReadOnlyList<TokenLogprob>? logprobs = null) =>
        Chunk(index, null, null, role: false, logprobs, call: (callIndex, call));

    // {"index"?, "id", "type": "function", "function": {"name", "arguments"}}: the arguments as JSON text, as OpenAI sends them.
    static void ToolCallBody(Utf8JsonWriter w, ToolCall call, int? index)
    {
        w.WriteStartObject();
        if (index is { } k) w.WriteNumber("index", k);
        w.WriteString("id", call.Id);
        w.WriteString("type", "function");
        w.WriteStartObject("function");
        w.WriteString("name", call.Name);
        w.WriteString("arguments", call.Arguments);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>The last content chunk of choice <paramref name="index"/>: empty, with the finish reason.</summary>
    public byte[] ChunkFinish(int index, string finish) => Chunk(index, chat ? null : "", finish, role: false);

    /// <summary>The usage chunk (stream_options.include_usage): no choices; usage over every choice.</summary>
    public byte[] ChunkUsage(IReadOnlyList<GenerationStats> stats) => Write(w =>
    {
        Head(w, ChunkObject);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        Usage(w, stats);
        w.WriteEndObject();
    });

    byte[] Chunk(int index, string? text, string? finish, bool role, IReadOnlyList<TokenLogprob>? logprobs = null, int textOffset = 0,
        (int Index, ToolCall Call)? call = null, string? reasoning = null) => Write(w =>
    {
        Head(w, ChunkObject);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", index);
        if (chat)
        {
            w.WriteStartObject("delta");
            if (role)
            {
                w.WriteString("role", "assistant");
                w.WriteString("content", "");
            }
            else if (text != null) w.WriteString("content", text);
            if (reasoning != null) w.WriteString("reasoning_content", reasoning);
            if (call is { } c)
            {
                w.WriteStartArray("tool_calls");
                ToolCallBody(w, c.Call, c.Index);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        else w.WriteString("text", text ?? "");
        Logprobs(w, logprobs, textOffset);
        if (finish != null) w.WriteString("finish_reason", finish);
        else w.WriteNull("finish_reason");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    // Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}. Completions (legacy):
    // {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}. Null when none were asked for.
    void Logprobs(Utf8JsonWriter w, IReadOnlyList<TokenLogprob>? lps, int textOffset)
    {
        if (lps == null || tokenText == null)
        {
            w.WriteNull("logprobs");
            return;
        }
        w.WriteStartObject("logprobs");
        if (chat)
        {
            w.WriteStartArray("content");
            foreach (var lp in lps)
            {
                w.WriteStartObject();
                TokenFields(w, lp.Token, lp.Logprob);
                w.WriteStartArray("top_logprobs");
                foreach (var (t, l) in lp.Top)
                {
                    w.WriteStartObject();
                    TokenFields(w, t, l);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        else
        {
            w.WriteStartArray("tokens");
            foreach (var lp in lps) w.WriteStringValue(tokenText(lp.Token));
            w.WriteEndArray();
            w.WriteStartArray("token_logprobs");
            foreach (var lp in lps) w.WriteNumberValue(lp.Logprob);
            w.WriteEndArray();
            w.WriteStartArray("top_logprobs");
            foreach (var lp in lps)
            {
                w.WriteStartObject();
                foreach (var (t, l) in lp.Top) w.WriteNumber(tokenText(t), l); // OpenAI's shape: a token's spelling is the key
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("text_offset");
            int offset = textOffset;
            foreach (var lp in lps)
            {
                w.WriteNumberValue(offset);
                offset += tokenText(lp.Token).Length;
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    void TokenFields(Utf8JsonWriter w, int token, float logprob)
    {
        string text = tokenText!(token);
        w.WriteString("token", text);
        w.WriteNumber("logprob", logprob);
        w.WriteStartArray("bytes");
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(text)) w.WriteNumberValue(b);
        w.WriteEndArray();
    }

    void Head(Utf8JsonWriter w, string obj)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", obj);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
    }

    // The prompt counts once (every choice continues the same prompt), the completions of every choice add up (as OpenAI).
    static void Usage(Utf8JsonWriter w, IReadOnlyList<GenerationStats> stats)
    {
        int prompt = stats.Max(s => s.PromptTokens), completion = stats.Sum(s => s.GeneratedTokens);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }

    /// <summary><c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    public static byte[] Error(ApiException e) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param != null) w.WriteString("param", e.Param); else w.WriteNull("param");
        if (e.Code != null) w.WriteString("code", e.Code); else w.WriteNull("code");
        w.WriteEndObject();
        w.WriteEndObject();
    });

    /// <summary>GET /v1/models.</summary>
    public static byte[] ModelList(string id, long created, int context) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        ModelBody(w, id, created, context);
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>POST /v1/embeddings: one embedding object per input, in order, as floats or base64 little-endian float32.</summary>
    public static byte[] Embeddings(string model, IReadOnlyList<float[]> vectors, int promptTokens, bool base64) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        for (int i = 0; i < vectors.Count; i++)
        {
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", i);
            if (base64) w.WriteBase64String("embedding", System.Runtime.InteropServices.MemoryMarshal.AsBytes(vectors[i].AsSpan()));
            else
            {
                w.WriteStartArray("embedding");
                foreach (float x in vectors[i]) w.WriteNumberValue(x);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("model", model);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", promptTokens);
        w.WriteNumber("total_tokens", promptTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    });

    /// <summary>POST /tokenize: the ids, their count and the context length (vLLM's fields).</summary>
    public static byte[] Tokens(int[] ids, int context) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("tokens");
        foreach (int id in ids) w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteNumber("count", ids.Length);
        w.WriteNumber("max_model_len", context);
        w.WriteEndObject();
    });

    /// <summary>POST /detokenize: the text under llama.cpp's name (<c>content</c>) and vLLM's (<c>prompt</c>).</summary>
    public static byte[] Text(string text) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("content", text);
        w.WriteString("prompt", text);
        w.WriteEndObject();
    });

    /// <summary>GET /v1/models/{id}.</summary>
    public static byte[] ModelObject(string id, long created, int context) => Write(w => ModelBody(w, id, created, context));

    static void ModelBody(Utf8JsonWriter w, string id, long created, int context)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", "daop");
        w.WriteNumber("context_length", context);
        w.WriteEndObject();
    }

    /// <summary>GET /health.</summary>
    public static byte[] Health(string id, DaopModel m, int inFlight, long served) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("status", "ok");
        w.WriteString("model", id);
        w.WriteBoolean("busy", m.IsBusy);
        w.WriteNumber("queued", m.QueuedGenerations);
        w.WriteNumber("in_flight", inFlight);
        w.WriteNumber("served", served);
        w.WriteEndObject();
    });

    /// <summary>GET /health for a client without the API key: <c>{"status": "ok"}</c> only.</summary>
    public static byte[] HealthStatus() => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("status", "ok");
        w.WriteEndObject();
    });

    static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, Options)) body(w);
        return buffer.WrittenSpan.ToArray();
    }
}
