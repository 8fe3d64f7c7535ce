//===- larql-probe.cpp - Label the features of a V-index ------------------===//
//
// The labelling passes (output/input tokens, relations, entities, layer
// bands) arrive with their own issue; until then the tool teaches its
// command line and refuses to pretend.
//
//===----------------------------------------------------------------------===//
#include "vindex/Support/Error.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::desc("IN.vindex"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Output("o", cl::desc("Output V-index"),
                                   cl::value_desc("OUT.vindex"),
                                   cl::cat(toolOptions()));
static cl::opt<std::string> Facts("facts",
                                  cl::desc("Facts (entity, relation, "
                                           "target) as TSV"),
                                  cl::value_desc("FACTS.tsv"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Templates("templates",
                                      cl::desc("Prompt templates per relation"),
                                      cl::value_desc("TEMPLATES.json"),
                                      cl::cat(toolOptions()));
static cl::opt<unsigned> Jobs("jobs", cl::desc("Worker threads"), cl::init(0),
                              cl::cat(toolOptions()));

static const char *Overview = R"(larql-probe: label the features of a V-index

Labels every FFN feature with the tokens it reads and writes, the relations
and entities it carries, and the layer band (syntax, knowledge, output) it
belongs to, and writes labels.vfb into a new V-index.

Usage:
  larql-probe IN.vindex -o OUT.vindex [--facts FACTS.tsv]
              [--templates TEMPLATES.json] [--jobs N]

Status: the labelling passes are not implemented yet in this build.
)";

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  return exitWith("larql-probe",
                  makeError("probing is not implemented yet in this build "
                            "(see --help)"));
}
