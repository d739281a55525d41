namespace Daop.Engine.Api;

/// <summary>
/// An async mutual-exclusion gate that admits waiters strictly in arrival order (first come, first served). A waiter
/// whose token is cancelled leaves the queue; the gate passes directly from one holder to the next, so a newcomer
/// can never slip in ahead of someone already waiting.
/// </summary>
sealed class FifoGate
{
    readonly object _lock = new();
    readonly LinkedList<TaskCompletionSource> _waiters = new();
    bool _held;

    /// <summary>Callers waiting for the gate (not counting the holder).</summary>
    public int Waiting
    {
        get { lock (_lock) return _waiters.Count; }
    }

    /// <summary>Whether someone holds the gate.</summary>
    public bool IsHeld
    {
        get { lock (_lock) return _held; }
    }

    /// <summary>Takes the gate if it is free and nobody waits; never blocks.</summary>
    public bool TryEnter()
    {
        lock (_lock)
        {
            if (_held) return false;
            _held = true;
            return true;
        }
    }

    /// <summary>Waits for the gate; throws <see cref="OperationCanceledException"/> if cancelled while still queued.</summary>
    public async Task WaitAsync(CancellationToken cancel)
    {
        TaskCompletionSource tcs;
        LinkedListNode<TaskCompletionSource> node;
        lock (_lock)
        {
            cancel.ThrowIfCancellationRequested();
            if (!_held)
            {
                _held = true;
                return;
            }
            tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            node = _waiters.AddLast(tcs);
        }
        using (cancel.Register(() =>
               {
                   lock (_lock)
                   {
                       // Already handed the gate: the waiter owns it now and releases it as usual.
                       if (node.List == null) return;
                       _waiters.Remove(node);
                   }
                   tcs.TrySetCanceled(cancel);
               }))
        {
            await tcs.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Passes the gate to the longest waiter, or opens it.</summary>
    public void Release()
    {
        TaskCompletionSource next;
        lock (_lock)
        {
            if (!_held) throw new InvalidOperationException("the gate is not held");
            if (_waiters.First is not { } first)
            {
                _held = false;
                return;
            }
            _waiters.RemoveFirst();
            next = first.Value;
        }
        next.TrySetResult();
    }
}
