using System.Security.Cryptography;
using System.Text;
using Serving.Server.Errors;

namespace Serving.Server.Auth;

/// Requires "Authorization: Bearer <key>" on every route except /health (so probes need no secret).
/// The key is compared in constant time over SHA-256 digests, so neither content nor length leaks.
internal sealed class ApiKeyMiddleware(RequestDelegate next, string apiKey)
{
    readonly byte[] _expectedDigest = SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    public Task InvokeAsync(HttpContext context)
    {
        if (IsPublic(context.Request.Path) || IsAuthorized(context.Request.Headers.Authorization.ToString()))
            return next(context);
        return ErrorWriter.WriteAsync(context, new ApiException(StatusCodes.Status401Unauthorized,
            ErrorTypes.Authentication, "Missing or incorrect API key; send 'Authorization: Bearer <key>'.",
            code: "invalid_api_key"));
    }

    static bool IsPublic(PathString path) => path.StartsWithSegments("/health");

    internal bool IsAuthorized(string authorization)
    {
        const string scheme = "Bearer ";
        if (!authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _expectedDigest);
    }
}
