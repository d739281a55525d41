using Daop.Kernels;

namespace Daop.Engine.Load;

/// <summary>
/// Where <see cref="Model.ModelWeights.Load"/> gets tensors: a checkpoint, synthetic weights for benchmarks, or a
/// <see cref="ConvertingTensorSource"/> over either that stores some classes of matrix in another type.
/// </summary>
public interface ITensorSource : IDisposable
{
    /// <summary>True if the tensor exists.</summary>
    bool Contains(string name);

    /// <summary>A [rows, cols] matrix view; throws <see cref="ModelLoadException"/> naming the tensor if absent or misshapen.</summary>
    WeightMatrix Matrix(string name, int rows, int cols);

    /// <summary>A vector widened to fp32.</summary>
    float[] Vector(string name, int length);
}
