using System.Net.Http.Headers;

namespace Serving.LoadGen.Clients;

/// The HTTP client every OpenAI-API backend drives a server with: unbounded connections kept for minutes, no client
/// timeout (the benchmark's own deadline is the caller's token, and long runs must not be cut), the bearer key.
internal static class ApiHttpClient
{
    public static HttpClient Create(Uri baseUrl, string? apiKey)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) };
        var address = baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/");   // relative paths resolve under it
        var http = new HttpClient(handler) { BaseAddress = address, Timeout = Timeout.InfiniteTimeSpan };
        if (apiKey is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return http;
    }
}
