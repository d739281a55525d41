using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Api;

/// <summary>How <see cref="DaopModel"/> picks tokens and when it stops. The defaults generate up to 128 tokens greedily.</summary>
public sealed record GenerationSettings
{
    /// <summary>The default settings (greedy, 128 tokens).</summary>
    public static GenerationSettings Default { get; } = new();

    /// <summary>Most tokens to generate.</summary>
    public int MaxTokens { get; init; } = 128;
    /// <summary>0 means greedy (arg-max); otherwise logits are divided by this before softmax.</summary>
    public float Temperature { get; init; }
    /// <summary>Sample only from the K most likely tokens (0 = no limit).</summary>
    public int TopK { get; init; }
    /// <summary>Sample from the smallest set of tokens whose probability reaches P (1 = no limit).</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Sample only tokens at least this fraction as likely as the most likely one (0 = no limit).</summary>
    public float MinP { get; init; }
    /// <summary>OpenAI's frequency penalty in [−2, 2] (<see cref="SamplingOptions.FrequencyPenalty"/>).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI's presence penalty in [−2, 2] (<see cref="SamplingOptions.PresencePenalty"/>).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Repetition penalty in (0, 10] over prompt and output, as llama.cpp and Hugging Face apply it (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Sampling seed: the same seed and settings give the same text.</summary>
    public ulong Seed { get; init; } = 42;
    /// <summary>
    /// Record each generated token's log-probability and this many alternatives in <see cref="GenerationStats.Logprobs"/>
    /// (<see cref="SamplingOptions.TopLogprobs"/>); null (default): none.
    /// </summary>
    public int? TopLogprobs { get; init; }
    /// <summary>
    /// The output is one JSON object (OpenAI's <c>response_format: {"type": "json_object"}</c>): tokens that would make
    /// it invalid are never picked (<see cref="JsonObjectConstraint"/>), and generation stops where the object closes. A
    /// <see cref="MaxTokens"/> limit can still cut it short (finish reason length), as with OpenAI.
    /// </summary>
    public bool JsonObject { get; init; }
    /// <summary>
    /// The output is one JSON value this JSON Schema accepts (OpenAI's <c>response_format: {"type": "json_schema"}</c>),
    /// by constrained decoding over <see cref="JsonSchemaGrammar"/>'s subset; generation stops where the value closes. A
    /// schema keyword outside the subset is refused (<see cref="JsonSchemaException"/> from <see cref="Validate"/>). Null
    /// (default): free text.
    /// </summary>
    public string? JsonSchema { get; init; }
    /// <summary>
    /// The output is exactly one tool call, in the model's syntax (<see cref="DaopModel.ToolCallSyntax"/>), to one of
    /// these functions (OpenAI's <c>tool_choice</c> "required" or a named function), its arguments a JSON object that
    /// the function's <see cref="ToolDefinition.Parameters"/> schema accepts where <see cref="JsonSchemaGrammar"/>'s
    /// subset covers it (any JSON object for a function without parameters or with keywords outside it): tokens that
    /// would leave that form are never picked and generation stops where the call closes. Null (default): free text.
    /// </summary>
    public IReadOnlyList<ToolDefinition>? RequiredToolCall { get; init; }
    /// <summary>
    /// Write the special tokens that mark tool calls in the model's format (<see cref="ToolCallFormat.Markers"/>, e.g.
    /// Mistral's <c>[TOOL_CALLS]</c>) into the text, which otherwise leaves special tokens out, so that the format's
    /// parser finds the calls. <see cref="DaopModel.ChatAsync(IReadOnlyList{ChatMessage}, IReadOnlyList{ToolDefinition}, GenerationSettings?, GenerationStats?, CancellationToken)"/>
    /// with tools and <see cref="RequiredToolCall"/> imply it; set it when generating from
    /// <see cref="DaopModel.ChatTokens(IReadOnlyList{ChatMessage}, IReadOnlyList{ToolDefinition}, CancellationToken)"/>
    /// and splitting the reply yourself. Other special tokens stay out.
    /// </summary>
    public bool KeepToolCallMarkers { get; init; }
    /// <summary>Text that ends generation; the stop sequence itself is not returned. Null or empty: none.</summary>
    public IReadOnlyList<string>? Stop { get; init; }
    /// <summary>
    /// For <see cref="DaopModel.GenerateAsync(string, GenerationSettings?, CancellationToken)"/>: apply the tokenizer's
    /// post-processor (e.g. a leading BOS token), as Hugging Face does by default. Chat prompts never add them (the
    /// template writes its own).
    /// </summary>
    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        ToSampling([]).Validate();
        if (JsonSchema != null)
        {
            if (JsonObject) throw new ArgumentException("a JSON schema and a JSON object output exclude each other: give one");
            JsonSchemaGrammar.Compile(JsonSchema);
        }
        if (RequiredToolCall != null)
        {
            if (JsonObject || JsonSchema != null) throw new ArgumentException("a required tool call and a JSON output format exclude each other");
            if (RequiredToolCall.Count == 0) throw new ArgumentException("a required tool call needs at least one function name");
            foreach (var tool in RequiredToolCall) ToolDefinition.CheckName(tool.Name);
        }
        if (Stop != null)
            foreach (var s in Stop)
                if (string.IsNullOrEmpty(s)) throw new ArgumentException("stop sequences must be non-empty strings");
    }

    internal SamplingOptions ToSampling(IReadOnlyCollection<int> stopIds) => new()
    {
        MaxNewTokens = MaxTokens, Temperature = Temperature, TopK = TopK, TopP = TopP, Seed = Seed, StopTokenIds = stopIds,
        MinP = MinP, FrequencyPenalty = FrequencyPenalty, PresencePenalty = PresencePenalty, RepetitionPenalty = RepetitionPenalty,
        TopLogprobs = TopLogprobs,
    };
}
