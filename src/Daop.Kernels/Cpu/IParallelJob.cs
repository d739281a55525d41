namespace Daop.Kernels.Cpu;

/// <summary>
/// A parallel-for body run by <see cref="CpuWorkers"/>. Implement it on a struct so that a call allocates
/// nothing: the pool reaches the struct through a pointer to the caller's stack copy.
/// </summary>
public interface IParallelJob
{
    /// <summary>
    /// Processes indices [<paramref name="start"/>, <paramref name="end"/>). Called concurrently from several
    /// threads with disjoint ranges, each at most one chunk long; the job must treat its own fields as read-only.
    /// </summary>
    void Execute(int start, int end);
}
