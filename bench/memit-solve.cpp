//===- memit-solve.cpp - MODE memit's closed-form solve, timed, as JSON ---===//
//
// vindex-bench-memit-solve [--features F] [--keys N] [--dim D] [--jobs J]
//                          [--reps R] [--seed S] [--moments] [--f32-keys]
//
// One call of solveUpdate (lib/Edit/Solve.cpp), the update MODE memit
// solves at every edit layer of every round: Δ = R Kᵀ (λ C + K Kᵀ)⁻¹ with
// F features, N keys and a hidden size D. C is a pseudo-random symmetric
// positive definite matrix (Gram matrix of 256 random columns, over 256,
// plus the identity), K and R pseudo-random, all from a fixed seed, so two
// builds solve the same problem. Prints the best of --reps calls in CPU
// and wall seconds and hashes of Δ's bytes, in double and rounded to f32,
// as JSON: builds that compute the same operations in the same order
// print the same hashes (bench/memit-solve.py runs two builds side by
// side; --dump writes Δ for a closer look).
//
// With --moments it times accumulateKeyMoments (lib/Edit/KeyStats.cpp)
// instead: E[k kᵀ]'s sums over N positions' keys of F features (floats),
// which MODE memit adds up for its guard texts at every edit layer of
// every grant; N is then the positions.
//
// The defaults are link 7 of the 10 x 100 chain on tiny-llama
// (docs/edit-measurements.md, "Measured as chains of runs"): F = 2800 after the
// appended features, about 8,000 keys (the held facts' contexts), D = 96.
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Memit.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <chrono>
#include <ctime>
#include <optional>

using namespace llvm;
using namespace vindex;
using vindex::edit::accumulateKeyMoments;
using vindex::edit::solveUpdate;

static cl::opt<unsigned> Features("features", cl::init(2800),
                                  cl::desc("F, the layer's FFN width"));
static cl::opt<unsigned> Keys("keys", cl::init(8000),
                              cl::desc("N, keys (rows of K and R)"));
static cl::opt<unsigned> Dim("dim", cl::init(96),
                             cl::desc("D, the hidden size"));
static cl::opt<unsigned> Jobs("jobs", cl::init(1), cl::desc("Threads"));
static cl::opt<unsigned> Reps("reps", cl::init(3), cl::desc("Calls timed"));
static cl::opt<uint64_t> Seed("seed", cl::init(1),
                              cl::desc("Seed of the pseudo-random inputs"));
static cl::opt<bool>
    Moments("moments",
            cl::desc("Time the key moments of --keys positions instead"));
static cl::opt<bool>
    F32Keys("f32-keys",
            cl::desc("Keys of f32 values, as the engine gives them (K Kᵀ "
                     "then runs its fused tiles: the same bits)"));
static cl::opt<std::string> Dump("dump",
                                 cl::desc("Write Δ there, F x D "
                                          "doubles, little-endian"),
                                 cl::value_desc("file"));

namespace {
/// splitmix64: the same numbers on every build and machine.
struct Stream {
  uint64_t State;
  double next() { // uniform in [-1, 1)
    uint64_t Z = (State += 0x9e3779b97f4a7c15ull);
    Z = (Z ^ (Z >> 30)) * 0xbf58476d1ce4e5b9ull;
    Z = (Z ^ (Z >> 27)) * 0x94d049bb133111ebull;
    Z ^= Z >> 31;
    return double(Z >> 11) * 0x1.0p-52 - 1.0;
  }
};

/// A symmetric positive definite F x F matrix: G Gᵀ / M + I over M = 256
/// random columns, summed in a fixed order (the solve's time does not
/// depend on its values).
std::vector<double> randomCovariance(size_t F, Stream &S) {
  size_t M = 256;
  std::vector<double> G(F * M);
  for (double &X : G)
    X = S.next();
  std::vector<double> C(F * F);
  for (size_t I = 0; I < F; ++I)
    for (size_t J = 0; J <= I; ++J) {
      double Sum = 0;
      for (size_t K = 0; K < M; ++K)
        Sum += G[I * M + K] * G[J * M + K];
      C[I * F + J] = C[J * F + I] = Sum / double(M) + (I == J ? 1.0 : 0.0);
    }
  return C;
}
template <typename T> uint64_t hashBytes(const std::vector<T> &V) {
  return xxh3_64bits(ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(V.data()), V.size() * sizeof(T)));
}

/// The best wall and CPU seconds over the calls timed.
struct BestTimes {
  double Wall = 1e30, Cpu = 1e30;
  template <typename Fn> void time(Fn Call) {
    auto WallStart = std::chrono::steady_clock::now();
    std::clock_t CpuStart = std::clock();
    Call();
    Cpu = std::min(Cpu, double(std::clock() - CpuStart) / CLOCKS_PER_SEC);
    Wall = std::min(Wall, std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - WallStart)
                              .count());
  }
};

/// --moments: the best of Reps calls of accumulateKeyMoments over
/// Positions keys into a zero F x F matrix, as JSON with a hash of the
/// upper triangle's bytes (the lower one is not the result).
int timeMoments(size_t F, size_t Positions, Stream &S) {
  std::vector<float> Keys(Positions * F);
  for (float &V : Keys)
    V = float(S.next());
  std::optional<DefaultThreadPool> Pool;
  if (Jobs > 1)
    Pool.emplace(hardware_concurrency(Jobs));
  BestTimes Best;
  std::vector<double> Upper;
  for (unsigned Rep = 0; Rep < Reps; ++Rep) {
    std::vector<double> C(F * F, 0.0);
    Best.time(
        [&] { accumulateKeyMoments(Keys, F, C, Pool ? &*Pool : nullptr); });
    Upper.clear();
    for (size_t I = 0; I < F; ++I)
      Upper.insert(Upper.end(), C.begin() + I * F + I, C.begin() + (I + 1) * F);
  }
  json::Object Out{
      {"features", int64_t(F)},
      {"positions", int64_t(Positions)},
      {"jobs", int64_t(Jobs)},
      {"seed", int64_t(Seed)},
      {"reps", int64_t(Reps)},
      {"moments_wall_s", Best.Wall},
      {"moments_cpu_s", Best.Cpu},
      {"moments_xxh3", formatv("{0:x16}", hashBytes(Upper)).str()}};
  outs() << formatv("{0:2}", json::Value(std::move(Out))) << "\n";
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "MODE memit solve benchmark\n");
  size_t F = Features, N = Keys, D = Dim;
  if (F == 0 || N == 0 || D == 0 || Reps == 0) {
    WithColor::error(errs(), "vindex-bench-memit-solve")
        << "--features, --keys, --dim and --reps must be at least 1\n";
    return 1;
  }
  Stream S{Seed};
  if (Moments)
    return timeMoments(F, N, S);
  std::vector<double> C = randomCovariance(F, S);
  std::vector<double> K(N * F), R(N * D);
  for (double &V : K)
    V = F32Keys ? double(float(S.next())) : S.next();
  for (double &V : R)
    V = S.next();
  BestTimes Best;
  uint64_t Hash = 0, HashF32 = 0;
  std::vector<double> Last;
  for (unsigned Rep = 0; Rep < Reps; ++Rep) {
    Expected<std::vector<double>> Delta = std::vector<double>();
    Best.time(
        [&] { Delta = solveUpdate(C, /*Lambda=*/10.0, K, R, F, D, Jobs); });
    if (!Delta) {
      WithColor::error(errs(), "vindex-bench-memit-solve")
          << toString(Delta.takeError()) << "\n";
      return 1;
    }
    Hash = hashBytes(*Delta);
    std::vector<float> Rounded(Delta->begin(), Delta->end());
    HashF32 = hashBytes(Rounded);
    Last = std::move(*Delta);
  }
  if (!Dump.empty()) {
    std::error_code EC;
    raw_fd_ostream OS(Dump, EC);
    if (EC) {
      WithColor::error(errs(), "vindex-bench-memit-solve")
          << Dump << ": " << EC.message() << "\n";
      return 1;
    }
    OS.write(reinterpret_cast<const char *>(Last.data()),
             Last.size() * sizeof(double));
  }
  json::Object Out{{"features", int64_t(F)},
                   {"keys", int64_t(N)},
                   {"dim", int64_t(D)},
                   {"jobs", int64_t(Jobs)},
                   {"seed", int64_t(Seed)},
                   {"reps", int64_t(Reps)},
                   {"f32_keys", bool(F32Keys)},
                   {"solve_wall_s", Best.Wall},
                   {"solve_cpu_s", Best.Cpu},
                   {"delta_xxh3", formatv("{0:x16}", Hash).str()},
                   {"delta_f32_xxh3", formatv("{0:x16}", HashF32).str()}};
  outs() << formatv("{0:2}", json::Value(std::move(Out))) << "\n";
  return 0;
}
