#!/bin/sh
# Writes the man pages of a swift-argument-parser tool: scripts/generate-manual.sh TOOL OUTDIR
# (scoresde.1 with every subcommand, and one page per subcommand: scoresde.sample.1, ...).
# Builds argument-parser's own generate-manual tool (offline: from the resolved checkout) rather
# than running its package plugin, which would rebuild every product of this package first.
set -eu
tool=$1
out=$2
swift build -c release --product generate-manual
bin=$(swift build -c release --show-bin-path)
mkdir -p "$out"
"$bin/generate-manual" "$tool" --multi-page --output-directory "$out"   # one page per subcommand
"$bin/generate-manual" "$tool" --output-directory "$out"                # scoresde.1: all of them
