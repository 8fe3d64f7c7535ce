# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "VINDEX"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".test", ".lql", ".mlir"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.vindex_obj_root, "test", "lit")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(
    ["vindex-decompose", "vindex-compile", "larql-probe", "larql-opt",
     "vindex-manifest-edit", "vindex-bench-edit-eval", "vindex-tokenize",
     "vindex-bench-forward"],
    [config.vindex_tools_dir])

fixtures = os.path.join(config.vindex_src_root, "test", "fixtures")
config.substitutions.append(
    ("%bench", os.path.join(config.vindex_src_root, "bench")))
config.substitutions.append(("%tools_dir", config.vindex_tools_dir))
config.substitutions.append(("%fixtures", fixtures))
config.substitutions.append(
    ("%st", config.python_executable + " " +
     os.path.join(config.vindex_src_root, "test", "lit", "Inputs", "st.py")))
config.substitutions.append(
    ("%gguf", config.python_executable + " " +
     os.path.join(config.vindex_src_root, "test", "lit", "Inputs", "gguf.py")))
config.substitutions.append(
    ("%expect-exit", config.python_executable + " " +
     os.path.join(config.vindex_src_root, "test", "lit", "Inputs",
                  "expect-exit.py")))

# The tokenizer conformance suite (test/tokenizers) needs node and the pinned
# npm packages utils/npm-packages.sh installs outside the tree; without them
# its test is reported UNSUPPORTED, with this note saying why.
import shutil
npm_dir = os.environ.get(
    "VINDEX_NPM_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vindex", "npm"))
npm_modules = os.path.join(npm_dir, "node_modules")
node = shutil.which("node")
if node and os.path.isfile(os.path.join(npm_dir, ".vindex-pinned")):
    config.available_features.add("tokenizer-references")
    config.substitutions.append(("%node", node))
    config.substitutions.append(("%npm_modules", npm_modules))
else:
    lit_config.note(
        "tokenizer conformance SKIPPED: " +
        ("node not found" if not node else
         "the pinned npm packages are not in " + npm_dir) +
        " (run utils/setup.sh or utils/npm-packages.sh)")
config.substitutions.append(
    ("%tokenizers", os.path.join(config.vindex_src_root, "test", "tokenizers")))

# The kernel paths this CPU can run (lib/Model/Kernels.cpp chooses among
# them; tests that force one require its feature, else they are reported
# UNSUPPORTED).
cpu_flags = set()
try:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                cpu_flags = set(line.split(":", 1)[1].split())
                break
except OSError:
    pass
if "avx512f" in cpu_flags:
    config.available_features.add("kernels-avx512")
    if {"avx512bw", "avx512_bf16"} <= cpu_flags:
        config.available_features.add("kernels-avx512bf16")
