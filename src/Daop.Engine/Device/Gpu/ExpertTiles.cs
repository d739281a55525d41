using System.Runtime.InteropServices;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// The work list of one grouped-experts launch, and the launch. Of a chunk's P = T·K routed positions, those taking part
/// are grouped by key (expert, or slot of an expert pool) with <see cref="ExpertGroups"/>, cut into tiles of up to a tile
/// size, and written on the host in the index layout the grouped kernels read:
/// [order n | tiles 3·nt (key, first, count) | pos P | key P | weight bits P]. One copy takes it up; then fused gate/up +
/// SiLU over every tile, and the down projection either into per-position outputs [P, H] (combined later) or fused with
/// the weighted combine straight into y (every position taking part, few tokens). The all-resident experts, the
/// offloaded experts' waves and GpuBench (Daop.Bench) all launch through it.
/// </summary>
/// <param name="keys">Keys positions are grouped by (experts, or slots).</param>
public sealed class ExpertTiles(int keys)
{
    readonly ExpertGroups _groups = new(keys);
    int[] _host = [];
    int _p;
    bool _onDevice;

    /// <summary>Keys positions are grouped by.</summary>
    public int Keys => _groups.Keys;
    /// <summary>Positions of the chunk (T·K).</summary>
    public int AllPositions => _p;
    /// <summary>Positions taking part in this launch (n).</summary>
    public int Positions => _onDevice ? _p : _groups.Items;
    /// <summary>Tiles laid out by <see cref="Layout(ReadOnlySpan{int}, ReadOnlySpan{float}, int)"/>.</summary>
    public int Tiles { get; private set; }
    /// <summary>Where the tiles start in the index (after the order).</summary>
    public int TileOffset => Positions;
    /// <summary>Where each position's index in the order starts.</summary>
    public int PosOffset { get; private set; }
    /// <summary>Where each position's key starts.</summary>
    public int KeyOffset { get; private set; }
    /// <summary>Where each position's combine weight (as int bits) starts.</summary>
    public int WeightOffset { get; private set; }
    /// <summary>Ints of the whole index.</summary>
    public int Length { get; private set; }
    /// <summary>The index, on the host.</summary>
    public ReadOnlySpan<int> Host => _host.AsSpan(0, Length);

    /// <summary>
    /// Whether the grouped positions should take batched tiles: when row tiles (<see cref="GpuKernels.RowTokens"/> positions
    /// each, an expert read once per tile) would read the experts taking part 1.2 times over or more. Below that the row
    /// kernels win although they read some experts twice: the batched ones read each expert once but slower with few
    /// positions per tile (H100, bf16, <c>bench gpu-ops --part timings</c>: Mixtral, Qwen3-30B-A3B and OLMoE shapes at
    /// 8–32 tokens read 1.6–2.2 TB/s batched against 2.1–2.9 in row tiles; under random routing the calls where row tiles
    /// won have ratios ≈ 1.05, those where batched won ≈ 1.4 and above).
    /// </summary>
    public bool BatchedTilesPay
    {
        get
        {
            int taking = 0, rowTiles = 0;
            for (int e = 0; e < _groups.Keys; e++)
            {
                int c = _groups.Count(e);
                if (c == 0) continue;
                taking++;
                rowTiles += (c + GpuKernels.RowTokens - 1) / GpuKernels.RowTokens;
            }
            return 5 * rowTiles >= 6 * taking;
        }
    }

    /// <summary>Positions in group <paramref name="key"/>.</summary>
    public int Count(int key) => _groups.Count(key);

    /// <summary>Groups positions 0..P−1 by <paramref name="keyOf"/> [P] (negative: not in this launch); then <see cref="Layout(ReadOnlySpan{int}, ReadOnlySpan{float}, int)"/>.</summary>
    public void Group(ReadOnlySpan<int> keyOf)
    {
        _groups.Sort(keyOf);
        _p = keyOf.Length;
        _onDevice = false;
    }

    /// <summary>
    /// The layout <see cref="Daop.Kernels.Gpu.RoutingKernels.SoftmaxTopK"/> writes on the device for
    /// <paramref name="positions"/> routed positions, all taking part, one tile each: only the offsets are set here
    /// (<see cref="Host"/> is not written, and <see cref="Upload"/> is not called).
    /// </summary>
    public void OnePerPosition(int positions)
    {
        _p = positions;
        _onDevice = true;
        Tiles = positions;
        PosOffset = 4 * positions;
        KeyOffset = 5 * positions;
        WeightOffset = 6 * positions;
        Length = RoutingKernels.IndexLength(positions);
    }

    /// <summary>Cuts the groups into tiles of up to <paramref name="tileSize"/> positions and writes the index, with <paramref name="weights"/> [P].</summary>
    public void Layout(ReadOnlySpan<int> keyOf, ReadOnlySpan<float> weights, int tileSize)
    {
        int p = _p, n = Positions, tiles = 0;
        for (int e = 0; e < _groups.Keys; e++) tiles += (_groups.Count(e) + tileSize - 1) / tileSize;
        Tiles = tiles;
        PosOffset = n + 3 * tiles;
        KeyOffset = PosOffset + p;
        WeightOffset = KeyOffset + p;
        Length = WeightOffset + p;
        if (_host.Length < Length) _host = GC.AllocateUninitializedArray<int>(Math.Max(Length, 2 * _host.Length), pinned: true);
        var host = _host;
        _groups.Order.CopyTo(host);
        int tile = 0;
        for (int e = 0; e < _groups.Keys; e++)
            for (int s = 0; s < _groups.Count(e); s += tileSize)
            {
                int o = n + 3 * tile++;
                host[o] = e;
                host[o + 1] = _groups.Start(e) + s;
                host[o + 2] = Math.Min(tileSize, _groups.Count(e) - s);
            }
        for (int i = 0; i < p; i++)
        {
            host[PosOffset + i] = 0;
            host[KeyOffset + i] = Math.Max(0, keyOf[i]);
            host[WeightOffset + i] = BitConverter.SingleToInt32Bits(weights[i]);
        }
        for (int j = 0; j < n; j++) host[PosOffset + host[j]] = j;
    }

    /// <summary>
    /// <see cref="Layout(ReadOnlySpan{int}, ReadOnlySpan{float}, int)"/> in the tiles the kernels for <paramref name="gate"/>/<paramref name="down"/> weights take:
    /// batched (<see cref="GpuKernels.BatchTileTokens(Daop.Kernels.DType, Daop.Kernels.DType)"/>, which read each weight row
    /// once per tile) when <paramref name="mayBatch"/> and <see cref="BatchedTilesPay"/>, else row tiles of
    /// <see cref="GpuKernels.RowTokens"/>. Returns whether the tiles are batched.
    /// </summary>
    public bool Layout(ReadOnlySpan<int> keyOf, ReadOnlySpan<float> weights, GpuKernels kernels, in GpuMatrix gate, in GpuMatrix down, bool mayBatch)
    {
        bool batched = mayBatch && BatchedTilesPay;
        Layout(keyOf, weights, batched ? kernels.BatchTileTokens(gate.Type, down.Type) : GpuKernels.RowTokens);
        return batched;
    }

    /// <summary>
    /// Queues the index's copy into <paramref name="index"/> on <paramref name="device"/>'s stream without waiting: the pinned
    /// host array is pageable memory to CUDA, which stages it before the call returns, and the CPU accelerator copies at
    /// once — so the host index may be rebuilt by the next launch.
    /// </summary>
    public void Upload(GpuDevice device, GpuView<int> index)
    {
        index.SubView(0, Length).CopyFromCPUUnsafeAsync(device.Stream, ref MemoryMarshal.GetArrayDataReference(_host), Length);
        device.CountCopy();
    }

    /// <summary>
    /// Fused gate/up over the tiles into h [n, I], then down: fused with the weighted combine into y [T, H]
    /// (<paramref name="fusedCombine"/>: every position takes part) or into per-position outputs [P, H]. With
    /// <paramref name="bias"/>: GPT-OSS's biased clamped-SwiGLU experts, each key's biases in it as
    /// <paramref name="biasArgs"/> says.
    /// </summary>
    public void Launch(GpuKernels k, GpuStream s, in GpuMatrix gate, in GpuMatrix up, in GpuMatrix down, GpuView<float> x,
        GpuView<float> h, GpuView<int> index, int topK, bool batched, GpuView<float> output, bool fusedCombine, int tokens,
        GpuView<float>? bias = null, ExpertBiasArgs biasArgs = default)
    {
        var scales = index.SubView(WeightOffset, _p).Cast<float>();
        k.GateUp(s, gate, up, x, h, Positions, index, topK, Tiles, TileOffset, batched, bias, biasArgs);
        if (fusedCombine) k.DownCombine(s, down, h, output, tokens, topK, index, scales, PosOffset, KeyOffset, bias, biasArgs);
        else k.Down(s, down, h, output, Positions, index, scales, Tiles, TileOffset, batched, bias, biasArgs);
    }
}
