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
     "vindex-manifest-edit", "vindex-bench-edit-eval"],
    [config.vindex_tools_dir])

fixtures = os.path.join(config.vindex_src_root, "test", "fixtures")
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
