using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Serving.Server.Connections;

/// Clients' TLS certificates, as vLLM's --ssl-cert-reqs and --ssl-ca-certs ask (Python's ssl levels): 0 asks for none,
/// 1 checks one a client presents, 2 requires one; a certificate must chain to a CA of the --ssl-ca-certs PEM file
/// (the only roots trusted for clients).
internal sealed class ClientCertificates(int requirement, X509Certificate2Collection authorities)
{
    public const int None = 0, Optional = 1, Required = 2;

    /// null when clients are not asked for certificates; ArgumentException naming the flags when they cannot be used.
    public static ClientCertificates? Load(int requirement, string? caFile, bool https)
    {
        if (requirement is < None or > Required) throw new ArgumentException($"ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required) (got {requirement})");
        if (requirement == None) return null;
        if (!https) throw new ArgumentException("ssl-cert-reqs needs ssl-certfile and ssl-keyfile (client certificates are a TLS matter)");
        if (caFile is null) throw new ArgumentException("ssl-cert-reqs needs ssl-ca-certs: the CA certificates clients' certificates must chain to");
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(caFile);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new ArgumentException($"ssl-ca-certs '{caFile}' cannot be used: {error.Message}", error);
        }
        return authorities.Count > 0 ? new ClientCertificates(requirement, authorities)
            : throw new ArgumentException($"ssl-ca-certs '{caFile}' holds no PEM certificate");
    }

    public void Configure(HttpsConnectionAdapterOptions https)
    {
        https.ClientCertificateMode = requirement == Required ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate;
        https.ClientCertificateValidation = (certificate, _, _) => ChainsToAnAuthority(certificate);
    }

    bool ChainsToAnAuthority(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
