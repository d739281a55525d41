using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// The budget of one render (<see cref="ChatTemplateLimits"/>): nesting and macro-call depth, loop iterations, sizes of
/// built values, allocated bytes, wall-clock time and cancellation. Every check happens before the work it guards, so a
/// hostile template fails with a <see cref="ChatTemplateException"/> naming its line instead of exhausting the process.
/// </summary>
/// <remarks>
/// The render's guard is ambient (<see cref="Current"/>) because the value helpers (printing, equality, tojson, filters,
/// string methods) are static and a render runs synchronously on one thread; threading it through every filter
/// signature would change forty lambdas for no gain in clarity. A broken limit ends the whole render, so callers pair
/// Enter/Exit and EnterCall/ExitCall without try/finally.
/// </remarks>
internal sealed class RenderGuard
{
    // The clock, the allocation counter and the token are read every this many ticks: cheap, yet well under a millisecond apart.
    private const int ClockInterval = 256;

    // The remaining stack is measured every this many levels: a few levels take a few KiB, far less than the reserve
    // TryEnsureSufficientExecutionStack keeps, and checking each level doubled the cost of a tight loop.
    private const int StackCheckInterval = 8;

    // A value at least this big re-checks the allocation budget at once rather than at the next clock tick.
    private const long BigValue = 1 << 16;

    [ThreadStatic]
    private static RenderGuard? t_current;

    private readonly CancellationToken _cancel;
    private readonly long _deadline;
    private readonly long _allocatedAtStart;
    private int _depth, _calls, _ticks;
    private long _iterations;

    public RenderGuard(ChatTemplateLimits limits, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        Limits = limits;
        _cancel = cancel;
        long now = Stopwatch.GetTimestamp();
        double budget = limits.MaxRenderTime.TotalSeconds * Stopwatch.Frequency;
        _deadline = budget < long.MaxValue - now ? now + (long)budget : long.MaxValue;
        _allocatedAtStart = GC.GetAllocatedBytesForCurrentThread();
    }

    /// <summary>The guard of the render running on this thread; outside a render, a fresh one with default limits.</summary>
    public static RenderGuard Current => t_current ?? new RenderGuard(ChatTemplateLimits.Default, CancellationToken.None);

    public ChatTemplateLimits Limits { get; }

    /// <summary>Line of the innermost statement or expression being run: where helpers' errors point.</summary>
    public int Line { get; private set; }

    /// <summary>Makes this guard <see cref="Current"/> on this thread until the returned scope is disposed.</summary>
    public Activation Activate()
    {
        var previous = t_current;
        t_current = this;
        return new Activation(previous);
    }

    /// <summary>Enters a statement or expression at <paramref name="line"/>; returns the line <see cref="Exit"/> restores.</summary>
    public int Enter(int line)
    {
        int outer = Line;
        Line = line;
        if (++_depth > Limits.MaxNestingDepth)
            throw Error($"statements and expressions nest deeper than {Limits.MaxNestingDepth} levels while rendering");
        // Backstop for a thread with a small stack: a stack overflow cannot be caught, so stop before it.
        if (_depth % StackCheckInterval == 0 && !RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error("the template nests too deeply for this thread's stack");
        Tick();
        return outer;
    }

    public void Exit(int outerLine)
    {
        _depth--;
        Line = outerLine;
    }

    /// <summary>Counts a macro call in progress (Jinja has no tail calls: each one holds stack until it returns).</summary>
    public void EnterCall(string name)
    {
        if (++_calls > Limits.MaxCallDepth)
            throw Error($"macro '{name}' is called while {Limits.MaxCallDepth} macro calls are already in progress (unbounded recursion?)");
    }

    public void ExitCall() => _calls--;

    /// <summary>Counts one loop iteration (loop bodies and loop filters).</summary>
    public void Iteration()
    {
        if (++_iterations > Limits.MaxLoopIterations)
            throw Error($"loops ran more than {Limits.MaxLoopIterations} iterations in total");
        Tick();
    }

    /// <summary>A unit of work: every <see cref="ClockInterval"/> of them checks cancellation, time and allocation.</summary>
    public void Tick()
    {
        if (++_ticks % ClockInterval == 0)
            CheckClock();
    }

    /// <summary>Checks, before building it, a string of <paramref name="length"/> characters.</summary>
    public void CheckString(long length)
    {
        if (length > Limits.MaxOutputLength)
            throw Error($"a string of {length} characters would exceed the limit of {Limits.MaxOutputLength}");
        if (length >= BigValue)
            CheckClock();
    }

    /// <summary>Checks, before building it, a list of <paramref name="count"/> items.</summary>
    public void CheckList(long count)
    {
        if (count > Limits.MaxListLength)
            throw Error($"a list of {count} items would exceed the limit of {Limits.MaxListLength}");
        if (count >= BigValue)
            CheckClock();
    }

    /// <summary>Checks text being rendered or captured after an append.</summary>
    public void CheckOutput(int length)
    {
        if (length > Limits.MaxOutputLength)
            throw Error($"the rendered text exceeds the limit of {Limits.MaxOutputLength} characters");
    }

    /// <summary>Checks the depth of a value being walked (printed, compared, serialized).</summary>
    public void CheckValueDepth(int depth)
    {
        if (depth > Limits.MaxNestingDepth || depth % StackCheckInterval == 0 && !RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error($"a value nests deeper than {Limits.MaxNestingDepth} levels (lists or dicts inside each other)");
        Tick();
    }

    public ChatTemplateException Error(string message) => Interpreter.Error(Line, message);

    private void CheckClock()
    {
        _cancel.ThrowIfCancellationRequested();
        if (Stopwatch.GetTimestamp() > _deadline)
            throw Error($"rendering took longer than the limit of {Limits.MaxRenderTime.TotalSeconds:0.###} s");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - _allocatedAtStart;
        if (allocated > Limits.MaxAllocatedBytes)
            throw Error($"rendering allocated more than the limit of {Limits.MaxAllocatedBytes >> 20} MiB");
    }

    /// <summary>Restores the previous <see cref="Current"/> when disposed.</summary>
    public readonly struct Activation(RenderGuard? previous) : IDisposable
    {
        public void Dispose() => t_current = previous;
    }
}
