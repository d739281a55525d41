using System.Reflection;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule;

public class OffloadStatsTests
{
    // Every settable counter, so a field added later but left out of Since/Add fails here.
    static readonly PropertyInfo[] Counters = typeof(OffloadStats).GetProperties()
        .Where(p => p.SetMethod != null && (p.PropertyType == typeof(long) || p.PropertyType == typeof(double))).ToArray();

    static OffloadStats Filled(int k)
    {
        var s = new OffloadStats();
        for (int i = 0; i < Counters.Length; i++)
        {
            var p = Counters[i];
            p.SetValue(s, p.PropertyType == typeof(long) ? (object)(long)(k * (i + 3)) : k * (i + 3) + 0.25);
        }
        return s;
    }

    [Fact]
    public void SinceAndAddCoverEveryCounter()
    {
        Assert.True(Counters.Length >= 21, $"{Counters.Length} counters");
        var a = Filled(5);
        var b = Filled(2);
        var d = a.Since(b);
        var sum = b.Snapshot();
        sum.Add(d);
        foreach (var p in Counters)
        {
            Assert.Equal(Convert.ToDouble(p.GetValue(a)) - Convert.ToDouble(p.GetValue(b)), Convert.ToDouble(p.GetValue(d)), 9);
            Assert.Equal(Convert.ToDouble(p.GetValue(a)), Convert.ToDouble(p.GetValue(sum)), 9);
        }
    }
}
