//===- vindex-compile.cpp - V-index -> model files ------------------------===//
#include "vindex/Convert/Compile.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Depfile.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("IN.vindex"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Output("o", cl::Required,
                                   cl::desc("Output (a directory for "
                                            "safetensors, a file for gguf)"),
                                   cl::value_desc("OUT"),
                                   cl::cat(toolOptions()));
enum class OutputFormat { Safetensors, GGUF };
static cl::opt<OutputFormat>
    Format("format", cl::Required, cl::desc("Output format"),
           cl::values(clEnumValN(OutputFormat::Safetensors, "safetensors",
                                 "a Hugging Face checkpoint directory"),
                      clEnumValN(OutputFormat::GGUF, "gguf",
                                 "a GGUF file for llama.cpp")),
           cl::cat(toolOptions()));
static cl::opt<std::string>
    Type("type",
         cl::desc("GGUF matrix type: auto (as stored), f32, f16, bf16 or "
                  "q8_0; vectors are always f32"),
         cl::value_desc("TYPE"), cl::init("auto"), cl::cat(toolOptions()));
static FileToolOptions Common;

static const char *Overview = R"(vindex-compile: V-index -> model files

Lowers a V-index back to files other tools load. --format=safetensors writes
a Hugging Face checkpoint directory: config.json, the tensors in the source's
shards (with model.safetensors.index.json when the source had one) and the
tokenizer files. For an unpatched V-index every tensor equals the source's
byte for byte. --format=gguf writes one GGUF v3 file that llama.cpp loads:
general.* metadata, the hyperparameters, the tokenizer (tokenizer.ggml.*)
and every tensor under llama.cpp's name and conventions, the matrices in
--type. Every payload checksum is checked on the way.

Examples:
  vindex-compile tiny-gemma3.vindex --format=safetensors -o tiny-gemma3-hf
  vindex-compile m.vindex --format=safetensors -o out --depfile out.d
  vindex-compile tiny-gemma3.vindex --format=gguf -o tiny.gguf --type=q8_0

Exit status: 0 success, 1 bad input, 2 bad command line.
)";

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  const char *Tool = "vindex-compile";
  std::optional<GGUFOutputType> GGUFType = parseGGUFOutputType(Type);
  if (!GGUFType || (Type.getNumOccurrences() && Format != OutputFormat::GGUF)) {
    errs() << Tool << ": error: --type=" << Type
           << (GGUFType ? " applies to --format=gguf only"
                        : " is not one of auto, f32, f16, bf16, q8_0")
           << "\n";
    return ExitUsageError;
  }
  Expected<std::unique_ptr<Vindex>> V = Vindex::open(Input);
  if (!V)
    return exitWith(Tool, V.takeError());
  if (Error E = Format == OutputFormat::GGUF
                    ? compileGGUF(**V, Output, *GGUFType, Common.Jobs)
                    : compileSafetensors(**V, Output, Common.Jobs))
    return exitWith(Tool, std::move(E));
  if (!Common.Depfile.empty())
    return exitWith(Tool, writeDepfile(Common.Depfile, Output, (*V)->files()));
  return ExitSuccess;
}
