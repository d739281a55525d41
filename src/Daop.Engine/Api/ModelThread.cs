using System.Collections.Concurrent;

namespace Daop.Engine.Api;

/// <summary>
/// The one thread a model computes on: loading, every forward pass and disposal. GPU devices are bound to a thread
/// (a CUDA context is current per thread), so all device work of a model stays on the thread that created it; the
/// CPU path is indifferent. Callers hand work over and await it, so no caller thread ever blocks on a forward pass.
/// </summary>
sealed class ModelThread : IDisposable
{
    readonly BlockingCollection<Action> _work = new();
    readonly Thread _thread;

    public ModelThread(string name)
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    void Loop()
    {
        foreach (var work in _work.GetConsumingEnumerable()) work();
    }

    /// <summary>Runs <paramref name="f"/> on the model thread; the task completes (or faults) with it.</summary>
    public Task<T> RunAsync<T>(Func<T> f)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (Thread.CurrentThread == _thread)
        {
            Execute(f, tcs);
            return tcs.Task;
        }
        try
        {
            _work.Add(() => Execute(f, tcs));
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(DaopModel));
        }
        return tcs.Task;
    }

    /// <summary>Runs <paramref name="f"/> on the model thread and waits for it (loading and disposal only).</summary>
    public T Invoke<T>(Func<T> f) => RunAsync(f).GetAwaiter().GetResult();

    static void Execute<T>(Func<T> f, TaskCompletionSource<T> tcs)
    {
        try
        {
            tcs.SetResult(f());
        }
        catch (Exception e)
        {
            tcs.SetException(e);
        }
    }

    /// <summary>Lets queued work finish, then ends the thread.</summary>
    public void Dispose()
    {
        _work.CompleteAdding();
        if (Thread.CurrentThread != _thread) _thread.Join();
    }
}
