using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace Serving.Server.Playground;

/// The playground page: static files embedded in this assembly (wwwroot/), index.html at / and its scripts and
/// styles under /playground/. They are served before the API-key check, so the page loads without a key; it then
/// calls the same /v1 routes as any client, with the key the user types. Left out under --disable-playground.
internal static class PlaygroundSetup
{
    /// Resource names are the files' paths under wwwroot/, dotted, after this prefix (see the csproj).
    const string ResourcePrefix = "Serving.Server.Playground.wwwroot";

    /// The page runs only its own files and talks only to its own origin; nothing may frame it.
    const string ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; " +
        "form-action 'none'; frame-ancestors 'none'";

    public static void UsePlayground(this WebApplication app)
    {
        var files = new EmbeddedFileProvider(typeof(PlaygroundSetup).Assembly, ResourcePrefix);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = files, OnPrepareResponse = AddHeaders });
    }

    static void AddHeaders(StaticFileResponseContext file)
    {
        var headers = file.Context.Response.Headers;
        headers[HeaderNames.ContentSecurityPolicy] = ContentSecurityPolicy;
        headers[HeaderNames.XContentTypeOptions] = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        // Revalidate every load (the ETag makes that a 304), so a restarted server never runs a stale script.
        headers[HeaderNames.CacheControl] = "no-cache";
    }
}
