using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// Sets VER_FLG_WEAK on one version-needed entry (.gnu.version_r) of ELF64 little-endian libraries,
/// when the machine's libstdc++ does not define that version. See GlibcxxWeakVersion.targets for why.
public sealed class MarkGlibcxxVersionWeak : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string VersionName { get; set; } = "";

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlagWeak = 0x2;

    public override bool Execute()
    {
        if (SystemLibstdcxxHas(VersionName))
            return true;
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            int patched = Patch(path);
            if (patched > 0)
                Log.LogMessage(MessageImportance.High, $"marked {VersionName} weak in {path} (this machine's libstdc++ lacks it)");
        }
        return !Log.HasLoggedErrors;
    }

    static bool SystemLibstdcxxHas(string version)
    {
        string[] candidates = {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6",
            "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6" };
        foreach (var c in candidates)
            if (File.Exists(c))
                return IndexOf(File.ReadAllBytes(c), Encoding.ASCII.GetBytes(version + "\0"), 0) >= 0;
        return false; // no libstdc++ found where we look: patching is harmless
    }

    /// Returns how many entries were changed (0 when already weak or absent).
    int Patch(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 || elf[5] != 1)
            return 0; // not ELF64 little-endian
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0;
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)(shoff + (long)i * shentsize));
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            long verneedOffset = BitConverter.ToInt64(elf, sh + 0x18);
            int strtabIndex = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, checked((int)(shoff + (long)strtabIndex * shentsize)) + 0x18);
            changed += PatchVerneed(elf, verneedOffset, count, strtab);
        }
        if (changed > 0)
            File.WriteAllBytes(path, elf);
        return changed;
    }

    int PatchVerneed(byte[] elf, long offset, int count, long strtab)
    {
        int changed = 0;
        long need = offset;
        for (int n = 0; n < count; n++)
        {
            int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
            long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
            for (int a = 0; a < auxCount; a++)
            {
                int nameOffset = (int)(strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                if (ReadCString(elf, nameOffset) == VersionName && (flags & VerFlagWeak) == 0)
                {
                    BitConverter.GetBytes((ushort)(flags | VerFlagWeak)).CopyTo(elf, (int)aux + 4);
                    changed++;
                }
                aux += BitConverter.ToUInt32(elf, (int)aux + 12);
            }
            need += BitConverter.ToUInt32(elf, (int)need + 12);
        }
        return changed;
    }

    static string ReadCString(byte[] bytes, int start)
    {
        int end = start;
        while (end < bytes.Length && bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, start, end - start);
    }

    static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        for (int i = from; i <= haystack.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }
}
