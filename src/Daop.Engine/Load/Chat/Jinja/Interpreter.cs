using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>A variable scope. Loops and macro calls open one, so their "set"s do not leak (as in Jinja).</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public object? Lookup(string name)
    {
        for (var s = this; s != null; s = s.Parent)
            if (s._vars.TryGetValue(name, out var v))
                return v;
        return new Undefined($"'{name}' is undefined");
    }

    public void Set(string name, object? value) => _vars[name] = value;

    private Scope? Parent { get; } = parent;
}

/// <summary>Executes the statement tree; expressions are in Interpreter.Expressions.cs.</summary>
internal sealed partial class Interpreter
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly RenderGuard _guard;

    private Interpreter(RenderGuard guard) => _guard = guard;

    /// <summary>Runs the template under <paramref name="guard"/>'s limits (it is <see cref="RenderGuard.Current"/> meanwhile).</summary>
    /// <exception cref="ChatTemplateException">The template failed or broke a limit.</exception>
    /// <exception cref="OperationCanceledException">The guard's token was cancelled.</exception>
    public static string Render(List<Node> nodes, Scope globals, RenderGuard guard)
    {
        using var active = guard.Activate();
        try
        {
            var sb = new StringBuilder();
            var flow = new Interpreter(guard).Exec(nodes, globals, sb);
            if (flow != Flow.Normal)
                throw new ChatTemplateException($"chat template: '{flow.ToString().ToLowerInvariant()}' outside of a loop");
            return sb.ToString();
        }
        catch (Exception e) when (e is not (ChatTemplateException or OperationCanceledException or OutOfMemoryException))
        {
            // A .NET exception a builtin let through (a bad cast, an argument out of range, a duplicate keyword) is
            // still the template's error: callers handle ChatTemplateException, and the line helps fix the template.
            throw Error(guard.Line, $"{e.GetType().Name}: {e.Message}", e);
        }
    }

    private Flow Exec(List<Node> nodes, Scope scope, StringBuilder sb)
    {
        foreach (var node in nodes)
        {
            var flow = Exec(node, scope, sb);
            if (flow != Flow.Normal)
                return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope, StringBuilder sb)
    {
        int outer = _guard.Enter(node.Line);
        var flow = ExecNode(node, scope, sb);
        _guard.Exit(outer);
        return flow;
    }

    private Flow ExecNode(Node node, Scope scope, StringBuilder sb)
    {
        switch (node)
        {
            case TextNode t:
                sb.Append(t.Text);
                _guard.CheckOutput(sb.Length);
                return Flow.Normal;
            case OutputNode o:
                sb.Append(Values.ToStr(Eval(o.Value, scope)));
                _guard.CheckOutput(sb.Length);
                return Flow.Normal;
            case IfNode i:
                foreach (var (condition, body) in i.Branches)
                    if (Values.Truthy(Eval(condition, scope)))
                        return Exec(body, scope, sb);
                return i.Else != null ? Exec(i.Else, scope, sb) : Flow.Normal;
            case ForNode f:
                return ExecFor(f, scope, sb);
            case SetNode s:
                ExecSet(s, scope);
                return Flow.Normal;
            case SetBlockNode setBlock:
                var captured = new StringBuilder();
                Exec(setBlock.Body, scope, captured);
                scope.Set(setBlock.Target, captured.ToString());
                return Flow.Normal;
            case MacroNode m:
                scope.Set(m.Name, MakeMacro(m, scope));
                return Flow.Normal;
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            case BlockNode b:
                return Exec(b.Body, scope, sb);
            default:
                throw Error(node.Line, $"cannot execute {node.GetType().Name}");
        }
    }

    private Flow ExecFor(ForNode f, Scope scope, StringBuilder sb)
    {
        var iterable = Eval(f.Iterable, scope);
        var items = Values.Iterate(iterable) ?? throw Error(f.Line, $"cannot loop over a value of type {Values.TypeName(iterable)}");
        items = new List<object?>(items); // the body must not see changes to the source list
        var loopScope = new Scope(scope);
        if (f.Filter != null)
        {
            // The "if" of a for loop filters before loop.index/length are computed, like Jinja.
            items = items.Where(item =>
            {
                _guard.Iteration();
                Bind(f.Targets, item, loopScope, f.Line);
                return Values.Truthy(Eval(f.Filter, loopScope));
            }).ToList();
        }
        for (int i = 0; i < items.Count; i++)
        {
            _guard.Iteration();
            Bind(f.Targets, items[i], loopScope, f.Line);
            loopScope.Set("loop", new LoopContext(items, i));
            if (Exec(f.Body, loopScope, sb) == Flow.Break)
                break;
        }
        if (items.Count == 0 && f.Else != null)
            return Exec(f.Else, scope, sb);
        return Flow.Normal;
    }

    /// <summary>Assigns one name, or unpacks a pair/tuple into several ("for k, v in d.items()").</summary>
    private static void Bind(List<string> targets, object? value, Scope scope, int line)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], value);
            return;
        }
        var parts = Values.Iterate(value);
        if (parts == null || parts.Count != targets.Count)
            throw Error(line, $"cannot unpack a value of type {Values.TypeName(value)} into {targets.Count} names");
        for (int i = 0; i < targets.Count; i++)
            scope.Set(targets[i], parts[i]);
    }

    private void ExecSet(SetNode s, Scope scope)
    {
        var value = Eval(s.Value, scope);
        if (s.Attribute == null)
        {
            Bind(s.Targets, value, scope, s.Line);
            return;
        }
        if (scope.Lookup(s.Targets[0]) is not Namespace ns)
            throw Error(s.Line, $"cannot set attribute '{s.Attribute}' of '{s.Targets[0]}': only namespace() objects can be changed");
        ns.Attributes[s.Attribute] = value;
    }

    private Callable MakeMacro(MacroNode m, Scope definitionScope) => new(m.Name, (args, kwargs) =>
    {
        _guard.EnterCall(m.Name);
        var scope = new Scope(definitionScope);
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var (name, defaultValue) = m.Parameters[i];
            object? value = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out var kw) ? kw
                : defaultValue != null ? Eval(defaultValue, definitionScope) : Undefined.Instance;
            scope.Set(name, value);
        }
        var sb = new StringBuilder();
        Exec(m.Body, scope, sb);
        _guard.ExitCall();
        return sb.ToString();
    });

    internal static ChatTemplateException Error(int line, string message, Exception? inner = null)
        => new($"chat template line {line}: {message}", inner);
}

/// <summary>The "loop" variable inside a for loop.</summary>
internal sealed class LoopContext(List<object?> items, int index0)
{
    public object? Get(string name) => name switch
    {
        "index0" => (long)index0,
        "index" => (long)index0 + 1,
        "revindex0" => (long)(items.Count - index0 - 1),
        "revindex" => (long)(items.Count - index0),
        "first" => index0 == 0,
        "last" => index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => index0 > 0 ? items[index0 - 1] : Undefined.Instance,
        "nextitem" => index0 + 1 < items.Count ? items[index0 + 1] : Undefined.Instance,
        "cycle" => new Callable("cycle", (a, _) => a.Count == 0 ? Undefined.Instance : a[index0 % a.Count]),
        _ => Undefined.Instance,
    };
}
