using System.Diagnostics;
using System.Globalization;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Engine.Schedule;

/// <summary>
/// Mixed precision on a miss (HOBBIT, Tang et al. 2024): during decode a routed expert that is not on the GPU and whose
/// router weight (after the family's normalisation: the combine weight) is at most <see cref="MaxWeight"/> runs from a
/// lower-precision host copy (<see cref="MissPrecisionCopies"/>) of type <see cref="Type"/>: such an expert adds little
/// to the token's output, and a CPU expert's time is the bytes it reads. Hits and misses above the bound keep full
/// precision. Applies to misses run on the CPU (static-cpu, daop*); a miss a policy loads into a GPU slot keeps full
/// precision (a slot holds the experts' stored format only).
/// </summary>
public sealed record MissPrecision
{
    /// <summary>The low-precision type <paramref name="type"/> and the largest router weight <paramref name="maxWeight"/> (0 to 1) that uses it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The weight is not in [0, 1] or the type is not a block format Daop quantizes to.</exception>
    public MissPrecision(DType type, float maxWeight)
    {
        if (!(maxWeight >= 0 && maxWeight <= 1))
            throw new ArgumentOutOfRangeException(nameof(maxWeight), maxWeight, $"--miss-max-weight must be a router weight in [0, 1], got {maxWeight.ToString(CultureInfo.InvariantCulture)}");
        if (type is not (DType.Q4_0 or DType.Q8_0 or DType.MXFP4))
            throw new ArgumentOutOfRangeException(nameof(type), type, $"--miss-dtype must be q4_0, q8_0 or mxfp4 (a format Daop quantizes to), got {type.Name()}");
        Type = type;
        MaxWeight = maxWeight;
    }

    /// <summary>The low-precision copy's stored type.</summary>
    public DType Type { get; }

    /// <summary>The largest router weight whose miss takes the low-precision copy.</summary>
    public float MaxWeight { get; }

    /// <summary>"miss q4_0≤0.2".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"miss {Type.Name()}≤{MaxWeight:0.###}");
}

/// <summary>
/// The host's low-precision copy of every routed expert for <see cref="MissPrecision"/>: each matrix quantized at load
/// from the primary weights with the load-time quantizer (<see cref="WeightConvert.Matrix"/>) into pinned arrays this
/// object holds (the garbage collector frees them with it). Biases (GPT-OSS) are shared with the primary experts.
/// </summary>
public sealed class MissPrecisionCopies
{
    readonly ExpertWeights[][] _experts; // [layer][expert]
    readonly List<byte[]> _blocks = [];  // keeps the pinned arrays the matrices point into

    /// <summary>Quantizes every routed expert of <paramref name="weights"/> to <paramref name="type"/>.</summary>
    /// <exception cref="ArgumentException">
    /// The experts are already stored in a block format (quantizing it again would add its error to the first), or
    /// stored in a format no larger than <paramref name="type"/> (nothing to save).
    /// </exception>
    public MissPrecisionCopies(ModelWeights weights, DType type)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Type = type;
        var first = weights.Layers.FirstOrDefault(l => l.Experts.Length > 0)?.Experts[0]
            ?? throw new ArgumentException("--miss-dtype needs a model with routed experts", nameof(weights));
        Primary = first.Gate.Type;
        if (!WeightConvert.CanConvert(Primary, type) || Primary.IsBlock())
            throw new ArgumentException($"--miss-dtype {type.Name()}: the routed experts are stored as {Primary.Name()}, and quantizing a block format again " +
                "would add its error to the first; load them as bf16/f16/f32 (or without --expert-dtype)", nameof(weights));
        if (type.RowBytes(first.Gate.Cols) >= Primary.RowBytes(first.Gate.Cols))
            throw new ArgumentException($"--miss-dtype {type.Name()} is no smaller than the experts' {Primary.Name()}", nameof(type));
        var clock = Stopwatch.StartNew();
        _experts = new ExpertWeights[weights.Layers.Length][];
        for (int l = 0; l < weights.Layers.Length; l++)
        {
            var src = weights.Layers[l].Experts;
            var dst = _experts[l] = new ExpertWeights[src.Length];
            for (int e = 0; e < src.Length; e++)
            {
                dst[e] = new ExpertWeights(Convert(src[e].Gate), Convert(src[e].Up), Convert(src[e].Down)) { Bias = src[e].Bias };
                Bytes += dst[e].ByteLength;
                PrimaryBytes += src[e].ByteLength;
            }
        }
        Seconds = clock.Elapsed.TotalSeconds;
        PrimaryExpertBytes = first.ByteLength;
        ExpertBytes = first.Gate.Rows * type.RowBytes(first.Gate.Cols) + first.Up.Rows * type.RowBytes(first.Up.Cols)
            + first.Down.Rows * type.RowBytes(first.Down.Cols);
    }

    unsafe WeightMatrix Convert(in WeightMatrix m)
    {
        long bytes = WeightConvert.ByteLength(m, Type);
        var block = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(1, bytes)), pinned: true);
        _blocks.Add(block);
        fixed (byte* p = block) // pinned: the address stays valid while the array lives
        {
            WeightConvert.Matrix(m, p, Type);
            return new WeightMatrix(p, Type, m.Rows, m.Cols);
        }
    }

    /// <summary>The copies' stored type.</summary>
    public DType Type { get; }
    /// <summary>The primary experts' stored type.</summary>
    public DType Primary { get; }
    /// <summary>Host bytes of every copy (what the switch adds to host memory).</summary>
    public long Bytes { get; }
    /// <summary>Host bytes of the primary experts the copies were made from.</summary>
    public long PrimaryBytes { get; }
    /// <summary>Bytes of one expert's copy (what a low-precision CPU run reads instead of the primary's).</summary>
    public long ExpertBytes { get; }
    /// <summary>Bytes of one primary expert (what a full-precision CPU run reads).</summary>
    public long PrimaryExpertBytes { get; }
    /// <summary>Host bytes a low-precision run does not read: <see cref="PrimaryExpertBytes"/> − <see cref="ExpertBytes"/>.</summary>
    public long SavedBytesPerRun => PrimaryExpertBytes - ExpertBytes;
    /// <summary>Seconds quantizing took (at load).</summary>
    public double Seconds { get; }

    /// <summary>The low-precision copy of <paramref name="expert"/> of <paramref name="layer"/>.</summary>
    public ExpertWeights Weights(int layer, int expert) => _experts[layer][expert];

    /// <summary>The copies of <paramref name="layer"/>'s experts.</summary>
    public ExpertWeights[] Layer(int layer) => _experts[layer];

    /// <summary>"q4_0 copies of 24.0 MiB experts: 6.8 MiB, made in 0.12 s".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Type.Name()} copies of {PrimaryBytes / 1048576.0:F1} MiB of {Primary.Name()} experts: {Bytes / 1048576.0:F1} MiB more host memory, made in {Seconds:F2} s");
}
