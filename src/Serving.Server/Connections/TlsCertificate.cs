using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Serving.Server.Connections;

/// The HTTP port's TLS certificate from --ssl-certfile and --ssl-keyfile (PEM files, vLLM's flags).
internal static class TlsCertificate
{
    /// null for plain HTTP (neither file given); ArgumentException naming the flags when they cannot be used.
    public static X509Certificate2? Load(string? certfile, string? keyfile)
    {
        if (certfile is null && keyfile is null) return null;
        if (certfile is null || keyfile is null) throw new ArgumentException("ssl-certfile and ssl-keyfile go together");
        try
        {
            return X509Certificate2.CreateFromPemFile(certfile, keyfile);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new ArgumentException($"ssl-certfile '{certfile}' with ssl-keyfile '{keyfile}' cannot be used: {error.Message}", error);
        }
    }
}
