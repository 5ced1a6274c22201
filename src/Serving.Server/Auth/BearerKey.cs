using System.Security.Cryptography;
using System.Text;

namespace Serving.Server.Auth;

/// The --api-key keys as both APIs check them: "Bearer <key>" (HTTP header or gRPC metadata "authorization"), any one
/// of them. Compared in constant time over SHA-256 digests, each key every time, so neither content, length nor which
/// key matched leaks.
internal sealed class BearerKey(IReadOnlyList<string> apiKeys)
{
    const string Scheme = "Bearer ";

    readonly byte[][] _expectedDigests = [.. apiKeys.Select(key => SHA256.HashData(Encoding.UTF8.GetBytes(key)))];

    public bool IsAuthorized(string authorization)
    {
        if (!authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[Scheme.Length..].Trim()));
        var matched = false;
        foreach (var expected in _expectedDigests) matched |= CryptographicOperations.FixedTimeEquals(presented, expected);
        return matched;
    }
}
