using Serving.Engine;

namespace Serving.Server.OpenAI;

/// The engine's finish and stop reasons in OpenAI's words (and vLLM's, for stop_reason).
internal static class FinishReasons
{
    /// OpenAI's finish_reason.
    public static string ToOpenAI(this FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => "abort",
    };

    /// vLLM's stop_reason: the stop string, the stop token id, or null (EOS, or no stop at all).
    public static object? ToOpenAI(this StopReason? reason) => reason switch
    {
        StopReason.String stop => stop.Text,
        StopReason.TokenId token => token.Id,
        _ => null,
    };
}
