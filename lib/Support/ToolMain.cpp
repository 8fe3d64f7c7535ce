//===- ToolMain.cpp -------------------------------------------------------===//
#include "vindex/Support/ToolMain.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

StringRef toolVersion() { return VINDEX_VERSION_STRING; }

static void printVersion(raw_ostream &OS) {
  OS << "Vindex " << toolVersion() << " (LLVM " << LLVM_VERSION_STRING << ")\n";
}

cl::OptionCategory &toolOptions() {
  static cl::OptionCategory Category("Options");
  return Category;
}

void parseToolCommandLine(int Argc, const char *const *Argv, StringRef Overview,
                          ArrayRef<StringRef> AlsoShow) {
  cl::SetVersionPrinter(printVersion);
  cl::HideUnrelatedOptions(toolOptions());
  StringMap<cl::Option *> &Registered = cl::getRegisteredOptions();
  for (StringRef Name : AlsoShow)
    if (cl::Option *O = Registered.lookup(Name)) {
      O->setHiddenFlag(cl::NotHidden);
      O->addCategory(toolOptions());
    }
  std::string Errors;
  raw_string_ostream ErrOS(Errors);
  if (!cl::ParseCommandLineOptions(Argc, Argv, Overview, &ErrOS)) {
    errs() << Errors;
    errs() << "Run '" << Argv[0] << " --help' for usage.\n";
    std::exit(ExitUsageError);
  }
}

unsigned FileToolOptions::threads() const {
  // As the engine and the pools count cores: those this process may run on.
  return Jobs ? Jobs : hardware_concurrency().compute_thread_count();
}

int exitWith(StringRef Tool, Error E) {
  if (!E)
    return ExitSuccess;
  printError(Tool, std::move(E));
  return ExitUserError;
}

} // namespace vindex
