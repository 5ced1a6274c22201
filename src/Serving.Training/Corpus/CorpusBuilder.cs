using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Serving.Training.Corpus;

/// One document of the corpus: a documentation file's prose, paragraphs separated by blank lines.
internal sealed record CorpusDocument(string Package, string Path, string Text);

/// A source package: its version and licenses (DEP-5 License fields of its copyright file).
internal sealed record CorpusPackage(string Name, string Version, string Licenses, string CopyrightFile);

/// Builds the text corpus from documentation files: each file's paragraphs (DocumentText), paragraphs of mostly
/// non-letters dropped (tables, diagrams, command lines), long paragraphs seen before dropped (boilerplate that
/// every page repeats), documents shorter than MinDocumentChars or seen before dropped, and each document assigned
/// to train or held-out by a hash of its package and path, so the split does not depend on the file order.
internal sealed class CorpusBuilder
{
    public const int MinDocumentChars = 200;
    const int DedupParagraphChars = 20;

    readonly HashSet<string> _seenParagraphs = new(StringComparer.Ordinal);
    readonly HashSet<string> _seenDocuments = new(StringComparer.Ordinal);

    public int HeldOutPermille { get; init; } = 10;

    public List<CorpusDocument> Train { get; } = [];
    public List<CorpusDocument> HeldOut { get; } = [];
    public int DroppedParagraphs { get; private set; }
    public int DroppedDocuments { get; private set; }

    /// Adds one file's prose; returns whether it became a document.
    public bool Add(string package, string path, IReadOnlyList<string> paragraphs)
    {
        var kept = new List<string>();
        foreach (var paragraph in paragraphs)
        {
            if (!IsProse(paragraph) || (paragraph.Length >= DedupParagraphChars && !_seenParagraphs.Add(paragraph)))
            {
                DroppedParagraphs++;
                continue;
            }
            kept.Add(paragraph);
        }
        var text = string.Join("\n\n", kept);
        if (text.Length < MinDocumentChars || !_seenDocuments.Add(Hash(text)))
        {
            DroppedDocuments++;
            return false;
        }
        var document = new CorpusDocument(package, path, text);
        (IsHeldOut(package, path) ? HeldOut : Train).Add(document);
        return true;
    }

    /// At least half letters or spaces, and at least one letter: prose, a heading or a list item.
    public static bool IsProse(string paragraph)
    {
        var letters = paragraph.Count(char.IsLetter);
        var spaces = paragraph.Count(c => c == ' ');
        return letters > 0 && (letters + spaces) * 2 >= paragraph.Length;
    }

    bool IsHeldOut(string package, string path)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(package + "\n" + System.IO.Path.GetFileName(path)));
        return BitConverter.ToUInt32(hash, 0) % 1000 < HeldOutPermille;
    }

    static string Hash(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static void WriteDocuments(string path, IEnumerable<CorpusDocument> documents) =>
        File.WriteAllLines(path, documents.Select(d => JsonSerializer.Serialize(d, Json)));

    public static IEnumerable<CorpusDocument> ReadDocuments(string path) =>
        File.ReadLines(path).Where(line => line.Length > 0).Select(line => JsonSerializer.Deserialize<CorpusDocument>(line, Json)!);
}
