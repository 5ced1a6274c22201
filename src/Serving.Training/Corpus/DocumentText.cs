using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace Serving.Training.Corpus;

/// The prose of one documentation file as paragraphs of plain text: HTML (Sphinx, DocBook, hand-written) through
/// AngleSharp, keeping the text of leaf blocks (paragraphs, headings, list items, definitions) of the main content
/// and dropping navigation, code, scripts and tables; reStructuredText and plain text (also .gz) by light rules:
/// paragraphs are blank-line separated, directives, heading underlines and literal blocks are dropped, roles and
/// inline markup are reduced to their text; Perl's POD likewise (commands dropped, headings and items kept,
/// formatting codes such as C&lt;...&gt; reduced to their text). Whitespace inside a paragraph collapses to single spaces.
internal static partial class DocumentText
{
    static readonly string[] MainContent = ["div[role=main]", "div.body", "main", "article", "div#content", "body"];
    const string Dropped = "script, style, nav, header, footer, pre, table, code.descname, .headerlink, .sphinxsidebar, .related, " +
        ".navheader, .navfooter, .toc, .highlight, .breadcrumbs, .footer, #quickbar, #page-header, #footer, div.navigation, " +
        ".docnav, #banner, #title, div.header, .Contents_element, .programlisting, .screen, .synopsis";
    // DocBook (Publican) writes its paragraphs as div.para
    const string Blocks = "p, div.para, h1, h2, h3, h4, h5, h6, li, dt, dd, blockquote, figcaption";

    public static IReadOnlyList<string> Read(string path)
    {
        var text = ReadText(path);
        var name = path.EndsWith(".gz", StringComparison.Ordinal) ? path[..^3] : path;
        if (name.EndsWith(".html", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".htm", StringComparison.OrdinalIgnoreCase))
            return FromHtml(text);
        return name.EndsWith(".pod", StringComparison.Ordinal) ? FromPod(text) : FromText(text);
    }

    static string ReadText(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    public static IReadOnlyList<string> FromHtml(string html)
    {
        var document = new HtmlParser().ParseDocument(html);
        var main = MainContent.Select(document.QuerySelector).FirstOrDefault(e => e is not null);
        if (main is null) return [];
        foreach (var element in main.QuerySelectorAll(Dropped).ToList()) element.Remove();
        // leaf blocks only: a list item holding paragraphs gives its paragraphs, not itself as well
        return main.QuerySelectorAll(Blocks)
            .Where(block => block.QuerySelector(Blocks) is null)
            .Select(block => Collapse(block.TextContent))
            .Where(paragraph => paragraph.Length > 0)
            .ToList();
    }

    public static IReadOnlyList<string> FromText(string text)
    {
        var paragraphs = new List<string>();
        var current = new List<string>();
        var literal = false;   // inside a reST literal block (after "::") or directive body: indented lines
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.Length == 0 || line == "%" || HeadingUnderline().IsMatch(line))
            {
                Flush(current, paragraphs);
                continue;
            }
            if (literal && char.IsWhiteSpace(raw[0])) continue;
            literal = false;
            if (line.StartsWith(".. ", StringComparison.Ordinal) || line.StartsWith("    ", StringComparison.Ordinal) || line.StartsWith('\t'))
            {
                Flush(current, paragraphs);
                literal = line.StartsWith(".. ", StringComparison.Ordinal);   // a directive's indented body goes with it
                continue;
            }
            current.Add(Inline(line));
            if (line.EndsWith("::", StringComparison.Ordinal)) (literal, current[^1]) = (true, current[^1].TrimEnd(':') + ":");
        }
        Flush(current, paragraphs);
        return paragraphs;
    }

    /// POD: "=head2 Title" and "=item Text" keep their text as a paragraph, other commands are dropped, verbatim
    /// (indented) paragraphs are dropped, and X&lt;text&gt; codes (also X&lt;&lt; text &gt;&gt;, L&lt;text|target&gt;) become their text.
    public static IReadOnlyList<string> FromPod(string pod)
    {
        var text = new StringBuilder();
        foreach (var line in pod.Replace("\r\n", "\n").Split('\n'))
        {
            if (!line.StartsWith('=')) text.AppendLine(line);
            else if (PodHeading().Match(line) is { Success: true } heading) text.AppendLine().AppendLine(heading.Groups["text"].Value).AppendLine();
            else text.AppendLine();
        }
        var plain = text.ToString();
        for (var previous = ""; previous != plain;) (previous, plain) = (plain, PodCode().Replace(plain, m => m.Groups["text"].Value.Split('|')[0].Trim()));
        return FromText(plain);
    }

    static void Flush(List<string> lines, List<string> paragraphs)
    {
        var paragraph = Collapse(string.Join(' ', lines));
        if (paragraph.Length > 0) paragraphs.Add(paragraph);
        lines.Clear();
    }

    // :role:`text <target>` and :role:`text` -> text; ``code`` and *emphasis* -> their text; `link <url>`_ -> link
    static string Inline(string line)
    {
        line = Role().Replace(line, m => m.Groups["text"].Value);
        line = Link().Replace(line, m => m.Groups["text"].Value.TrimEnd());
        return line.Replace("``", "").Replace("**", "");
    }

    static string Collapse(string text) => Whitespace().Replace(text, " ").Trim();

    [GeneratedRegex(@"^=(head\d|item)\s+(?<text>.+)$")]
    private static partial Regex PodHeading();

    [GeneratedRegex(@"[A-Z]<<\s+(?<text>.*?)\s+>>|[A-Z]<(?<text>[^<>]*)>")]
    private static partial Regex PodCode();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"^([=\-~^""'`#*+_.:])\1{2,}$")]
    private static partial Regex HeadingUnderline();

    [GeneratedRegex(@":[a-zA-Z:.-]+:`(?<text>[^`<]*?)\s*(<[^`>]*>)?`")]
    private static partial Regex Role();

    [GeneratedRegex(@"`(?<text>[^`<]+)(<[^`>]*>)?`_{1,2}")]
    private static partial Regex Link();
}
