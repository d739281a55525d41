using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Daop.Engine.Load.Config;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Engine.Load;

/// <summary>What converting weights at load did: matrices converted, their bytes before and after, and the time it took.</summary>
/// <param name="Experts">The type routed experts were converted to, or null.</param>
/// <param name="Dense">The type attention, shared-expert and dense-MLP matrices were converted to, or null.</param>
/// <param name="Matrices">Matrices converted (those already of the asked type are not counted).</param>
/// <param name="SourceBytes">Their bytes as stored in the checkpoint.</param>
/// <param name="Bytes">Their bytes after conversion, in memory the model owns.</param>
/// <param name="Seconds">Wall time of the conversions (reading the checkpoint's pages included).</param>
public sealed record WeightConversion(DType? Experts, DType? Dense, int Matrices, long SourceBytes, long Bytes, double Seconds)
{
    /// <summary>"converted 96 matrices (experts to q4_0) in 0.21 s: 36.0 MiB to 10.1 MiB".</summary>
    public override string ToString()
    {
        var what = new List<string>();
        if (Experts is { } e) what.Add($"experts to {e.Name()}");
        if (Dense is { } d) what.Add($"dense to {d.Name()}");
        return string.Create(CultureInfo.InvariantCulture,
            $"converted {Matrices} matrices ({string.Join(", ", what)}) in {Seconds:F2} s: {SourceBytes / 1048576.0:F1} MiB to {Bytes / 1048576.0:F1} MiB");
    }
}

/// <summary>
/// An <see cref="ITensorSource"/> that converts the matrices of chosen <see cref="WeightClass"/>es into another stored type
/// as the model loads (<c>ModelOptions.ExpertDType</c>, <c>ModelOptions.DenseDType</c>): each one on all CPU
/// workers (<see cref="WeightConvert.Matrix"/>) into native memory this source owns, so the model owns it while it owns the
/// source. Kept matrices (embedding, LM head, routers, shared-expert gates), vectors and matrices already of the asked
/// type come from the inner source as they are.
/// </summary>
public sealed unsafe class ConvertingTensorSource : ITensorSource
{
    readonly ITensorSource _inner;
    readonly Func<string, WeightClass> _classOf;
    readonly DType? _experts, _dense;
    readonly Dictionary<string, WeightMatrix> _converted = new(StringComparer.Ordinal);
    readonly List<nint> _blocks = [];
    readonly Stopwatch _clock = new();
    long _sourceBytes, _bytes;

    /// <summary>
    /// Converts <paramref name="inner"/>'s routed experts to <paramref name="experts"/> and its dense matrices to
    /// <paramref name="dense"/> (null: as stored); <paramref name="classOf"/> classes a tensor name (<c>Model.WeightClasses.Of</c>).
    /// </summary>
    public ConvertingTensorSource(ITensorSource inner, Func<string, WeightClass> classOf, DType? experts, DType? dense)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(classOf);
        _inner = inner; _classOf = classOf; _experts = experts; _dense = dense;
    }

    /// <summary>What has been converted so far.</summary>
    public WeightConversion Report => new(_experts, _dense, _converted.Count, _sourceBytes, _bytes, _clock.Elapsed.TotalSeconds);

    /// <summary>The converted matrices by tensor name (what <c>daop quantize</c> writes).</summary>
    public IReadOnlyDictionary<string, WeightMatrix> Converted => _converted;

    /// <inheritdoc />
    public bool Contains(string name) => _inner.Contains(name);

    /// <inheritdoc />
    public float[] Vector(string name, int length) => _inner.Vector(name, length);

    /// <inheritdoc />
    /// <exception cref="ModelLoadException">The stored block format cannot be converted to the one asked for.</exception>
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var m = _inner.Matrix(name, rows, cols);
        var cls = _classOf(name);
        DType? target = cls switch { WeightClass.Experts => _experts, WeightClass.Dense => _dense, _ => null };
        if (target is not { } to || to == m.Type) return m;
        if (_converted.TryGetValue(name, out var done)) return done;
        if (!WeightConvert.CanConvert(m.Type, to))
            throw new ModelLoadException($"tensor '{name}' is stored as {m.Type.Name()}; {(cls == WeightClass.Experts ? "--expert-dtype" : "--dense-dtype")} " +
                $"{to.Name()} would quantize its rounding again: load it as {m.Type.Name()}, as f32/f16/bf16, or quantize the original weights");
        _clock.Start();
        try
        {
            long bytes = WeightConvert.ByteLength(m, to);
            var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, bytes), 64);
            _blocks.Add((nint)p);
            WeightConvert.Matrix(m, p, to);
            var converted = new WeightMatrix(p, to, rows, cols);
            _converted[name] = converted;
            _sourceBytes += m.ByteLength;
            _bytes += bytes;
            return converted;
        }
        finally { _clock.Stop(); }
    }

    /// <summary>Frees the converted matrices and disposes the inner source.</summary>
    public void Dispose()
    {
        foreach (nint p in _blocks) NativeMemory.AlignedFree((void*)p);
        _blocks.Clear();
        _converted.Clear();
        _inner.Dispose();
    }
}
