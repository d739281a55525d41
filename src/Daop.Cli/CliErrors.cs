using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;

namespace Daop.Cli;

/// <summary>Turns the errors a user can fix into one "daop: ..." line on stderr and exit code 2.</summary>
static class CliErrors
{
    public static bool IsUserError(Exception e) => e is ModelLoadException or ContextOverflowException or ArgumentException
        or FileNotFoundException or DeviceUnavailableException or DeviceNotAvailableException or ChatTemplateException
        or NotSupportedException or IOException;

    public static async Task<int> Run(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"daop: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
    }
}
