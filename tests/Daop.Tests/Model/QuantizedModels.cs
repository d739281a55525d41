using Daop.Engine.Model;
using Daop.Kernels;

namespace Daop.Tests.Model;

/// <summary>Quantized copies of test models (<c>daop quantize</c>'s writer), made once per test run in temporary folders removed at exit.</summary>
static class QuantizedModels
{
    static readonly Lazy<string> s_embeddedQ4 = new(() => Write(TestPaths.DefaultModel, DType.Q4_0, null));

    /// <summary>The embedded model with its routed experts in q4_0 (everything else as stored).</summary>
    public static string EmbeddedQ4 => s_embeddedQ4.Value;

    /// <summary>A fresh quantized copy of <paramref name="model"/> (shards of at most <paramref name="shardBytes"/>).</summary>
    public static string Write(string model, DType? experts, DType? dense, long shardBytes = QuantizedCheckpoint.DefaultShardBytes)
    {
        string dir = NewDir();
        QuantizedCheckpoint.Write(model, dir, experts, dense, shardBytes);
        return dir;
    }

    /// <summary>A new folder path (not created) under the temporary folder, deleted when the test process exits.</summary>
    public static string NewDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "daop-quant-" + Guid.NewGuid().ToString("N"));
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return dir;
    }
}
