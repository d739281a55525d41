namespace Daop.Engine.Placement;

/// <summary>
/// Which experts hold a GPU slot, per layer, under a fixed number of slots per layer. Policies change it;
/// every change is also queued in <see cref="PendingLoads"/> so the executor (GPU scheduler or simulator)
/// can carry out, or charge for, the transfer.
/// </summary>
public sealed class Residency
{
    readonly bool[,] _resident;   // [layers, experts]
    readonly int[] _count, _capacity;

    /// <summary>Layers.</summary>
    public int Layers { get; }
    /// <summary>Experts per layer.</summary>
    public int Experts { get; }
    /// <summary>(layer, expert) pairs that became resident and still need their weights copied.</summary>
    public List<(int Layer, int Expert)> PendingLoads { get; } = new();
    /// <summary>Experts loaded since creation (transfers).</summary>
    public long Loads { get; private set; }

    /// <summary>An empty residency with <paramref name="slotsPerLayer"/> slots in each layer.</summary>
    public Residency(int layers, int experts, IReadOnlyList<int> slotsPerLayer)
    {
        if (slotsPerLayer.Count != layers) throw new ArgumentException($"{slotsPerLayer.Count} slot counts for {layers} layers");
        Layers = layers;
        Experts = experts;
        _resident = new bool[layers, experts];
        _count = new int[layers];
        _capacity = slotsPerLayer.Select(s => Math.Clamp(s, 0, experts)).ToArray();
    }

    /// <summary>Slots of <paramref name="layer"/>.</summary>
    public int Capacity(int layer) => _capacity[layer];

    /// <summary>Occupied slots of <paramref name="layer"/>.</summary>
    public int Count(int layer) => _count[layer];

    /// <summary>True if the expert is on the GPU.</summary>
    public bool IsResident(int layer, int expert) => _resident[layer, expert];

    /// <summary>The resident experts of a layer, in id order.</summary>
    public IEnumerable<int> Resident(int layer)
    {
        for (int e = 0; e < Experts; e++) if (_resident[layer, e]) yield return e;
    }

    /// <summary>Makes <paramref name="expert"/> resident; the layer must have a free slot.</summary>
    public void Load(int layer, int expert)
    {
        if (_resident[layer, expert]) return;
        if (_count[layer] >= _capacity[layer])
            throw new InvalidOperationException($"layer {layer} has no free slot ({_capacity[layer]} slots) for expert {expert}");
        _resident[layer, expert] = true;
        _count[layer]++;
        Loads++;
        PendingLoads.Add((layer, expert));
    }

    /// <summary>Frees <paramref name="expert"/>'s slot.</summary>
    public void Evict(int layer, int expert)
    {
        if (!_resident[layer, expert]) throw new InvalidOperationException($"expert {expert} of layer {layer} is not resident");
        _resident[layer, expert] = false;
        _count[layer]--;
        PendingLoads.Remove((layer, expert));
    }

    /// <summary>Evicts one expert and loads another in its slot.</summary>
    public void Swap(int layer, int evict, int load)
    {
        Evict(layer, evict);
        Load(layer, load);
    }
}
