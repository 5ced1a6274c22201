using Serving.Server.OpenAI.Responses;
using Serving.Server.Options;

namespace Serving.Server.Tests.OpenAI.Responses;

/// The store keeps responses within --max-stored-response-bytes, evicting the least recently used first.
public sealed class ResponseStoreTests
{
    static StoredResponse Stored(string id, int textLength)
    {
        ResponseItem[] input = [new MessageItem($"msg_{id}", "user", [new ContentPart("input_text", new string('x', textLength))], "completed")];
        return new StoredResponse(new ResponseObject(id, 0, "completed", "m", [], null), input, input);
    }

    [Fact]
    public void TheLeastRecentlyUsedGoFirstWhenTheBytesRunOut()
    {
        var one = Stored("a", 1000);
        var store = new ResponseStore(new ServerOptions { MaxStoredResponseBytes = 3 * one.Bytes + one.Bytes / 2 });
        foreach (var id in new[] { "a", "b", "c" }) Assert.True(store.TrySave(Stored(id, 1000)));
        Assert.NotNull(store.Find("a"));          // "a" is now the most recently used
        Assert.True(store.TrySave(Stored("d", 1000)));
        Assert.Null(store.Find("b"));             // evicted: the least recently used
        Assert.NotNull(store.Find("a"));
        Assert.NotNull(store.Find("c"));
        Assert.NotNull(store.Find("d"));
        Assert.True(store.Delete("a"));
        Assert.False(store.Delete("a"));
        Assert.True(store.TrySave(Stored("e", 1000)));   // the deleted one's bytes came back
        Assert.NotNull(store.Find("c"));
    }

    [Fact]
    public void AResponseLargerThanTheStoreOrAStoreOfZeroBytesKeepsNothing()
    {
        Assert.False(new ResponseStore(new ServerOptions { MaxStoredResponseBytes = 0 }).TrySave(Stored("a", 1)));
        var small = new ResponseStore(new ServerOptions { MaxStoredResponseBytes = Stored("a", 10).Bytes });
        Assert.True(small.TrySave(Stored("a", 10)));
        Assert.False(small.TrySave(Stored("b", 100)));
        Assert.NotNull(small.Find("a"));
    }
}
