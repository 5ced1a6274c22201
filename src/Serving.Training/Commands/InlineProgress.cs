namespace Serving.Training.Commands;

/// Reports on the caller's thread at once (Progress<T> posts to the thread pool, so reports could arrive after
/// the work ended and the progress display closed).
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
