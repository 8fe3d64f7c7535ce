"""Checks DESCRIBE --format=json output against SHOW LAYERS --format=json.
Usage: describe-check.py DESCRIBE.json LAYERS.json [layer=N|band=B]
Prints the statement's fields, whether edges are in descending score, each
edge's band is its layer's, at most 3 edges per relation, and per relation
its targets; with layer=/band=, whether every edge is in that layer/band."""
import json, sys
from collections import Counter

lines = open(sys.argv[1]).read().splitlines()
d = json.loads(lines[0])
bands = {r["layer"]: r["band"] for r in json.load(open(sys.argv[2]))["rows"]}
edges = d["edges"]
scores = [e["score"] for e in edges]
print("statement=%s entity=%s method=%s lines=%d" % (d["statement"], d["entity"], d["method"], len(lines)))
print("descending=%s bands=%s per_relation<=3=%s" % (
    scores == sorted(scores, reverse=True),
    all(e["band"] == bands[e["layer"]] for e in edges),
    max(Counter(e["relation"] for e in edges).values(), default=0) <= 3))
for rel in ("capital", "continent"):
    print("%s: %s" % (rel, ", ".join(e["target"] for e in edges if e["relation"] == rel)))
for arg in sys.argv[3:]:
    key, value = arg.split("=")
    if key == "layer":
        print("only=%s" % (bool(edges) and all(e["layer"] == int(value) for e in edges)))
    else:
        print("only=%s" % (bool(edges) and all(e["band"] == value for e in edges)))
