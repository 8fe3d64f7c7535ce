//===- gemm.cpp - The prompt kernels' multiply-add rate -------------------===//
//
// vindex-bench-gemm [--tokens 64,512] [--kernels PATHS] [--reps N]
//
// matmulNT (bf16 rows [N, K], as the mapped projections) and matmulNN (bf16
// feature-major rows [F, d], the down projection) on the Gemma-3-4B shapes
// against T tokens, one thread, and the multiply-adds per second of wall
// and of CPU time (best of --reps): the prompt path's kernels alone, which
// the load of a shared machine disturbs less than a whole forward pass.
// JSON out.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Kernels.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstring>
#include <ctime>
#include <random>

using namespace llvm;
using namespace vindex;

static cl::list<unsigned> Tokens("tokens", cl::CommaSeparated,
                                 cl::desc("Token counts (default 64,512)"));
static cl::list<std::string>
    Kernels("kernels", cl::CommaSeparated,
            cl::desc("Kernel paths (default: the active one)"));
static cl::opt<unsigned> Reps("reps", cl::init(3), cl::desc("Runs per case"));

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "prompt-kernel benchmark\n");
  std::vector<unsigned> Ts(Tokens.begin(), Tokens.end());
  if (Ts.empty())
    Ts = {64, 512};
  std::vector<KernelPath> Paths;
  for (const std::string &Name : Kernels) {
    std::optional<KernelPath> P = parseKernelPath(Name);
    if (!P || !kernelPathSupported(*P)) {
      errs() << "vindex-bench-gemm: --kernels " << Name
             << ": unknown or unsupported\n";
      return 1;
    }
    Paths.push_back(*P);
  }
  if (Paths.empty())
    Paths = {activeKernelPath()};
  struct Shape {
    const char *Name;
    size_t Rows, Cols;
    bool Down;
  };
  // Gemma 3 4B: q (2048 x 2560), gate/up (10240 x 2560), down (10240 x
  // 2560 feature-major).
  const Shape Shapes[] = {{"q", 2048, 2560, false},
                          {"gate", 10240, 2560, false},
                          {"down", 10240, 2560, true}};
  std::mt19937 Rng(1);
  std::normal_distribution<float> D(0.0f, 1.0f);
  json::Array Results;
  for (const Shape &S : Shapes) {
    std::vector<uint16_t> W(S.Rows * S.Cols);
    for (uint16_t &B : W) {
      float F = D(Rng);
      uint32_t Bits;
      std::memcpy(&Bits, &F, 4);
      B = uint16_t(Bits >> 16);
    }
    WeightMatrix M{W.data(), DType::BF16, S.Rows, S.Cols};
    for (unsigned T : Ts) {
      size_t In = S.Down ? S.Rows : S.Cols, Out = S.Down ? S.Cols : S.Rows;
      std::vector<float> X(T * In), Y(T * Out);
      for (float &F : X)
        F = D(Rng);
      for (KernelPath P : Paths) {
        setKernelPath(P);
        double Best = 1e30, BestCPU = 1e30;
        for (unsigned R = 0; R < Reps; ++R) {
          std::fill(Y.begin(), Y.end(), 0.0f);
          auto Start = std::chrono::steady_clock::now();
          std::clock_t CPU0 = std::clock();
          if (S.Down)
            matmulNN(X.data(), T, In, M, 0, S.Rows, 0, S.Cols, Y.data(), Out);
          else
            matmulNT(X.data(), T, In, M, 0, S.Rows, Y.data(), Out);
          Best = std::min(Best, std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - Start)
                                    .count());
          BestCPU = std::min(BestCPU,
                             double(std::clock() - CPU0) / CLOCKS_PER_SEC);
        }
        double MACs = double(T) * S.Rows * S.Cols;
        Results.push_back(json::Object{{"matrix", S.Name},
                                       {"tokens", T},
                                       {"kernels", kernelPathName(P)},
                                       {"gmac_per_s", MACs / Best / 1e9},
                                       {"gmac_per_cpu_s", MACs / BestCPU / 1e9}});
      }
    }
  }
  outs() << formatv("{0:2}", json::Value(json::Object{
                                 {"benchmark", "gemm"},
                                 {"results", std::move(Results)}}))
         << "\n";
  return 0;
}
