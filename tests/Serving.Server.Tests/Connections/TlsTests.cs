using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Serving.Server.Options;
using Serving.Server.Tests.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Connections;

/// --ssl-certfile and --ssl-keyfile: the OpenAI API over HTTPS with the operator's certificate, through real TLS.
public sealed class TlsTests : IDisposable
{
    readonly TempDirectory _dir = new();
    readonly X509Certificate2 _certificate;

    public TlsTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=serving-test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        _certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(_dir.File("cert.pem"), _certificate.ExportCertificatePem());
        File.WriteAllText(_dir.File("key.pem"), key.ExportPkcs8PrivateKeyPem());
    }

    public void Dispose()
    {
        _certificate.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task TheApiIsServedOverHttpsWithTheGivenCertificate()
    {
        await using var server = await RunningServer.StartAsync(["--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem")]);
        Assert.Equal("https", server.BaseAddress.Scheme);
        X509Certificate? presented = null;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            presented = certificate;
            return certificate?.GetCertHashString() == _certificate.GetCertHashString();
        };
        using var client = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", RunningServer.ApiKey);
        using var response = await client.PostAsync("/v1/completions", RunningServer.Json(new { model = RunningServer.Model, prompt = "Hi", max_tokens = 2 }));
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(_certificate.GetCertHashString(), presented!.GetCertHashString());

        // plain HTTP to the same port gets no answer
        using var plain = new HttpClient { BaseAddress = new UriBuilder(server.BaseAddress) { Scheme = "http" }.Uri };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync("/health"));
    }

    /// --ssl-cert-reqs and --ssl-ca-certs (vLLM's, Python's ssl levels): 2 requires a client certificate from the CA,
    /// 1 checks one when presented; a certificate from elsewhere is refused in the handshake either way.
    [Theory]
    [InlineData(2)]
    [InlineData(1)]
    public async Task ClientCertificatesMustChainToTheGivenAuthority(int requirement)
    {
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var authorityRequest = new CertificateRequest("CN=serving-test-ca", authorityKey, HashAlgorithmName.SHA256);
        authorityRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        authorityRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var authority = authorityRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(_dir.File("ca.pem"), authority.ExportCertificatePem());
        using var issued = ClientCertificate("CN=issued", authority);
        using var stranger = ClientCertificate("CN=stranger", null);

        await using var server = await RunningServer.StartAsync(["--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem"),
            "--ssl-cert-reqs", $"{requirement}", "--ssl-ca-certs", _dir.File("ca.pem")]);
        async Task<int> StatusWith(X509Certificate2? client)
        {
            var handler = new SocketsHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == _certificate.GetCertHashString();
            if (client is not null) handler.SslOptions.ClientCertificates = [client];
            using var http = new HttpClient(handler) { BaseAddress = server.BaseAddress };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", RunningServer.ApiKey);
            using var response = await http.PostAsync("/v1/completions", RunningServer.Json(new { model = RunningServer.Model, prompt = "Hi", max_tokens = 2 }));
            return (int)response.StatusCode;
        }
        Assert.Equal(200, await StatusWith(issued));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => StatusWith(stranger));
        if (requirement == 2) await Assert.ThrowsAnyAsync<HttpRequestException>(() => StatusWith(null));
        else Assert.Equal(200, await StatusWith(null));
    }

    /// A client certificate with its private key, issued by authority (or self-signed), as a client presents it.
    static X509Certificate2 ClientCertificate(string subject, X509Certificate2? authority)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));   // client authentication
        var (from, to) = (DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12));
        using var certificate = authority is null ? request.CreateSelfSigned(from, to)
            : request.Create(authority, from, to, RandomNumberGenerator.GetBytes(8)).CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    [Fact]
    public void UnusableFilesAreStartUpErrorsNamingTheFlags()
    {
        IReadOnlyList<string> Errors(params string[] flags) => ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(flags)).Validate();
        Assert.Contains("ssl-certfile and ssl-keyfile go together", Errors("--ssl-certfile", _dir.File("cert.pem")));
        Assert.Contains(Errors("--ssl-certfile", _dir.File("missing.pem"), "--ssl-keyfile", _dir.File("key.pem")),
            e => e.StartsWith("ssl-certfile '", StringComparison.Ordinal) && e.Contains("cannot be used", StringComparison.Ordinal));
        Assert.Contains(Errors("--ssl-certfile", _dir.File("key.pem"), "--ssl-keyfile", _dir.File("key.pem")),
            e => e.Contains("cannot be used", StringComparison.Ordinal));
        Assert.Empty(Errors("--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem")));
        Assert.Contains("ssl-cert-reqs needs ssl-ca-certs: the CA certificates clients' certificates must chain to",
            Errors("--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem"), "--ssl-cert-reqs", "2"));
        Assert.Contains("ssl-cert-reqs needs ssl-certfile and ssl-keyfile (client certificates are a TLS matter)",
            Errors("--ssl-cert-reqs", "1", "--ssl-ca-certs", _dir.File("cert.pem")));
        Assert.Contains("ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required) (got 3)", Errors("--ssl-cert-reqs", "3"));
        Assert.Contains(Errors("--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem"), "--ssl-cert-reqs", "2",
            "--ssl-ca-certs", _dir.File("missing.pem")), e => e.StartsWith("ssl-ca-certs '", StringComparison.Ordinal));
        Assert.Empty(Errors("--ssl-certfile", _dir.File("cert.pem"), "--ssl-keyfile", _dir.File("key.pem"), "--ssl-cert-reqs", "2",
            "--ssl-ca-certs", _dir.File("cert.pem")));
    }
}
