namespace Daop.Kernels.Cpu.Gemm;

/// <summary>How the dot-product drivers split a matrix's rows into parallel chunks.</summary>
internal static class RowChunks
{
    /// <summary>
    /// Rows per parallel chunk (a multiple of 4): about sixteen chunks per thread, so a thread slowed by another
    /// process leaves at most a small chunk for the rest to wait on, but at least 32 KB of weights (times tokens)
    /// per chunk so small matrices do not pay for waking workers.
    /// </summary>
    public static int Rows(int rows, int rowBytes, int tokens)
    {
        int threads = CpuWorkers.Threads;
        int chunk = (int)(((long)rows + 16L * threads - 1) / (16L * threads));
        long minRows = (32768L + (long)rowBytes * tokens - 1) / Math.Max(1L, (long)rowBytes * tokens);
        chunk = (int)Math.Max(chunk, Math.Min(minRows, rows));
        return Math.Max(4, (chunk + 3) & ~3);
    }
}
