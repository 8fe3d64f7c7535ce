//===- bandwidth.cpp - Memory read bandwidth, printed as JSON -------------===//
//
// vindex-bench-bandwidth [--mib N] [--jobs 1,2] [--reps R]
//
// Reads a buffer of N MiB (default 2048, far larger than the caches) with
// each thread count, the threads splitting it into equal slices, and prints
// the best GB/s over --reps passes. It is the bound a decoder that reads
// every weight once per token can reach (bench/engine-vs-llamacpp.py).
//
//===----------------------------------------------------------------------===//
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using namespace llvm;

static cl::opt<unsigned> MiB("mib", cl::init(2048),
                             cl::desc("Buffer size in MiB"));
static cl::list<unsigned> ThreadCounts("jobs", cl::CommaSeparated,
                                       cl::desc("Thread counts (default 1,2)"));
static cl::opt<unsigned> Reps("reps", cl::init(5), cl::desc("Passes"));

/// Eight independent 16-byte accumulators, so the loop is bound by the
/// loads; the result is used so nothing is elided.
typedef uint64_t Vec __attribute__((vector_size(16)));
static uint64_t readSlice(const uint64_t *P, size_t N) {
  Vec A[8] = {};
  size_t I = 0;
  for (; I + 16 <= N; I += 16)
    for (int J = 0; J < 8; ++J) {
      Vec V;
      std::memcpy(&V, P + I + 2 * J, sizeof(V));
      A[J] ^= V;
    }
  uint64_t R = 0;
  for (; I < N; ++I)
    R ^= P[I];
  for (const Vec &V : A)
    R ^= V[0] ^ V[1];
  return R;
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "memory read bandwidth\n");
  size_t Words = size_t(MiB) << 17;
  std::unique_ptr<uint64_t[]> Buf(new uint64_t[Words]);
  for (size_t I = 0; I < Words; ++I) // touch every page (and vary the data)
    Buf[I] = I * 0x9E3779B97F4A7C15ull;
  std::vector<unsigned> Threads(ThreadCounts.begin(), ThreadCounts.end());
  if (Threads.empty())
    Threads = {1, 2};
  json::Object Result;
  uint64_t Sink = 0;
  for (unsigned T : Threads) {
    double Best = 1e30;
    for (unsigned R = 0; R < Reps; ++R) {
      std::vector<uint64_t> Out(T);
      std::vector<std::thread> Pool;
      auto Start = std::chrono::steady_clock::now();
      size_t Slice = Words / T;
      for (unsigned I = 0; I < T; ++I)
        Pool.emplace_back([&, I] {
          size_t End = I + 1 == T ? Words : (I + 1) * Slice;
          Out[I] = readSlice(Buf.get() + I * Slice, End - I * Slice);
        });
      for (std::thread &Th : Pool)
        Th.join();
      Best = std::min(Best, std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - Start)
                                .count());
      for (uint64_t V : Out)
        Sink ^= V;
    }
    Result[std::to_string(T)] = double(Words * 8) / Best / 1e9;
  }
  outs() << json::Value(json::Object{{"benchmark", "bandwidth"},
                                     {"mib", MiB.getValue()},
                                     {"read_gb_per_s", std::move(Result)},
                                     {"sink", int64_t(Sink & 1)}})
         << "\n";
  return 0;
}
