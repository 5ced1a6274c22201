using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Serving.Server.Tests.Support;

/// One captured log entry of the server: level, event id, category, the formatted text and the exception.
public sealed record LogEntry(LogLevel Level, int EventId, string Category, string Text, Exception? Exception);

/// The server's log lines (as its configured filters let them through), captured from the moment it is attached.
public sealed class LogCapture : ILoggerProvider
{
    readonly ConcurrentQueue<LogEntry> _entries = new();

    public static LogCapture AttachTo(RunningServer server)
    {
        var capture = new LogCapture();
        server.App.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
        return capture;
    }

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public IEnumerable<string> Lines => _entries.Select(e => e.Text);

    public List<string> Of(int eventId) => [.. _entries.Where(e => e.EventId == eventId).Select(e => e.Text)];

    /// Waits until count entries with eventId were logged (some are written after the client saw its answer).
    public async Task<List<string>> WaitForAsync(int eventId, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (Of(eventId).Count < count && DateTime.UtcNow < deadline) await Task.Delay(10);
        var lines = Of(eventId);
        Assert.Equal(count, lines.Count);
        return lines;
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() { }

    sealed class Logger(LogCapture capture, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter) =>
            capture._entries.Enqueue(new LogEntry(logLevel, eventId.Id, category, formatter(state, exception), exception));
    }
}
