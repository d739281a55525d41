using Daop.Engine.Placement;

namespace Daop.Engine.Schedule;

/// <summary>
/// The residency as the executor last carried it out. Policies change the <see cref="Residency"/> only; this turns the
/// changes into <see cref="PlacementAction.Evict"/> and <see cref="PlacementAction.Load"/> decisions, layer by layer:
/// what left the residency is evicted (in expert order), then what entered it is loaded (pending loads in their order,
/// then any other).
/// </summary>
sealed class CarriedResidency
{
    readonly Residency _r;
    readonly bool[,] _held; // [layer, expert]

    public CarriedResidency(Residency residency)
    {
        _r = residency;
        _held = new bool[residency.Layers, residency.Experts];
        for (int l = 0; l < residency.Layers; l++)
            foreach (int e in residency.Resident(l)) _held[l, e] = true;
    }

    /// <summary>True if the executor holds <paramref name="expert"/> of <paramref name="layer"/> in a slot.</summary>
    public bool Holds(int layer, int expert) => _held[layer, expert];

    /// <summary>Records a change the driver itself makes and decides (a miss's eviction or load).</summary>
    public void Set(int layer, int expert, bool held) => _held[layer, expert] = held;

    /// <summary>
    /// Appends to <paramref name="decisions"/> what carries out the residency's pending changes: layers with pending loads
    /// first, then <paramref name="layer"/>. Clears the pending loads.
    /// </summary>
    public void Reconcile(int layer, LoadReason reason, List<PlacementDecision> decisions)
    {
        foreach (var (pl, _) in _r.PendingLoads)
            if (pl != layer) ReconcileLayer(pl, reason, decisions);
        ReconcileLayer(layer, reason, decisions);
        _r.PendingLoads.Clear();
    }

    void ReconcileLayer(int layer, LoadReason reason, List<PlacementDecision> decisions)
    {
        for (int e = 0; e < _r.Experts; e++)
            if (!_r.IsResident(layer, e) && _held[layer, e])
            {
                _held[layer, e] = false;
                decisions.Add(new(PlacementAction.Evict, layer, e));
            }
        foreach (var (pl, e) in _r.PendingLoads)
            if (pl == layer) Load(e);
        for (int e = 0; e < _r.Experts; e++) Load(e);

        void Load(int e)
        {
            if (!_r.IsResident(layer, e) || _held[layer, e]) return;
            _held[layer, e] = true;
            decisions.Add(new(PlacementAction.Load, layer, e, Reason: reason));
        }
    }
}
