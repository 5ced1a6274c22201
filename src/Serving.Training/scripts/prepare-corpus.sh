#!/usr/bin/env bash
# Prepares the training corpus from Debian packages' English documentation (nothing is installed: each package
# is downloaded with apt-get and unpacked with dpkg-deb into a scratch folder). Writes data/corpus/ at the
# repository root (ignored by git): train/heldout documents, tokenizer/, train.u16.br and heldout.u16.br, and
# manifest.json (packages, versions, licenses, counts).
#   src/Serving.Training/scripts/prepare-corpus.sh [OUTPUT] [VOCAB_SIZE]
# Needs apt-get (Debian), dpkg-deb and the .NET SDK. Takes about 15 minutes on 2 cores.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=${1:-$root/data/corpus}
vocab=${2:-8192}
work=${CORPUS_WORK:-$root/data/debian}
mkdir -p "$work/debs" "$work/x" "$out"

# package: the files of it that hold English prose (paths relative to the unpacked package)
declare -A FILES=(
  [debian-handbook]='usr/share/doc/debian-handbook/html/en-US/*.html'
  [debian-reference-en]='usr/share/debian-reference/*.en.html'
  [debian-faq]='usr/share/doc/debian/FAQ/*.html'
  [maint-guide]='usr/share/doc/maint-guide/html/*.en.html'
  [developers-reference]='usr/share/developers-reference/*.html'
  [debian-policy]='usr/share/doc/debian-policy/policy.html/*.html'
  [debian-history]='usr/share/doc/debian-history/docs/*.en.html'
  [debian-kernel-handbook]='usr/share/doc/debian-kernel-handbook/kernel-handbook.html/*.html'
  [installation-guide-amd64]='usr/share/doc/installation-guide-amd64/en/*.html'
  [live-manual-html]='usr/share/doc/live-manual/html/live-manual/*.en.html'
  [python3.11-doc]='usr/share/doc/python3.11/html/{tutorial,library,reference,howto,faq,using,extending,installing,distributing,whatsnew}/*.html'
  [linux-doc-6.1]='usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz'
  [git-doc]='usr/share/doc/git-doc/*.txt usr/share/doc/git-doc/{howto,technical}/*.txt'
  [postgresql-doc-15]='usr/share/doc/postgresql-doc-15/html/*.html'
  [apache2-doc]='usr/share/doc/apache2-doc/manual/en/**/*.html'
  [sqlite3-doc]='usr/share/doc/sqlite3/*.html usr/share/doc/sqlite3/{lang,c3ref,session}/*.html'
  [python-django-doc]='usr/share/doc/python-django-doc/html/{intro,topics,howto,ref,faq,misc,internals}/**/*.html'
  [pypy3-doc]='usr/share/doc/pypy3/html/*.html'
  [python-setuptools-doc]='usr/share/doc/python-setuptools-doc/html/**/*.html'
  [abs-guide]='usr/share/doc/abs-guide/html/*.html'
  [gnu-standards]='usr/share/doc/gnu-standards/*.html'
  [rust-doc]='usr/share/doc/rust-doc/html/{book,reference,nomicon,edition-guide,embedded-book,rust-by-example,rustc,rustdoc}/**/!(print|toc).html'
  [perl-doc]='usr/share/perl/5.*/pod/*.pod'
  [fortunes]='usr/share/games/fortunes/!(art|ascii-art).u8'
)

cd "$work/debs"
apt-get download "${!FILES[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
: > "$work/packages.tsv"
: > "$work/files.tsv"
shopt -s globstar nullglob extglob
for package in $(printf '%s\n' "${!FILES[@]}" | sort); do
  deb=$(ls "$work/debs/${package}"_*.deb | head -1)
  dir="$work/x/$package"
  [ -d "$dir" ] || { mkdir -p "$dir" && dpkg-deb -x "$deb" "$dir"; }
  version=$(dpkg-deb -f "$deb" Version)
  copyright=$(ls "$dir"/usr/share/doc/*/copyright 2>/dev/null | head -1 || true)
  licenses=$( (grep -h '^License:' "$copyright" 2>/dev/null | sed 's/^License: *//' | sort -u | paste -sd ';' -) || true)
  printf '%s\t%s\t%s\t%s\n' "$package" "$version" "${licenses:-see copyright}" "${copyright#"$work/"}" >> "$work/packages.tsv"
  (cd "$dir" && eval "for f in ${FILES[$package]}; do [ -f \"\$f\" ] && printf '%s\t%s\n' '$package' \"$dir/\$f\"; done") >> "$work/files.tsv"
done
echo "$(wc -l < "$work/files.tsv") files from $(wc -l < "$work/packages.tsv") packages"

cd "$root"
training() { dotnet run -c Release --project src/Serving.Training -- "$@"; }
training corpus --files "$work/files.tsv" --packages "$work/packages.tsv" --output "$out"
training tokenizer --data "$out" --vocab-size "$vocab"
training tokenize --data "$out"
ls -la "$out"
