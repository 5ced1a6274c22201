namespace Serving.Engine.Templates.Jinja;

/// Sandbox bounds, so that no template (or conversation fed to one) can make rendering run away.
internal sealed record RenderLimits(int MaxOutputChars, long MaxLoopIterations, int MaxCallDepth, long MaxWorkChars)
{
    /// 4 Mi characters of prompt (well above a 128K-token context), a million loop iterations in total,
    /// 64 nested macro calls, and 256 Mi characters of strings built by operations (this bounds the time
    /// spent in repeated concatenation).
    public static readonly RenderLimits Default = new(MaxValueLength, 1_000_000, 64, 256L << 20);

    /// Longest string or list any single operation may build (checked before allocating).
    public const int MaxValueLength = 4 << 20;

    public static void CheckLength(long length)
    {
        if (length > MaxValueLength)
            throw new JinjaRuntimeError($"value of {length} elements exceeds the sandbox limit of {MaxValueLength}");
    }
}
