namespace Daop.Engine.Load.Gguf;

/// <summary>
/// The split regexes llama.cpp applies before byte-level BPE for each <c>tokenizer.ggml.pre</c> name (llama-vocab.cpp,
/// llm_tokenizer_bpe, February 2025), one after the other, each keeping matches and the text between them as pieces (a
/// tokenizer.json Split with behavior Isolated). Names that llama.cpp maps to the same case share one entry; the two
/// whose tokenizers skip merges for words already in the vocabulary (Llama 3, Tekken) say so. Left out: "deepseek-llm",
/// whose letter class spans characters outside the Basic Multilingual Plane, which a .NET character class cannot range over.
/// </summary>
static class GgufPreTokenizers
{
    /// <summary>The o200k split regex (tiktoken's o200k_base; GPT-OSS's tokenizer.json Split).</summary>
    public const string O200kPattern = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The regexes and ignore_merges of one pre-tokenizer name.</summary>
    public sealed record Entry(string[] Regexes, bool IgnoreMerges);

    static readonly Dictionary<string, Entry> ByName = new(StringComparer.Ordinal);

    static GgufPreTokenizers()
    {
        // LLAMA3
        Add([@"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: true, "llama3", "llama-v3", "llama-bpe", "falcon3");
        // DBRX
        Add([@"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: false, "dbrx", "smaug-bpe");
        // DEEPSEEK3_LLM
        Add([@"\p{N}{1,3}", @"[一-龥぀-ゟ゠-ヿ]+", @"[!""#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: false, "deepseek-v3");
        // DEEPSEEK_CODER
        Add([@"[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", @"[一-龥ࠀ-一가-퟿]+", @"\p{N}"], ignoreMerges: false, "deepseek-coder");
        // FALCON
        Add([@"[\p{P}\$\+<=>\^~\|`]+", @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)", @"[0-9][0-9][0-9]"], ignoreMerges: false, "falcon");
        // STARCODER
        Add([@"\p{N}", @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"], ignoreMerges: false, "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b");
        // GPT2
        Add([@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"], ignoreMerges: false, "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais");
        // STABLELM2
        Add([@"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: false, "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez");
        // PORO
        Add([@" ?[^(\s|.,!?…。，、।۔،)]+"], ignoreMerges: false, "poro-chat", "bloom", "gpt3-finnish");
        // CHATGLM4
        Add([@"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: false, "chatglm-bpe");
        // VIKING
        Add([@" ?[^(\s|.,!?…。，、।۔،)]+", @"\p{N}"], ignoreMerges: false, "viking");
        // TEKKEN
        Add([@"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"], ignoreMerges: true, "tekken");
        // CHAMELEON
        Add([@"<sentinel:[0-9]+>", @"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", @"([\t\n]|    |  )", @"\p{N}", @"[\p{P}!-/:-@\[-`{-~]", @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"], ignoreMerges: false, "chameleon");
        // GPT4O: o200k (GPT-4o, GPT-OSS, Llama 4), as its tokenizer.json states it; llama.cpp rewrites the case-insensitive
        // contractions and the letter classes for its own regex engine, which .NET's needs not.
        Add([O200kPattern], ignoreMerges: false, "gpt-4o", "llama4");
                // DEFAULT
        Add([@"[\p{P}\$\+<=>\^~\|]+", @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)", @"\p{N}+", @"[0-9][0-9][0-9]"], ignoreMerges: false, "default");
    }

    static void Add(string[] regexes, bool ignoreMerges, params string[] names)
    {
        foreach (string n in names) ByName[n] = new Entry(regexes, ignoreMerges);
    }

    /// <summary>Every name llama.cpp knows.</summary>
    public static IEnumerable<string> Names => ByName.Keys;

    /// <summary>The entry for <paramref name="name"/> ("default" when the file names none), or null when llama.cpp does not know the name.</summary>
    public static Entry? Find(string? name) => ByName.GetValueOrDefault(name ?? "default");
}
