using Daop.Kernels;

namespace Daop.Engine.Load;

/// <summary>Where <see cref="Model.ModelWeights.Load"/> gets tensors: a checkpoint, or synthetic weights for benchmarks.</summary>
public interface ITensorSource : IDisposable
{
    /// <summary>True if the tensor exists.</summary>
    bool Contains(string name);

    /// <summary>A [rows, cols] matrix view; throws <see cref="ModelLoadException"/> naming the tensor if absent or misshapen.</summary>
    WeightMatrix Matrix(string name, int rows, int cols);

    /// <summary>A vector widened to fp32.</summary>
    float[] Vector(string name, int length);
}
