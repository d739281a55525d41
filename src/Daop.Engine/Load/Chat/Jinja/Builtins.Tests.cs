namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>Jinja tests ("x is defined", "x is string", ...).</summary>
internal static partial class Builtins
{
    private static readonly Dictionary<string, Func<object?, List<object?>, bool>> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["string"] = (v, _) => v is string,
        ["number"] = (v, _) => v is long or double,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["mapping"] = (v, _) => v is Dictionary<string, object?>,
        ["iterable"] = (v, _) => v is string or List<object?> or Dictionary<string, object?>,
        ["sequence"] = (v, _) => v is string or List<object?> or Dictionary<string, object?>,
        ["callable"] = (v, _) => v is Callable,
        ["equalto"] = (v, a) => Values.Equal(v, Arg(a, 0)),
        ["eq"] = (v, a) => Values.Equal(v, Arg(a, 0)),
        ["sameas"] = (v, a) => Values.Equal(v, Arg(a, 0)) && Values.TypeName(v) == Values.TypeName(Arg(a, 0)),
        ["ne"] = (v, a) => !Values.Equal(v, Arg(a, 0)),
        ["lt"] = (v, a) => Values.Compare(v, Arg(a, 0)) < 0,
        ["le"] = (v, a) => Values.Compare(v, Arg(a, 0)) <= 0,
        ["gt"] = (v, a) => Values.Compare(v, Arg(a, 0)) > 0,
        ["ge"] = (v, a) => Values.Compare(v, Arg(a, 0)) >= 0,
        ["in"] = (v, a) => Interpreter.Contains(Arg(a, 0), v),
        ["odd"] = (v, _) => v is long l && l % 2 != 0,
        ["even"] = (v, _) => v is long l && l % 2 == 0,
        ["divisibleby"] = (v, a) => v is long l && Arg(a, 0) is long d && d != 0 && l % d == 0,
        ["lower"] = (v, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (v, _) => v is string s && s == s.ToUpperInvariant(),
    };

    public static bool HasTest(string name) => Tests.ContainsKey(name);

    public static bool ApplyTest(string name, object? value, List<object?> args, int line) => Tests[name](value, args);
}
