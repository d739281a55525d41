namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>Binary operators with Python semantics (int/float promotion, str and list concatenation, floor division).</summary>
internal static class Arithmetic
{
    public static object? Apply(string op, object? a, object? b, int line)
    {
        if (op == "~")
            return Values.ToStr(a) + Values.ToStr(b);
        if ((a as Undefined ?? b as Undefined) is { } u)
            throw Interpreter.Error(line, u.Hint);
        switch (op)
        {
            case "+" when a is string x && b is string y:
                return x + y;
            case "+" when a is List<object?> x && b is List<object?> y:
                return x.Concat(y).ToList();
            case "*" when a is string s && b is long n:
                return Repeat(s, n);
            case "*" when a is long n && b is string s:
                return Repeat(s, n);
            case "*" when a is List<object?> l && b is long n:
                return Enumerable.Repeat(l, (int)Math.Max(0, n)).SelectMany(x => x).ToList();
        }
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
            throw Interpreter.Error(line, $"unsupported operand types for {op}: '{Values.TypeName(a)}' and '{Values.TypeName(b)}'");

        bool ints = a is long or bool && b is long or bool;
        if (ints)
        {
            long x = (long)Values.ToDouble(a), y = (long)Values.ToDouble(b);
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

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static string Repeat(string s, long n) => n <= 0 ? "" : string.Concat(Enumerable.Repeat(s, (int)n));

    private static ChatTemplateException DivZero(int line) => Interpreter.Error(line, "division by zero");
}
