namespace Serving.Engine.Grammar;

/// The thinking a reasoning model writes before a constrained answer, as a grammar: any bytes up to the first
/// occurrence of the closing tag, the tag included. vLLM applies an output constraint once the thinking ends; here
/// the constraint's grammar is prefixed with this one, so the masks, the rollback and the cache stay as they are.
///
/// Built from the tag's matching automaton. Say the tag is m0 m1 ... m(n-1) and m0 appears nowhere else in it (true
/// of </think>). State j (0..n-1) is how much of the tag was just read; from state j >= 1 the byte mj advances, m0
/// goes back to state 1 and any other byte to state 0. A text that never completes the tag is then
///   ( X | m0 R* E )* ( m0 R* P )?
/// where X is any byte but m0 (state 0 to 0), P is one of the partial reads P(j) = m1..m(j-1) (from state 1 to j),
/// R = P(j) m0 (back to state 1) and E = P(j) c with c neither m0 nor mj (back to state 0).
internal static class ThoughtGrammar
{
    /// Any text without the thinking's end tag, then the tag.
    public static GrammarExpr UpTo(string tag)
    {
        var m = System.Text.Encoding.UTF8.GetBytes(tag);
        if (m.Length < 2 || m.Skip(1).Contains(m[0]))
            throw new ArgumentException($"the tag's first byte must not recur in it: '{tag}'", nameof(tag));
        // P(j) for j = 1..n-1: the tag's bytes 1..j-1 (P(1) is empty)
        var partials = Enumerable.Range(1, m.Length - 1).Select(j => (State: j, Read: Bytes(m[1..j]))).ToArray();
        var open = Single(m[0]);
        var restart = GrammarExpr.Choice([.. partials.Select(p => GrammarExpr.Sequence(p.Read, open))]);
        var exit = GrammarExpr.Choice([.. partials.Select(p => GrammarExpr.Sequence(p.Read, AllBut(m[0], m[p.State])))]);
        var partial = GrammarExpr.Choice([.. partials.Select(p => p.Read)]);
        var cycle = GrammarExpr.Choice(AllBut(m[0]), GrammarExpr.Sequence(open, GrammarExpr.Repeat(restart, 0, null), exit));
        var withoutTag = GrammarExpr.Sequence(GrammarExpr.Repeat(cycle, 0, null),
            GrammarExpr.Optional(GrammarExpr.Sequence(open, GrammarExpr.Repeat(restart, 0, null), partial)));
        return GrammarExpr.Sequence(withoutTag, Bytes(m));
    }

    static GrammarExpr Single(byte b) => GrammarExpr.Bytes(b, b);

    static GrammarExpr Bytes(byte[] bytes) => GrammarExpr.Sequence([.. bytes.Select(Single)]);

    /// One byte of any value but the given ones.
    static GrammarExpr AllBut(params byte[] excluded)
    {
        var ranges = new List<ByteRange>();
        var from = 0;
        foreach (var b in excluded.Distinct().Order())
        {
            if (b > from) ranges.Add(new ByteRange((byte)from, (byte)(b - 1)));
            from = b + 1;
        }
        if (from <= 255) ranges.Add(new ByteRange((byte)from, 255));
        return new ByteSetExpr(ranges);
    }
}
