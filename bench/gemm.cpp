//===- gemm.cpp - The prompt kernels' multiply-add rate -------------------===//
//
// vindex-bench-gemm [--tokens 64,512] [--kernels PATHS] [--reps N]
//                   [--copies N]
//
// matmulNT (bf16 rows [N, K], as the mapped projections) and matmulNN (bf16
// feature-major rows [F, d], the down projection) on the Gemma-3-4B shapes
// against T tokens, one thread, and the multiply-adds per second of wall
// and of CPU time (best of --reps): the prompt path's kernels alone, which
// the load of a shared machine disturbs less than a whole forward pass.
// Beside them, the core's peak multiply-add rates ("peak_gmac_per_s"):
// 12 independent f32 FMA chains in 16-lane registers, and where the CPU
// has AVX512-BF16, 12 `vdpbf16ps` chains (two bf16 products per lane):
// the ceilings of an exact f32 GEMM and of one that rounds its
// activations to bf16, as llama.cpp's bf16 product does. JSON out.
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

#if defined(__x86_64__)
#include <immintrin.h>

// Twelve chains: more than the FMA latency times the FMA ports, so the
// loop runs at the issue rate. The empty asm keeps every chain live.
#define VINDEX_CHAINS(X)                                                       \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/// Seconds for Steps steps of 12 FMAs (16 f32 lanes each).
__attribute__((target("avx512f"))) static double fmaLoop(long Steps) {
#define DECL(I) __m512 A##I = _mm512_set1_ps(1.0f + I * 1e-7f);
  VINDEX_CHAINS(DECL)
#undef DECL
  __m512 X = _mm512_set1_ps(0.9999999f), Y = _mm512_set1_ps(1e-8f);
  auto Start = std::chrono::steady_clock::now();
  for (long N = 0; N < Steps; ++N) {
#define STEP(I) A##I = _mm512_fmadd_ps(A##I, X, Y);
    VINDEX_CHAINS(STEP)
#undef STEP
    asm volatile(""
                 : "+v"(A0), "+v"(A1), "+v"(A2), "+v"(A3), "+v"(A4), "+v"(A5),
                   "+v"(A6), "+v"(A7), "+v"(A8), "+v"(A9), "+v"(A10),
                   "+v"(A11));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
      .count();
}

/// Seconds for Steps steps of 12 `vdpbf16ps` (32 bf16 products each).
__attribute__((target("avx512f,avx512bf16"))) static double
dpbf16Loop(long Steps) {
#define DECL(I) __m512 C##I = _mm512_setzero_ps();
  VINDEX_CHAINS(DECL)
#undef DECL
  __m512bh P = (__m512bh)_mm512_set1_epi16(0x3f80);
  __m512bh Q = (__m512bh)_mm512_set1_epi16(0x3400);
  auto Start = std::chrono::steady_clock::now();
  for (long N = 0; N < Steps; ++N) {
#define STEP(I) C##I = _mm512_dpbf16_ps(C##I, P, Q);
    VINDEX_CHAINS(STEP)
#undef STEP
    asm volatile(""
                 : "+v"(C0), "+v"(C1), "+v"(C2), "+v"(C3), "+v"(C4), "+v"(C5),
                   "+v"(C6), "+v"(C7), "+v"(C8), "+v"(C9), "+v"(C10),
                   "+v"(C11));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
      .count();
}
#undef VINDEX_CHAINS
#endif

/// The peak multiply-add rates this core reaches (best of Reps runs).
static json::Object peakRates(unsigned Reps) {
  json::Object Out;
#if defined(__x86_64__)
  constexpr long Steps = 50'000'000;
  auto Best = [&](double (*Loop)(long)) {
    double S = 1e30;
    for (unsigned R = 0; R < Reps; ++R)
      S = std::min(S, Loop(Steps));
    return S;
  };
  if (kernelPathSupported(KernelPath::AVX512))
    Out["f32_fma_zmm"] = Steps * 12.0 * 16 / Best(fmaLoop) / 1e9;
  if (kernelPathSupported(KernelPath::AVX512BF16))
    Out["bf16_dpbf16ps_zmm"] = Steps * 12.0 * 32 / Best(dpbf16Loop) / 1e9;
#endif
  return Out;
}

static cl::list<unsigned> Tokens("tokens", cl::CommaSeparated,
                                 cl::desc("Token counts (default 64,512)"));
static cl::list<std::string>
    Kernels("kernels", cl::CommaSeparated,
            cl::desc("Kernel paths (default: the active one)"));
static cl::opt<unsigned> Reps("reps", cl::init(3), cl::desc("Runs per case"));
static cl::opt<unsigned>
    Copies("copies", cl::init(1),
           cl::desc("Distinct copies of each matrix, run one after another "
                    "(enough to outgrow the caches, e.g. 24, measures the "
                    "kernels streaming their weights from memory, as "
                    "generation does: see gb_per_s)"));

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
  const unsigned NCopies = std::max(1u, unsigned(Copies));
  for (const Shape &S : Shapes) {
    size_t Elems = S.Rows * S.Cols;
    std::vector<uint16_t> W(Elems * NCopies);
    for (size_t I = 0; I < Elems; ++I) {
      float F = D(Rng);
      uint32_t Bits;
      std::memcpy(&Bits, &F, 4);
      W[I] = uint16_t(Bits >> 16);
    }
    for (unsigned C = 1; C < NCopies; ++C)
      std::memcpy(W.data() + C * Elems, W.data(), Elems * sizeof(uint16_t));
    for (unsigned T : Ts) {
      size_t In = S.Down ? S.Rows : S.Cols, Out = S.Down ? S.Cols : S.Rows;
      std::vector<float> X(T * In), Y(T * Out);
      for (float &F : X)
        F = D(Rng);
      for (KernelPath P : Paths) {
        setKernelPath(P);
        double Best = 1e30, BestCPU = 1e30;
        for (unsigned R = 0; R < Reps; ++R) {
          // Later copies of the down projection add to Y: the time is the
          // same.
          std::fill(Y.begin(), Y.end(), 0.0f);
          auto Start = std::chrono::steady_clock::now();
          std::clock_t CPU0 = std::clock();
          for (unsigned C = 0; C < NCopies; ++C) {
            WeightMatrix M{W.data() + C * Elems, DType::BF16, S.Rows, S.Cols};
            if (S.Down)
              matmulNN(X.data(), T, In, M, 0, S.Rows, 0, S.Cols, Y.data(),
                       Out);
            else
              matmulNT(X.data(), T, In, M, 0, S.Rows, Y.data(), Out);
          }
          Best = std::min(Best, std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - Start)
                                    .count());
          BestCPU =
              std::min(BestCPU, double(std::clock() - CPU0) / CLOCKS_PER_SEC);
        }
        double MACs = double(T) * S.Rows * S.Cols * NCopies;
        double Bytes = double(Elems) * NCopies * sizeof(uint16_t);
        Results.push_back(
            json::Object{{"matrix", S.Name},
                         {"tokens", T},
                         {"kernels", kernelPathName(P)},
                         {"copies", NCopies},
                         {"gmac_per_s", MACs / Best / 1e9},
                         {"gmac_per_cpu_s", MACs / BestCPU / 1e9},
                         {"gb_per_s", Bytes / Best / 1e9}});
      }
    }
  }
  outs() << formatv("{0:2}", json::Value(json::Object{
                                 {"benchmark", "gemm"},
                                 {"peak_gmac_per_s", peakRates(Reps)},
                                 {"results", std::move(Results)}}))
         << "\n";
  return 0;
}
