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
    }
}
