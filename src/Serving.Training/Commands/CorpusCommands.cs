using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Tokenization;
using Serving.Training.Corpus;
using Serving.Training.Tokenizer;

namespace Serving.Training.Commands;

/// `corpus` (documentation files to documents), `tokenizer` (train byte-level BPE on the training documents) and
/// `tokenize` (documents to token files), the steps scripts/prepare-corpus.sh runs in order.
internal static class CorpusCommands
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Corpus()
    {
        var command = new Command("corpus", "Extract the prose of documentation files into train/held-out documents (deduplicated).");
        var files = new Option<string>("--files") { Description = "TSV: package, path of a file to read.", Required = true };
        var packages = new Option<string>("--packages") { Description = "TSV: package, version, licenses, copyright file.", Required = true };
        var output = new Option<string>("--output") { Description = "Corpus folder.", Required = true };
        var heldOut = new Option<int>("--heldout-permille") { Description = "Documents held out, per thousand.", DefaultValueFactory = _ => 10 };
        foreach (var option in new Option[] { files, packages, output, heldOut }) command.Options.Add(option);
        command.SetAction(parse => BuildCorpus(parse.GetValue(files)!, parse.GetValue(packages)!, new TokenizedCorpus(parse.GetValue(output)!), parse.GetValue(heldOut)));
        return command;
    }

    public static int BuildCorpus(string filesTsv, string packagesTsv, TokenizedCorpus corpus, int heldOutPermille)
    {
        var builder = new CorpusBuilder { HeldOutPermille = heldOutPermille };
        var inputs = File.ReadLines(filesTsv).Select(line => line.Split('\t')).Where(f => f.Length == 2).OrderBy(f => f[0], StringComparer.Ordinal).ThenBy(f => f[1], StringComparer.Ordinal).ToList();
        var paragraphs = new IReadOnlyList<string>[inputs.Count];
        Parallel.For(0, inputs.Count, i => paragraphs[i] = DocumentText.Read(inputs[i][1]));
        for (var i = 0; i < inputs.Count; i++) builder.Add(inputs[i][0], inputs[i][1], paragraphs[i]);
        Directory.CreateDirectory(corpus.Directory);
        CorpusBuilder.WriteDocuments(corpus.TrainDocuments, builder.Train);
        CorpusBuilder.WriteDocuments(corpus.HeldOutDocuments, builder.HeldOut);
        var packages = File.ReadLines(packagesTsv).Select(line => line.Split('\t')).Where(f => f.Length >= 4)
            .Select(f => new CorpusPackage(f[0], f[1], f[2], f[3])).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        var manifest = new JsonObject
        {
            ["packages"] = new JsonArray(packages.Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["version"] = p.Version, ["licenses"] = p.Licenses, ["copyright"] = p.CopyrightFile,
                ["documents"] = builder.Train.Count(d => d.Package == p.Name) + builder.HeldOut.Count(d => d.Package == p.Name),
                ["characters"] = builder.Train.Where(d => d.Package == p.Name).Sum(d => (long)d.Text.Length) + builder.HeldOut.Where(d => d.Package == p.Name).Sum(d => (long)d.Text.Length),
            }).ToArray()),
            ["train_documents"] = builder.Train.Count,
            ["heldout_documents"] = builder.HeldOut.Count,
            ["train_characters"] = builder.Train.Sum(d => (long)d.Text.Length),
            ["heldout_characters"] = builder.HeldOut.Sum(d => (long)d.Text.Length),
            ["dropped_paragraphs"] = builder.DroppedParagraphs,
            ["dropped_documents"] = builder.DroppedDocuments,
        };
        File.WriteAllText(corpus.Manifest, manifest.ToJsonString(Indented));
        Console.WriteLine($"{builder.Train.Count} training and {builder.HeldOut.Count} held-out documents " +
            $"({manifest["train_characters"]} and {manifest["heldout_characters"]} characters) in {corpus.Directory}");
        return 0;
    }

    public static Command Tokenizer()
    {
        var command = new Command("tokenizer", "Train a byte-level BPE tokenizer on the training documents (tokenizer/ in the corpus folder).");
        var data = new Option<string>("--data") { Description = "Corpus folder.", Required = true };
        var vocab = new Option<int>("--vocab-size") { Description = "Vocabulary size, special tokens included.", DefaultValueFactory = _ => 8192 };
        var special = new Option<int>("--num-special") { Description = "Special tokens at the top ids (BOS, EOS, ChatML, reserved).", DefaultValueFactory = _ => 8 };
        var maxChars = new Option<long>("--max-chars") { Description = "Characters of training text the merges are learned from.", DefaultValueFactory = _ => 200_000_000 };
        var maxLength = new Option<int>("--model-max-length") { DefaultValueFactory = _ => 512 };
        foreach (var option in new Option[] { data, vocab, special, maxChars, maxLength }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var corpus = new TokenizedCorpus(parse.GetValue(data)!);
            TrainTokenizer(CorpusBuilder.ReadDocuments(corpus.TrainDocuments).Select(d => d.Text), corpus.TokenizerDir,
                parse.GetValue(vocab), parse.GetValue(special), parse.GetValue(maxChars), parse.GetValue(maxLength));
            return 0;
        });
        return command;
    }

    /// Learns merges from texts (up to maxChars) and writes tokenizer.json and tokenizer_config.json.
    public static void TrainTokenizer(IEnumerable<string> texts, string directory, int vocabSize, int numSpecial, long maxChars, int maxLength)
    {
        var trainer = new BpeTrainer();
        long chars = 0;
        foreach (var text in texts.TakeWhile(_ => chars < maxChars))
        {
            trainer.Add(text);
            chars += text.Length;
        }
        var (tokens, merges) = trainer.Train(vocabSize - numSpecial);
        TokenizerFiles.Write(directory, tokens, merges, numSpecial, maxLength);
        Console.WriteLine($"learned {merges.Count} merges from {chars} characters ({trainer.NumDistinctWords} distinct words); wrote {directory}");
    }

    public static Command Tokenize()
    {
        var command = new Command("tokenize", "Encode the train/held-out documents into token files (each document followed by end-of-text).");
        var data = new Option<string>("--data") { Description = "Corpus folder (with tokenizer/).", Required = true };
        var maxTokens = new Option<long>("--max-train-tokens") { Description = "Cap on training tokens (documents past it are left out).", DefaultValueFactory = _ => long.MaxValue };
        command.Options.Add(data);
        command.Options.Add(maxTokens);
        command.SetAction(parse =>
        {
            var corpus = new TokenizedCorpus(parse.GetValue(data)!);
            var tokenizer = TextTokenizer.Load(corpus.TokenizerDir);
            var train = Encode(tokenizer, CorpusBuilder.ReadDocuments(corpus.TrainDocuments), parse.GetValue(maxTokens));
            var heldOut = Encode(tokenizer, CorpusBuilder.ReadDocuments(corpus.HeldOutDocuments), long.MaxValue);
            TokenFile.Write(corpus.TrainTokens, train);
            TokenFile.Write(corpus.HeldOutTokens, heldOut);
            var manifest = JsonNode.Parse(File.ReadAllText(corpus.Manifest))!.AsObject();
            (manifest["train_tokens"], manifest["heldout_tokens"], manifest["vocab_size"]) = (train.Count, heldOut.Count, tokenizer.VocabSize);
            manifest["train_token_file_bytes"] = new FileInfo(corpus.TrainTokens).Length;
            File.WriteAllText(corpus.Manifest, manifest.ToJsonString(Indented));
            Console.WriteLine($"{train.Count} training tokens ({new FileInfo(corpus.TrainTokens).Length / 1e6:F1} MB), {heldOut.Count} held-out tokens");
            return 0;
        });
        return command;
    }

    /// Documents in order, each followed by the end-of-text token, until maxTokens would be passed.
    public static List<int> Encode(TextTokenizer tokenizer, IEnumerable<CorpusDocument> documents, long maxTokens)
    {
        var eos = tokenizer.EosTokenIds[0];
        var docs = documents.ToList();
        var encoded = new IReadOnlyList<int>[docs.Count];
        Parallel.For(0, docs.Count, i => encoded[i] = tokenizer.Encode(docs[i].Text, addSpecialTokens: false));
        var tokens = new List<int>();
        foreach (var ids in encoded)
        {
            if (tokens.Count + ids.Count + 1 > maxTokens) break;
            tokens.AddRange(ids);
            tokens.Add(eos);
        }
        return tokens;
    }
}
