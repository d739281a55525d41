using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;

namespace Daop.Engine.Api;

// Loading a GGUF model: one file (or split set) holds everything a model folder holds. The tokenizer and chat template are
// built from its metadata before the weights are mapped (cheap, and their errors should not wait), then the model loads
// on its own thread from the same opened file.
public sealed partial class DaopModel
{
    static DaopModel LoadGguf(string file, DaopOptions options)
    {
        var engineOptions = EngineOptions(options);
        var checkpoint = GgufCheckpoint.Open(file);
        HfTokenizer tokenizer;
        ChatTemplate? template;
        int[] endOfGeneration;
        try
        {
            var meta = checkpoint.Metadata;
            tokenizer = GgufTokenizer.Load(meta);
            template = meta.StringOrNull("tokenizer.chat_template") is { } source
                ? ChatTemplate.Parse(source, Token(tokenizer, tokenizer.BosTokenId), Token(tokenizer, tokenizer.EosTokenId),
                    options.ChatTemplateLimits ?? ChatTemplateLimits.Default)
                : null;
            // Besides EOS (in the config), llama.cpp ends generation at the end-of-turn and end-of-message tokens.
            endOfGeneration = new[] { meta.IntOrNull("tokenizer.ggml.eot_token_id"), meta.IntOrNull("tokenizer.ggml.eom_token_id") }
                .OfType<int>().ToArray();
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
        var thread = new ModelThread($"daop model {Path.GetFileName(file)}");
        MoeModel? model = null;
        try
        {
            model = thread.Invoke(() => MoeModel.FromGguf(checkpoint, engineOptions)); // owns the checkpoint from here
            if (tokenizer.VocabSize > model.Config.VocabSize)
                throw new ModelLoadException($"{file}: tokenizer.ggml.tokens has ids up to {tokenizer.VocabSize - 1}, but token_embd.weight " +
                    $"has {model.Config.VocabSize} rows: the vocabulary does not belong to these weights");
            return new DaopModel(model, thread, tokenizer, template, endOfGeneration, SamplingDefaults.None, options.Parallel);
        }
        catch
        {
            if (model != null) thread.Invoke(() => { model.Dispose(); return 0; });
            thread.Dispose();
            throw;
        }
    }

    static string? Token(HfTokenizer tokenizer, int? id) => id is { } i ? tokenizer.IdToToken(i) : null;
}
