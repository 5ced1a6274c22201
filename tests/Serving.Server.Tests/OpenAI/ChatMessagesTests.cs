using System.Text.Json;
using Serving.Server.Errors;
using Serving.Server.OpenAI;

namespace Serving.Server.Tests.OpenAI;

public sealed class ChatMessagesTests
{
    static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    /// Content stays as the request gave it, a string, text parts or null (the engine gives the template the form it
    /// reads); roles and names are kept.
    [Fact]
    public void ContentIsKeptAsGivenAndRolesKept()
    {
        var messages = ChatMessages.Normalize(Json("""
            [{"role": "system", "content": "be brief"},
             {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "ann"},
             {"role": "assistant", "content": null}]
            """));
        Assert.Equal("""[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"name":"ann"},{"role":"assistant","content":null}]""",
            messages.ToJsonString());
    }

    [Theory]
    [InlineData("{}", "messages")]
    [InlineData("[]", "messages")]
    [InlineData("[1]", "messages[0]")]
    [InlineData("""[{"content": "x"}]""", "messages[0].role")]
    [InlineData("""[{"role": "robot", "content": "x"}]""", "messages[0].role")]
    [InlineData("""[{"role": "user", "content": 5}]""", "messages[0].content")]
    [InlineData("""[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]""", "messages[0].content[0].type")]
    [InlineData("""[{"role": "user", "content": [{"type": "text", "text": 3}]}]""", "messages[0].content[0].text")]
    public void BadMessagesAre400NamingThePlace(string json, string param)
    {
        var error = Assert.Throws<ApiException>(() => ChatMessages.Normalize(Json(json)));
        Assert.Equal((400, param), (error.Status, error.Param));
    }
}
