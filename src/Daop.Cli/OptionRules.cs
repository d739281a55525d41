using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Daop.Engine.Model;

namespace Daop.Cli;

/// <summary>
/// What the options of every command accept, in one table keyed by option name: whole or real numbers in a range,
/// sizes (<see cref="ByteSize"/>), one of a set of names, or a comma-separated list of those. <see cref="Apply"/> makes
/// each rule the option's parser, so a bad value is a parse error (one "daop: --threads must be ..." line, exit 2)
/// before anything loads, in whichever command declares the option; an option name means the same in every command.
/// Ranges bound what can be allocated (token counts at most the largest context, threads at most 4 × the cores).
/// </summary>
static class OptionRules
{
    /// <summary>Most CPU worker threads: 4 × the logical cores, at most 1024.</summary>
    public static int MaxThreads { get; } = Math.Min(1024, 4 * Environment.ProcessorCount);

    const int Tokens = ContextLimit.MaxPositions;
    static readonly Real Ratio = new(0, 1);
    static readonly Real Bandwidth = new(0, 1e6, OpenMin: true);
    static readonly Choice WeightType = new(WeightTypes.Names, WeightTypes.Aliases, WeightTypes.NotWritten);
    static readonly Choice MissType = new(MissChoice.Types, ["q4", "q8"]);

    static readonly Dictionary<string, Rule> Table = new(StringComparer.Ordinal)
    {
        // Which model, where it runs (run, chat, serve, inspect, bench serve).
        ["--context"] = new Whole(1, ContextLimit.MaxPositions),
        ["--threads"] = new Whole(1, MaxThreads, $"4 × the {Environment.ProcessorCount} logical cores, at most 1024"),
        ["--device"] = new Choice(DeviceChoice.Names),
        ["--policy"] = new Choice(PolicyChoice.All, PolicyChoice.Aliases),
        ["--expert-dtype"] = WeightType,
        ["--dense-dtype"] = WeightType,
        ["--expert-cache-ratio"] = Ratio,
        ["--miss-dtype"] = MissType,
        ["--miss-max-weight"] = Ratio,
        ["--vram-budget"] = new Size(0, long.MaxValue),
        // Sampling (run, chat).
        ["--max-tokens"] = new Whole(1, Tokens),
        ["--temperature"] = new Real(0, 100),
        ["--top-k"] = new Whole(0, int.MaxValue),
        ["--top-p"] = new Real(0, 1, OpenMin: true),
        ["--seed"] = new Whole(0, ulong.MaxValue),
        ["--min-p"] = new Real(0, 1),
        ["--repeat-penalty"] = new Real(0, 10, OpenMin: true),
        ["--frequency-penalty"] = new Real(-2, 2),
        ["--presence-penalty"] = new Real(-2, 2),
        // serve.
        ["--port"] = new Whole(0, 65535),
        ["--max-queue"] = new Whole(1, 65536),
        ["--parallel"] = new Whole(1, 256),
        ["--max-generation-seconds"] = new Real(0, 7 * 24 * 3600, OpenMin: true),
        ["--max-connections"] = new Whole(1, 1_000_000),
        ["--max-body-bytes"] = new Size(1, 1L << 30),
        ["--max-tokens-limit"] = new Whole(1, Tokens),
        // inspect.
        ["--chunk-tokens"] = new Whole(1, 65536),
        // quantize.
        ["--max-shard-size"] = new Size(1L << 20, 1L << 40),
        // bench and its subcommands.
        ["--prompt-tokens"] = new Whole(1, Tokens),
        ["--new-tokens"] = new Whole(1, Tokens),
        ["--repeats"] = new Whole(1, 1000),
        ["--bandwidth-bytes"] = new Size(1L << 20, 1L << 40),
        ["--batch"] = new Whole(1, 4096),
        ["--layers"] = new Whole(1, 65536),
        ["--distinct-matrices"] = new Whole(0, 65536),
        ["--ratios"] = new ListOf(Ratio),
        ["--miss-dtypes"] = new ListOf(MissType),
        ["--miss-max-weights"] = new ListOf(Ratio),
        ["--sequences"] = new ListOf(new Whole(1, 256)),
        ["--policies"] = new ListOf(new Choice(PolicyChoice.All, PolicyChoice.Aliases)),
        ["--exact-layers"] = new Whole(1, 65536),
        ["--precalc-max-drift"] = new ListOf(new Real(0, 1e6)),
        ["--count"] = new Whole(1, 1_000_000),
        ["--random-sequences"] = new Whole(1, 1_000_000),
        ["--length"] = new Whole(2, Tokens),
        ["--greedy-tokens"] = new Whole(0, Tokens),
        ["--prompts"] = new Whole(1, 10_000),
        ["--precalc-threads"] = new Whole(0, MaxThreads),
        ["--stream-min-tokens"] = new Whole(0, Tokens),
        ["--project"] = new Choice(["model", "mixtral-8x7b"]),
        ["--gpu-gbps"] = Bandwidth,
        ["--cpu-gbps"] = Bandwidth,
        ["--pcie-gbps"] = Bandwidth,
        ["--cpu-slowdown-while-copying"] = new Real(1, 1000),
        ["--traces"] = new Whole(1, 1_000_000),
        ["--dense-layer-us"] = new Real(0, 1e9, OpenMin: true),
        ["--drift-window"] = new Whole(1, 1_000_000),
        ["--clients"] = new Whole(1, 1024),
        ["--seconds"] = new Real(0, 3600, OpenMin: true),
    };

    /// <summary>Options whose value is a number: each must have a rule (a test walks every command).</summary>
    public static bool IsNumeric(Option o)
    {
        var t = Nullable.GetUnderlyingType(o.ValueType) ?? o.ValueType;
        return t == typeof(int) || t == typeof(long) || t == typeof(ulong) || t == typeof(float) || t == typeof(double);
    }

    /// <summary>Whether <paramref name="name"/> has a rule.</summary>
    public static bool Has(string name) => Table.ContainsKey(name);

    /// <summary>Makes the rule of each option of <paramref name="command"/> and its subcommands that option's parser.</summary>
    /// <exception cref="InvalidOperationException">A rule does not fit its option's type (a programming error).</exception>
    public static void Apply(Command command)
    {
        foreach (var o in command.Options)
            if (Table.TryGetValue(o.Name, out var rule) && !rule.Apply(o))
                throw new InvalidOperationException($"the rule for {o.Name} does not fit its type {o.ValueType}");
        foreach (var sub in command.Subcommands) Apply(sub);
    }

    /// <summary>The values of a <c>--ratios</c> list (already checked while parsing).</summary>
    public static double[] Ratios(string list) =>
        Items(list).Select(x => double.Parse(x, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The values of a list of whole numbers such as <c>--sequences</c> (already checked while parsing).</summary>
    public static int[] Counts(string list) => Items(list).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>
    /// Throws unless the file <paramref name="path"/> that <paramref name="option"/> names could be written: checked
    /// before a long benchmark, not when it ends.
    /// </summary>
    public static void CheckOutputFile(string option, string? path)
    {
        if (path == null) return;
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new ArgumentException($"{option} {path}: is a folder; give a file name");
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new ArgumentException($"{option} {path}: the folder {dir} does not exist");
    }

    /// <summary>The items of a comma-separated list, trimmed, empty ones dropped.</summary>
    public static string[] Items(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>One option's accepted values.</summary>
    abstract record Rule
    {
        /// <summary>"a whole number in 1..8": what the value must be.</summary>
        public abstract string Expected { get; }

        /// <summary>Whether <paramref name="text"/> is accepted.</summary>
        public abstract bool Accepts(string text);

        /// <summary>Sets the option's parser; false if the option's type does not fit the rule.</summary>
        public abstract bool Apply(Option o);

        /// <summary>The option's one value, checked: on a bad value the parse error names the option, the value and what it must be.</summary>
        protected string? Check(ArgumentResult r, string name)
        {
            if (r.Tokens.Count == 0)
            {
                r.AddError($"{name} needs a value: {Expected}");
                return null;
            }
            string text = r.Tokens[^1].Value;
            if (Accepts(text)) return text;
            r.AddError($"{name} must be {Expected}, got {Got(text)}");
            return null;
        }

        /// <summary>The bad part of <paramref name="text"/>, quoted.</summary>
        protected virtual string Got(string text) => $"'{text}'";
    }

    sealed record Whole(Int128 Min, Int128 Max, string? Why = null) : Rule
    {
        public override string Expected => (Max == int.MaxValue || Max == ulong.MaxValue ? $"a whole number >= {Min}" : $"a whole number in {Min}..{Max}")
            + (Why != null ? $" ({Why})" : "");

        public override bool Accepts(string text) => Value(text) is { } v && v >= Min && v <= Max;

        static Int128? Value(string text) =>
            Int128.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null;

        public override bool Apply(Option o)
        {
            switch (o)
            {
                case Option<int> i: i.CustomParser = r => Check(r, o.Name) is { } s ? (int)Value(s)!.Value : 0; return true;
                case Option<int?> i: i.CustomParser = r => Check(r, o.Name) is { } s ? (int)Value(s)!.Value : null; return true;
                case Option<long> l: l.CustomParser = r => Check(r, o.Name) is { } s ? (long)Value(s)!.Value : 0; return true;
                case Option<long?> l: l.CustomParser = r => Check(r, o.Name) is { } s ? (long)Value(s)!.Value : null; return true;
                case Option<ulong> u: u.CustomParser = r => Check(r, o.Name) is { } s ? (ulong)Value(s)!.Value : 0; return true;
                default: return false;
            }
        }
    }

    sealed record Real(double Min, double Max, bool OpenMin = false) : Rule
    {
        public override string Expected => string.Create(CultureInfo.InvariantCulture, $"a number in {(OpenMin ? "(" : "[")}{Min}, {Max}]");

        public override bool Accepts(string text) => Value(text) is { } v && (OpenMin ? v > Min : v >= Min) && v <= Max;

        static double? Value(string text) =>
            double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v : null;

        public override bool Apply(Option o)
        {
            switch (o)
            {
                case Option<double> d: d.CustomParser = r => Check(r, o.Name) is { } s ? Value(s)!.Value : 0; return true;
                case Option<double?> d: d.CustomParser = r => Check(r, o.Name) is { } s ? Value(s)!.Value : null; return true;
                case Option<float> f: f.CustomParser = r => Check(r, o.Name) is { } s ? (float)Value(s)!.Value : 0; return true;
                default: return false;
            }
        }
    }

    sealed record Size(long Min, long Max) : Rule
    {
        public override string Expected => $"a size of {ByteSize.Forms}" +
            (Min > 0 || Max < long.MaxValue ? $", from {ByteSize.Format(Min)} to {ByteSize.Format(Max)}" : "");

        public override bool Accepts(string text) => ByteSize.TryParse(text, out long b) && b >= Min && b <= Max;

        static long Value(string text) => ByteSize.TryParse(text, out long b) ? b : 0;

        public override bool Apply(Option o)
        {
            o.HelpName ??= "size";
            switch (o)
            {
                case Option<long> l: l.CustomParser = r => Check(r, o.Name) is { } s ? Value(s) : 0; return true;
                case Option<long?> l: l.CustomParser = r => Check(r, o.Name) is { } s ? Value(s) : null; return true;
                default: return false;
            }
        }
    }

    sealed record Choice(string[] Names, string[]? Aliases = null, string? Note = null) : Rule
    {
        public override string Expected => $"one of {string.Join(", ", Names)}{(Note == null ? "" : $" ({Note})")}";

        public override bool Accepts(string text) => Names.Contains(text, StringComparer.Ordinal) || Aliases?.Contains(text, StringComparer.Ordinal) == true;

        public override bool Apply(Option o)
        {
            if (o is not Option<string> s) return false;
            o.CompletionSources.Add(Names); // help shows them as the value's name: --device <cpu|cuda|ilgpu-cpu>
            if (string.Join('|', Names).Length > 32) o.HelpName ??= "name";
            s.CustomParser = r => Check(r, o.Name);
            return true;
        }
    }

    sealed record ListOf(Rule Item) : Rule
    {
        protected override string Got(string text) =>
            Items(text).FirstOrDefault(x => !Item.Accepts(x)) is { } bad ? $"'{bad}' in '{text}'" : $"'{text}'";

        public override string Expected => $"a comma-separated list, each {Item.Expected}";

        public override bool Accepts(string text) => Items(text) is { Length: > 0 } items && items.All(Item.Accepts);

        public override bool Apply(Option o)
        {
            if (o is not Option<string> s) return false;
            s.CustomParser = r => Check(r, o.Name);
            return true;
        }
    }
}
