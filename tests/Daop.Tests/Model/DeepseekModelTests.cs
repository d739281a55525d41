using Daop.Engine.Model;

namespace Daop.Tests.Model;

/// <summary>DeepSeek models end to end beyond the goldens: the decode hot path.</summary>
public class DeepseekModelTests
{
    [Theory]
    [InlineData("deepseekv2-tiny")]
    [InlineData("deepseekv3-tiny")]
    public void DecodeAllocatesNothing(string fixture)
    {
        // On its own thread (as GeneratorTests does) so the count is this loop's alone.
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var model = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = 512 });
                var cache = model.NewCache();
                var logits = new float[model.Config.VocabSize];
                int[] prompt = [5, 6, 7, 8, 9, 10, 11];
                model.Forward(prompt, 0, cache, logits);
                for (int i = 0; i < 4; i++) model.Forward([i + 1], prompt.Length + i, cache, logits);
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 4; i < 300; i++) model.Forward([i % 500 + 1], prompt.Length + i, cache, logits); // past one block of positions
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            catch (Exception e) { error = e; }
        });
        thread.Start();
        thread.Join();
        if (error != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }
}
