"""A `command` stage for nezha: reads documents as JSON lines on stdin and
answers each with one JSON line on stdout, in order.

    in:  {"index": 7, "origin": "corpus.txt:12", "lines": ["...", "..."]}
    out: {"lines": ["...", "..."]}      ([] drops the document)

This one drops lines shorter than 4 characters (chapter headings, stray
page numbers) and documents left with fewer than 2 lines. Anything printed
to stderr shows up in nezha's error message if the program fails.
"""

import json
import sys

for line in sys.stdin:
    doc = json.loads(line)
    kept = [l for l in doc["lines"] if len(l.strip()) >= 4]
    if len(kept) < 2:
        kept = []
    # flush: nezha waits for each answer (with timeout_s) before it sends
    # more than max_in_flight documents.
    print(json.dumps({"lines": kept}, ensure_ascii=False), flush=True)
