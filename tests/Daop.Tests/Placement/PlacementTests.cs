using Daop.Engine.Placement;

namespace Daop.Tests.Placement;

public class PlacementTests
{
    [Theory]
    [InlineData(0.0, 6, 8, 0)]
    [InlineData(0.25, 6, 8, 12)]
    [InlineData(0.5, 32, 8, 128)]
    [InlineData(1.0, 3, 6, 18)]
    [InlineData(0.3, 5, 7, 11)]
    public void RatioBudgetSpreadsEvenlyAndSumsToTheBudget(double ratio, int layers, int experts, int total)
    {
        var slots = SlotBudget.FromRatio(ratio, layers, experts);
        Assert.Equal(total, slots.Sum());
        Assert.True(slots.Max() - slots.Min() <= 1);
    }

    [Fact]
    public void ByteBudgetCountsWholeExperts()
    {
        var slots = SlotBudget.FromBytes(budgetBytes: 10 * 1000 + 999, expertBytes: 1000, layers: 4, experts: 8);
        Assert.Equal(10, slots.Sum());
        Assert.Equal(new[] { 3, 3, 2, 2 }, slots);
        Assert.Throws<ArgumentOutOfRangeException>(() => SlotBudget.FromRatio(1.5, 4, 8));
    }

    [Fact]
    public void ResidencyRefusesToOverfillALayer()
    {
        var r = new Residency(2, 4, [1, 2]);
        r.Load(0, 3);
        var e = Assert.Throws<InvalidOperationException>(() => r.Load(0, 1));
        Assert.Contains("layer 0 has no free slot (1 slots) for expert 1", e.Message);
        r.Swap(0, 3, 1);
        Assert.True(r.IsResident(0, 1));
        Assert.False(r.IsResident(0, 3));
    }

    [Fact]
    public void LruEvictsTheLeastRecentlyUsedExpert()
    {
        var r = new Residency(1, 5, [2]);
        var p = new LruPolicy(prefetch: false);
        p.Initialize(r, null);                       // round-robin: experts 0, 1
        Assert.Equal(new[] { 0, 1 }, r.Resident(0));
        p.OnUse(0, 0);
        p.OnUse(0, 1);
        p.OnUse(0, 0);                               // 1 is now least recent
        Assert.Equal(MissAction.Transfer, p.OnMiss(0, 4, r, out int victim));
        Assert.Equal(1, victim);
    }

    [Fact]
    public void PrefetchLoadsPredictedExpertsWithoutEvictingOtherPredictions()
    {
        var r = new Residency(1, 6, [2]);
        var p = new LruPolicy(prefetch: true);
        p.Initialize(r, null);
        p.OnUse(0, 0);
        p.OnUse(0, 1);
        p.OnPredicted(0, [4, 5], r);
        Assert.Equal(new[] { 4, 5 }, r.Resident(0));
        Assert.Equal(2, r.PendingLoads.Count);
    }

    [Fact]
    public void DriftSwapsInAnExpertThatBecameHotAndHoldsAgainstOneToken()
    {
        var r = new Residency(1, 4, [2]);
        var p = new DaopPolicy(approximate: false, driftWindow: 4);
        var popularity = new long[1, 4];
        popularity[0, 0] = 10; popularity[0, 1] = 9; popularity[0, 2] = 1;
        p.Initialize(r, popularity);
        Assert.Equal(new[] { 0, 1 }, r.Resident(0));
        p.OnPrefillCounts(0, [4, 4, 0, 0], r);                 // p = [.5, .5, 0, 0]; nothing to swap
        r.PendingLoads.Clear();
        // Decode uses 0 and 3; with a = 1/4, p1 = .375, .28125, .2109, .1582 and p3 = .125, .21875, .2891, .3418:
        // p3 > 1.05·p1 + (1/4)/2 first holds after the fourth token.
        for (int t = 1; t <= 4; t++)
        {
            p.OnUse(0, 0);
            p.OnUse(0, 3);
            p.AfterDecodeLayer(0, r);
            Assert.Equal(t == 4, r.IsResident(0, 3));
            Assert.Equal(t < 4, r.IsResident(0, 1));
            Assert.Equal(2, r.Count(0));
        }
        Assert.Equal([(0, 3)], r.PendingLoads);
        // One token of the evicted expert (p1 = .2437 vs p3 = .2563) does not bring it back.
        p.OnUse(0, 0);
        p.OnUse(0, 1);
        p.AfterDecodeLayer(0, r);
        Assert.True(r.IsResident(0, 3));
        Assert.False(r.IsResident(0, 1));
    }

    [Fact]
    public void RandomRoutingNeverExceedsTheBudget()
    {
        var rng = new Random(7);
        var slots = SlotBudget.FromRatio(0.4, 4, 10);
        foreach (IPlacementPolicy p in new IPlacementPolicy[] { new LruPolicy(false), new LruPolicy(true), new StaticPolicy(), new DaopPolicy(false, driftWindow: 3) })
        {
            var r = new Residency(4, 10, slots);
            p.Initialize(r, null);
            for (int step = 0; step < 2000; step++)
            {
                int l = rng.Next(4), e = rng.Next(10);
                p.OnPredicted(l, [rng.Next(10), rng.Next(10)], r);
                if (!r.IsResident(l, e) && p.OnMiss(l, e, r, out int victim) == MissAction.Transfer)
                {
                    if (victim >= 0) r.Evict(l, victim);
                    r.Load(l, e);
                }
                p.OnUse(l, e);
                if (step % 2 == 1) p.AfterDecodeLayer(l, r);
                for (int k = 0; k < 4; k++) Assert.True(r.Count(k) <= slots[k]);
            }
        }
    }

    [Fact]
    public void StaticPlacementFromAListIsChecked()
    {
        var r = new Residency(2, 4, [1, 1]);
        var e = Assert.Throws<ArgumentException>(() => new StaticPolicy([[0, 1], [2]]).Initialize(r, null));
        Assert.Contains("names 2 experts for layer 0, which has 1 slots", e.Message);
    }
}
