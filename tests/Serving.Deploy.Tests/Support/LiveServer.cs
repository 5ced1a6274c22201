using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Serving.Deploy.Tests.Support;

/// One server started from the Dockerfile's entrypoint with the fixture model, shared by the live tests:
/// ready, one completion served (so every latency histogram has samples), /metrics scraped.
public sealed class LiveServer : IAsyncLifetime
{
    ContainerProcess? _process;

    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    internal ContainerProcess Process => _process ?? throw new InvalidOperationException("not started");

    /// Series names in the scrape taken after the completion (histograms appear as NAME_bucket/_sum/_count).
    public IReadOnlySet<string> ScrapedSeries { get; private set; } = new HashSet<string>();

    public string ScrapeText { get; private set; } = "";

    public JsonObject Completion { get; private set; } = [];

    public async Task InitializeAsync()
    {
        _process = ContainerProcess.Start(DeploymentFiles.Dockerfile(DeploymentFiles.CpuImage), Fixtures.Dir("llama-gqa"));
        Client.BaseAddress = _process.BaseAddress;
        await _process.WaitUntilOkAsync(Client, "/health/ready", TimeSpan.FromSeconds(120), CancellationToken.None);

        var models = await Client.GetFromJsonAsync<JsonObject>("/v1/models");
        var model = models!["data"]![0]!["id"]!.GetValue<string>();
        using var response = await Client.PostAsJsonAsync("/v1/completions",
            new JsonObject { ["model"] = model, ["prompt"] = "Hello", ["max_tokens"] = 4, ["ignore_eos"] = true });
        response.EnsureSuccessStatusCode();
        Completion = (await response.Content.ReadFromJsonAsync<JsonObject>())!;

        ScrapeText = await Client.GetStringAsync("/metrics");
        ScrapedSeries = ScrapeText.Split('\n')
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line[..line.IndexOfAny(['{', ' '])])
            .ToHashSet(StringComparer.Ordinal);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        if (_process != null) await _process.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class LiveServerCollection : ICollectionFixture<LiveServer>
{
    public const string Name = "live server";
}
