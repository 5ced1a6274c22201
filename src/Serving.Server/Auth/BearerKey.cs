using System.Security.Cryptography;
using System.Text;

namespace Serving.Server.Auth;

/// The --api-key as both APIs check it: "Bearer <key>" (HTTP header or gRPC metadata "authorization").
/// Compared in constant time over SHA-256 digests, so neither content nor length leaks.
internal sealed class BearerKey(string apiKey)
{
    const string Scheme = "Bearer ";

    readonly byte[] _expectedDigest = SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    public bool IsAuthorized(string authorization)
    {
        if (!authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[Scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _expectedDigest);
    }
}
