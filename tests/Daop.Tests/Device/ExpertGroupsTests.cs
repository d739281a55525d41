using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;

namespace Daop.Tests.Device;

public class ExpertGroupsTests
{
    [Fact]
    public void GroupsAreStableAndSkipNegativeKeys()
    {
        var g = new ExpertGroups(4);
        g.Sort([2, 0, -1, 2, 3, 0, -1, 2]);
        Assert.Equal(6, g.Items);
        Assert.Equal(new[] { 1, 5, 0, 3, 7, 4 }, g.Order.ToArray());
        Assert.Equal(new[] { 1, 5 }, g.Group(0).ToArray());
        Assert.Empty(g.Group(1).ToArray());
        Assert.Equal(new[] { 0, 3, 7 }, g.Group(2).ToArray());
        Assert.Equal(2, g.Start(2));
        Assert.Equal(3, g.MaxCount);
    }

    [Fact]
    public void GrowsForLongerChunksAndResetsBetweenSorts()
    {
        var g = new ExpertGroups(3, capacity: 2);
        var keys = Enumerable.Range(0, 33).Select(i => i % 3).ToArray(); // an awkward size
        g.Sort(keys);
        Assert.Equal(33, g.Items);
        Assert.Equal(Enumerable.Range(0, 11).Select(i => 3 * i + 1), g.Group(1).ToArray());
        g.Sort([1]);
        Assert.Equal(1, g.Items);
        Assert.Equal(0, g.Count(0));
        Assert.Equal(new[] { 0 }, g.Group(1).ToArray());
    }

    /// <summary>
    /// Batched expert tiles are chosen when row tiles of 4 would read the experts taking part 1.2 times over or more: one
    /// expert of 5 and one of 1 (3 row tiles for 2 experts) batch; ten experts of 2 beside one of 5 (12 for 11) and any
    /// groups of at most 4 stay in row tiles; negative keys (not taking part) do not count.
    /// </summary>
    [Fact]
    public void BatchedTilesPayOnceRowTilesWouldReadTheExpertsATimeAndAFifthOver()
    {
        var t = new ExpertTiles(16);
        t.Group([0, 0, 0, 0, 0, 1]);
        Assert.True(t.BatchedTilesPay);
        t.Group([.. Enumerable.Range(1, 10).SelectMany(e => new[] { e, e }), 0, 0, 0, 0, 0]);
        Assert.False(t.BatchedTilesPay);
        t.Group([.. Enumerable.Range(1, 4).SelectMany(e => new[] { e, e }), 0, 0, 0, 0, 0]); // 6 row tiles for 5 experts
        Assert.True(t.BatchedTilesPay);
        t.Group([0, 0, 0, 0, 1, 1, 1, 1, 2, -1, -1, -1, -1, -1, -1]);
        Assert.False(t.BatchedTilesPay);
    }
}
