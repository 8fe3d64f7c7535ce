//===- vindex-decompose.cpp - Hugging Face checkpoint -> V-index ----------===//
#include "vindex/Convert/Decompose.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Depfile.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("INPUT"),
                                  cl::value_desc("checkpoint"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Output("o", cl::desc("Output V-index directory"),
                                   cl::value_desc("OUT.vindex"),
                                   cl::cat(toolOptions()));
enum class CompressKind { None, Zstd };
static cl::opt<CompressKind>
    Compress("compress", cl::desc("Payload compression"),
             cl::values(clEnumValN(CompressKind::None, "none",
                                   "raw, 64-byte aligned, mmap-able (default)"),
                        clEnumValN(CompressKind::Zstd, "zstd",
                                   "byte-plane shuffle + zstd, for archival")),
             cl::init(CompressKind::None), cl::cat(toolOptions()));
static cl::opt<int> ZstdLevel("zstd-level", cl::desc("zstd level (1-22)"),
                              cl::init(3), cl::cat(toolOptions()));
static FileToolOptions Common;
static cl::opt<bool>
    Verify("verify",
           cl::desc("Re-check every checksum of the written V-index "
                    "(or, without -o, of INPUT as a V-index)"),
           cl::cat(toolOptions()));

static const char *Overview =
    R"(vindex-decompose: Hugging Face checkpoint or GGUF -> V-index

Reads a checkpoint (config.json, model.safetensors or shards with their
model.safetensors.index.json, tokenizer files) or a GGUF file (F32, F16,
BF16 or Q8_0 tensors, its own config and tokenizer keys) and writes a
V-index: a
directory with a flatbuffers manifest, the FFN of every layer stored
feature-major (gate, up and down as [features, hidden]) and every other
tensor verbatim. The output appears atomically; the same inputs and flags
give byte-identical outputs whatever --jobs is.

INPUT is a checkpoint directory, a .safetensors file, an index.json or a
.gguf file.

Examples:
  vindex-decompose models/tiny-gemma3 -o tiny-gemma3.vindex
  vindex-decompose tiny.gguf -o tiny-from-gguf.vindex
  vindex-decompose ckpt/model.safetensors.index.json -o big.vindex --compress=zstd
  vindex-decompose ckpt -o m.vindex --depfile m.vindex.d --verify
  vindex-decompose --verify m.vindex          # check an existing V-index

Exit status: 0 success, 1 bad input, 2 bad command line.
)";

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  const char *Tool = "vindex-decompose";

  if (Output.empty()) {
    if (!Verify) {
      errs() << Tool << ": error: -o OUT.vindex is required\n";
      return ExitUsageError;
    }
    Expected<std::unique_ptr<Vindex>> V = Vindex::open(Input);
    if (!V)
      return exitWith(Tool, V.takeError());
    return exitWith(Tool, (*V)->verify(Common.Jobs));
  }

  if (ZstdLevel < 1 || ZstdLevel > 22) {
    errs() << Tool << ": error: --zstd-level must be between 1 and 22\n";
    return ExitUsageError;
  }
  DecomposeOptions Opts;
  Opts.Input = Input;
  Opts.Output = Output;
  Opts.Compress = Compress == CompressKind::Zstd;
  Opts.ZstdLevel = ZstdLevel;
  Opts.Jobs = Common.Jobs;
  Opts.Verify = Verify;
  // Only what determines the bytes: not -o, --jobs, --depfile or --verify.
  Opts.CommandLine = std::string(Tool) + " " + Input.getValue() +
                     (Opts.Compress ? " --compress=zstd --zstd-level=" +
                                          std::to_string(ZstdLevel)
                                    : std::string());
  std::vector<std::string> Inputs;
  if (Error E = decompose(Opts, Inputs))
    return exitWith(Tool, std::move(E));
  if (!Common.Depfile.empty())
    return exitWith(Tool, writeDepfile(Common.Depfile, Output, Inputs));
  return ExitSuccess;
}
