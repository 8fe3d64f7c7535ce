//===- backward.cpp - MEMIT's offset objective, timed, printed as JSON ----===//
//
// vindex-bench-backward IN.vindex [--sequences N] [--tokens T] [--pieces P]
//                       [--residual R] [--reps N] [--separately]
//
// One evaluation of the offset objective that MODE memit's Adam steps on
// (lib/Edit/Memit.cpp): N teacher-forced sequences of T tokens (a fixed
// pseudo-random prompt and a target of --pieces pieces, the offset at the
// prompt's last position), the offset at residual R
// (default: MODE memit's default last edit layer's output, numLayers / 2 + 1),
// forward from R and back, in double. Prints the best of --reps evaluations
// in seconds, CPU and wall, and the objective's creation (which runs the
// sequences once whole), as JSON. --separately evaluates one objective per
// sequence (each reading every weight again) for comparison with the packed
// objective, which runs the N sequences as one tape.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Backward.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <ctime>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("IN.vindex"));
static cl::opt<unsigned> NumSequences("sequences", cl::init(5),
                                      cl::desc("Sequences per evaluation "
                                               "(MODE memit: 5)"));
static cl::opt<unsigned> NumTokens("tokens", cl::init(11),
                                   cl::desc("Tokens per sequence, target "
                                            "included"));
static cl::opt<unsigned> NumPieces("pieces", cl::init(1),
                                   cl::desc("Target pieces per sequence "
                                            "(MODE memit's units: 1)"));
static cl::opt<int> ResidualOpt("residual", cl::init(-1),
                                cl::desc("Residual of the offset (default "
                                         "numLayers / 2 + 1)"));
static cl::opt<unsigned> Reps("reps", cl::init(2), cl::desc("Evaluations"));
static cl::opt<bool>
    Separately("separately",
               cl::desc("One objective per sequence, evaluated in turn"));

static ExitOnError ExitOnErr("vindex-bench-backward: error: ");

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "offset-objective benchmark\n");
  std::unique_ptr<Vindex> V = ExitOnErr(Vindex::open(Input));
  std::unique_ptr<Model> M = ExitOnErr(Model::load(*V));
  const Model &Mod = *M;
  size_t Vocab = Mod.config().VocabSize, D = Mod.config().HiddenSize;
  size_t Residual =
      ResidualOpt >= 0 ? size_t(ResidualOpt) : Mod.numLayers() / 2 + 1;
  if (NumPieces == 0 || NumTokens < NumPieces + 2 || NumSequences == 0)
    ExitOnErr(createStringError("need --pieces >= 1, --tokens >= pieces + "
                                "2 and --sequences >= 1"));
  uint64_t State = 12345;
  auto NextId = [&] {
    State = State * 6364136223846793005ull + 1442695040888963407ull;
    return int32_t(4 + (State >> 33) % (Vocab - 4));
  };
  std::vector<LossSequence> Seqs;
  for (unsigned S = 0; S < NumSequences; ++S) {
    std::vector<int32_t> Prompt = {2}, Target;
    while (Prompt.size() + NumPieces < NumTokens)
      Prompt.push_back(NextId());
    for (unsigned I = 0; I < NumPieces; ++I)
      Target.push_back(NextId());
    LossSequence L = teacherForced(Prompt, Target);
    L.OffsetPositions = {Prompt.size() - 1};
    Seqs.push_back(std::move(L));
  }
  std::vector<OffsetObjective> Objectives;
  auto CreateStart = std::chrono::steady_clock::now();
  auto Add = [&](std::vector<LossSequence> Of) {
    Objectives.push_back(
        ExitOnErr(OffsetObjective::create(Mod, std::move(Of), Residual)));
  };
  if (Separately) {
    for (const LossSequence &S : Seqs)
      Add({S});
  } else {
    Add(Seqs);
  }
  double CreateWall = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - CreateStart)
                          .count();
  std::vector<double> Delta(D);
  for (size_t I = 0; I < D; ++I)
    Delta[I] = 0.01 * std::sin(double(I));
  double BestWall = 1e30, BestCpu = 1e30, Loss = 0;
  for (unsigned R = 0; R < Reps; ++R) {
    auto Wall = std::chrono::steady_clock::now();
    std::clock_t Cpu = std::clock();
    Loss = 0;
    for (const OffsetObjective &O : Objectives) {
      Loss += ExitOnErr(O.evaluate(Delta)).Loss;
    }
    BestCpu = std::min(BestCpu, double(std::clock() - Cpu) / CLOCKS_PER_SEC);
    BestWall = std::min(BestWall, std::chrono::duration<double>(
                                      std::chrono::steady_clock::now() - Wall)
                                      .count());
  }
  json::Object Out{{"model", std::string(Input)},
                   {"sequences", int64_t(NumSequences)},
                   {"tokens", int64_t(NumTokens)},
                   {"pieces", int64_t(NumPieces)},
                   {"residual", int64_t(Residual)},
                   {"separately", bool(Separately)},
                   {"loss", Loss},
                   {"create_wall_s", CreateWall},
                   {"evaluation_wall_s", BestWall},
                   {"evaluation_cpu_s", BestCpu}};
  outs() << formatv("{0:2}", json::Value(std::move(Out))) << "\n";
  return 0;
}
