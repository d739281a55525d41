using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Binary operators with Python semantics (int/float promotion, str and list concatenation, floor division). Results
/// that grow (concatenation, repetition) are size-checked before they are built.
/// </summary>
internal static class Arithmetic
{
    public static object? Apply(string op, object? a, object? b, int line)
    {
        if (op == "~")
            return Concat(Values.ToStr(a), Values.ToStr(b));
        if ((a as Undefined ?? b as Undefined) is { } u)
            throw Interpreter.Error(line, u.Hint);
        switch (op)
        {
            case "+" when a is string x && b is string y:
                return Concat(x, y);
            case "+" when a is List<object?> x && b is List<object?> y:
                RenderGuard.Current.CheckList((long)x.Count + y.Count);
                return x.Concat(y).ToList();
            case "*" when a is string s && b is long n:
                return Repeat(s, n);
            case "*" when a is long n && b is string s:
                return Repeat(s, n);
            case "*" when a is List<object?> l && b is long n:
                return Repeat(l, n);
        }
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
            throw Interpreter.Error(line, $"unsupported operand types for {op}: '{Values.TypeName(a)}' and '{Values.TypeName(b)}'");

        bool ints = a is long or bool && b is long or bool;
        if (ints)
        {
            long x = ToLong(a), y = ToLong(b); // not via double, which rounds above 2**53
            switch (op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "/": return y == 0 ? throw DivZero(line) : (double)x / y;
                case "//": return y == 0 ? throw DivZero(line) : FloorDiv(x, y);
                case "%": return y == 0 ? throw DivZero(line) : x - y * FloorDiv(x, y);
                case "**" when y >= 0: return (long)Math.Pow(x, y);
            }
        }
        double p = Values.ToDouble(a), q = Values.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw DivZero(line) : p / q,
            "//" => q == 0 ? throw DivZero(line) : Math.Floor(p / q),
            "%" => q == 0 ? throw DivZero(line) : p - q * Math.Floor(p / q),
            "**" => Math.Pow(p, q),
            _ => throw Interpreter.Error(line, $"unsupported operator '{op}'"),
        };
    }

    private static long ToLong(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static string Concat(string x, string y)
    {
        RenderGuard.Current.CheckString((long)x.Length + y.Length);
        return x + y;
    }

    private static string Repeat(string s, long n)
    {
        if (n <= 0 || s.Length == 0)
            return "";
        RenderGuard.Current.CheckString(Product(s.Length, n));
        var sb = new StringBuilder(s.Length * (int)n);
        for (long i = 0; i < n; i++)
            sb.Append(s);
        return sb.ToString();
    }

    private static List<object?> Repeat(List<object?> l, long n)
    {
        if (n <= 0 || l.Count == 0)
            return [];
        RenderGuard.Current.CheckList(Product(l.Count, n));
        var result = new List<object?>(l.Count * (int)n);
        for (long i = 0; i < n; i++)
            result.AddRange(l);
        return result;
    }

    /// <summary>a * b for non-negative a and b, saturating at long.MaxValue instead of wrapping (10**10 * 10**10).</summary>
    internal static long Product(long a, long b) => a == 0 || b <= long.MaxValue / a ? a * b : long.MaxValue;

    private static ChatTemplateException DivZero(int line) => Interpreter.Error(line, "division by zero");
}
