"""Runs every ```lql block of a Markdown file through larql-opt: it must
lower (--emit=mlir) and the IR must print back identically.
Usage: lql-doc-examples.py DOC.md LARQL_OPT WORKDIR"""
import os, re, subprocess, sys

doc, opt, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
blocks = re.findall(r"^```lql\n(.*?)^```", open(doc).read(), re.M | re.S)
if not blocks:
    sys.exit("no ```lql examples in " + doc)
for i, block in enumerate(blocks):
    path = os.path.join(work, f"example{i}.lql")
    open(path, "w").write(block)
    ir = subprocess.run([opt, path, "--emit=mlir"], capture_output=True, text=True)
    if ir.returncode:
        sys.exit(f"example {i} fails:\n{block}\n{ir.stderr}")
    back = subprocess.run([opt, "-"], input=ir.stdout, capture_output=True, text=True)
    if back.returncode or back.stdout != ir.stdout:
        sys.exit(f"example {i} does not round-trip:\n{ir.stdout}\n{back.stdout}{back.stderr}")
print(f"{len(blocks)} examples")
