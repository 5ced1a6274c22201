using Serving.Training.Corpus;

namespace Serving.Training.Tests.Corpus;

public sealed class DocumentTextTests
{
    [Fact]
    public void HtmlKeepsTheProseOfTheMainContentAndDropsNavigationAndCode()
    {
        const string html = """
            <html><body><div class="related">Previous topic | Next topic</div>
            <div role="main"><h1>Installing packages<a class="headerlink" href="#x">¶</a></h1>
            <p>APT installs   packages
            and their dependencies.</p>
            <pre>apt install foo</pre>
            <ul><li><p>First item.</p></li><li>Second &amp; last item.</li></ul>
            <table><tr><td>cell</td></tr></table>
            <script>var x = 1;</script></div><footer>Copyright</footer></body></html>
            """;
        Assert.Equal(["Installing packages", "APT installs packages and their dependencies.", "First item.", "Second & last item."],
            DocumentText.FromHtml(html));
    }

    [Fact]
    public void RestructuredTextKeepsParagraphsAndDropsMarkup()
    {
        const string rst = """
            .. SPDX-License-Identifier: GPL-2.0

            ===========
            The kernel
            ===========

            The :ref:`scheduler <sched-doc>` picks a task; see ``sched_yield()`` and
            `the docs <https://example.org>`_ for more. Example::

                int main(void) { return 0; }

            .. note::
               A directive's body is dropped.

            Last paragraph.
            """;
        Assert.Equal(["The kernel", "The scheduler picks a task; see sched_yield() and the docs for more. Example:", "Last paragraph."],
            DocumentText.FromText(rst));
    }

    [Fact]
    public void PodKeepsHeadingsItemsAndTextAndDropsCommandsAndVerbatim()
    {
        const string pod = """
            =pod

            =head1 NAME

            perlintro - a brief introduction

            =over 4

            =item Scalars

            Use C<my $x> and see L<perlfunc|perlfunc/my> or B<C<< print >>>.

                print "verbatim";

            =back

            =cut
            """;
        Assert.Equal(["NAME", "perlintro - a brief introduction", "Scalars", "Use my $x and see perlfunc or print."], DocumentText.FromPod(pod));
    }

    [Fact]
    public void TheBuilderDropsRepeatedBoilerplateShortDocumentsAndNonProse()
    {
        var builder = new CorpusBuilder { HeldOutPermille = 0 };
        var boilerplate = "This page is part of the documentation and is licensed under the same terms as the package.";
        var body = string.Concat(Enumerable.Repeat("A real paragraph about the system. ", 8));
        Assert.True(builder.Add("pkg", "a.html", [body, boilerplate]));
        Assert.True(builder.Add("pkg", "b.html", [body + " Another one.", boilerplate, "| --- | --- | 123 |"]));
        Assert.False(builder.Add("pkg", "c.html", ["Too short."]));
        Assert.False(builder.Add("pkg", "d.html", [body, boilerplate]));   // the same text again
        Assert.Equal(2, builder.Train.Count);
        Assert.DoesNotContain(boilerplate, builder.Train[1].Text);
        Assert.DoesNotContain("| ---", builder.Train[1].Text);
        Assert.Equal(2, builder.DroppedDocuments);
    }

    [Fact]
    public void TheSplitDependsOnThePackageAndFileNameAlone()
    {
        var text = string.Concat(Enumerable.Repeat("Some prose for the split. ", 20));
        var builder = new CorpusBuilder { HeldOutPermille = 500 };
        for (var i = 0; i < 40; i++) builder.Add("pkg", $"/x/doc{i}.html", [$"{i} {text}"]);
        var again = new CorpusBuilder { HeldOutPermille = 500 };
        for (var i = 39; i >= 0; i--) again.Add("pkg", $"/y/doc{i}.html", [$"{i} {text}"]);
        Assert.InRange(builder.HeldOut.Count, 5, 35);
        Assert.Equal(builder.HeldOut.Select(d => Path.GetFileName(d.Path)).Order(), again.HeldOut.Select(d => Path.GetFileName(d.Path)).Order());
    }

    [Fact]
    public void TokenFilesRoundTrip()
    {
        using var dir = new TempDirectory();
        int[] tokens = [0, 1, 65535, 8191, 42];
        TokenFile.Write(dir.File("t" + TokenFile.Extension), tokens);
        Assert.Equal(tokens, TokenFile.Read(dir.File("t" + TokenFile.Extension)));
        Assert.Throws<ArgumentException>(() => TokenFile.Write(dir.File("big" + TokenFile.Extension), [70000]));
    }
}
