//===- forward.cpp - Forward-pass throughput, printed as JSON -------------===//
//
// vindex-bench-forward IN.vindex [--jobs 1,2] [--reps N] [--kernels PATHS]
//
// Prompt processing of 64 and 512 tokens (tokens/s over the whole prompt,
// as llama-bench's pp) and generation of 128 tokens after a one-token
// prompt (tokens/s, as llama-bench's tg), best of --reps runs, for each
// kernel path (default: the one chosen at start, see Kernels.h) and thread
// count. Token ids are a fixed pseudo-random sequence.
//
// Generation reads every weight once per token, so its bound is the
// measured read bandwidth (a streaming sum over a 512 MiB buffer with the
// same thread count) over the weight bytes: each tg figure is reported
// with that bound and its fraction of it, and with tokens per second of
// process CPU time (all threads), which a loaded machine disturbs less than
// the wall clock.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("IN.vindex"));
static cl::list<unsigned>
    ThreadCounts("jobs", cl::CommaSeparated,
                 cl::desc("Thread counts to measure (default 1,2)"));
static cl::opt<unsigned> Reps("reps", cl::init(3), cl::desc("Runs per case"));
static cl::list<unsigned>
    PromptSizes("prompt", cl::CommaSeparated,
                cl::desc("Prompt lengths (default 64,512)"));
static cl::opt<unsigned> GenTokens("gen", cl::init(128),
                                   cl::desc("Tokens generated"));

static cl::list<std::string>
    KernelPaths("kernels", cl::CommaSeparated,
                cl::desc("Kernel paths to measure (avx2, avx512, avx512bf16; "
                         "default: the active one)"));
static cl::opt<unsigned>
    WalkK("walk", cl::init(0),
          cl::desc("Run the FFN as the walk with this many features (0: "
                   "dense)"));

static double seconds(std::chrono::steady_clock::time_point Since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Since)
      .count();
}

/// Bytes of weights one generated token reads: every projection of every
/// layer and the LM head; with the walk (K > 0), every gate row but only K
/// rows of up and down per layer.
static uint64_t weightBytesPerToken(const Model &M, size_t K) {
  auto Bytes = [](const WeightMatrix &W) {
    return uint64_t(W.Rows) * W.Cols * dtypeSize(W.Type);
  };
  uint64_t Sum = Bytes(M.lmHead());
  for (size_t L = 0; L < M.numLayers(); ++L) {
    const LayerWeights &W = M.layer(L);
    for (const WeightMatrix *X : {&W.Q, &W.K, &W.V, &W.O, &W.Gate})
      Sum += Bytes(*X);
    for (const WeightMatrix *X : {&W.Up, &W.Down})
      Sum += K == 0 || K >= X->Rows ? Bytes(*X) : Bytes(*X) / X->Rows * K;
  }
  return Sum;
}

/// Read bandwidth in bytes/s: Threads threads each summing their share of
/// a 512 MiB buffer (written first, so that it is resident), best of Reps.
static double readBandwidth(unsigned Threads, unsigned Reps) {
  static std::vector<uint64_t> Buffer(size_t(512) << 17, 1);
  std::atomic<uint64_t> Sink{0};
  double Best = 1e30;
  for (unsigned R = 0; R < Reps; ++R) {
    auto Start = std::chrono::steady_clock::now();
    std::vector<std::thread> Workers;
    size_t Share = Buffer.size() / Threads;
    for (unsigned T = 0; T < Threads; ++T)
      Workers.emplace_back([&, T] {
        const uint64_t *P = Buffer.data() + T * Share;
        uint64_t S0 = 0, S1 = 0, S2 = 0, S3 = 0;
        for (size_t I = 0; I + 4 <= Share; I += 4) {
          S0 += P[I];
          S1 += P[I + 1];
          S2 += P[I + 2];
          S3 += P[I + 3];
        }
        Sink += S0 + S1 + S2 + S3;
      });
    for (std::thread &W : Workers)
      W.join();
    Best = std::min(Best, seconds(Start));
  }
  if (Sink.load() != uint64_t(Reps) * (Buffer.size() / Threads * Threads))
    return 0; // the sum is checked so that the loop is not optimised away
  return double(Buffer.size() * sizeof(uint64_t)) / Best;
}

static ExitOnError ExitOnErr("vindex-bench-forward: error: ");

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "forward-pass benchmark\n");
  std::unique_ptr<Vindex> V = ExitOnErr(Vindex::open(Input));
  std::unique_ptr<Model> M = ExitOnErr(Model::load(*V));
  std::vector<unsigned> Threads(ThreadCounts.begin(), ThreadCounts.end());
  if (Threads.empty())
    Threads = {1, 2};
  std::vector<unsigned> Prompts(PromptSizes.begin(), PromptSizes.end());
  if (Prompts.empty())
    Prompts = {64, 512};
  size_t Vocab = M->config().VocabSize;
  std::vector<int32_t> Ids(*std::max_element(Prompts.begin(), Prompts.end()));
  uint64_t State = 12345;
  for (int32_t &Id : Ids) {
    State = State * 6364136223846793005ull + 1442695040888963407ull;
    Id = int32_t(4 + (State >> 33) % (Vocab - 4));
  }
  std::vector<KernelPath> Paths;
  for (const std::string &Name : KernelPaths) {
    std::optional<KernelPath> P = parseKernelPath(Name);
    if (!P || !kernelPathSupported(*P))
      ExitOnErr(
          createStringError("--kernels: " + Name +
                            (P ? ": this CPU or build cannot run it"
                               : ": unknown path (avx2, avx512, avx512bf16)")));
    Paths.push_back(*P);
  }
  if (Paths.empty())
    Paths = {activeKernelPath()};
  uint64_t WeightBytes = weightBytesPerToken(*M, WalkK);
  json::Object Bandwidth;
  std::map<unsigned, double> BytesPerSecond;
  for (unsigned T : Threads) {
    BytesPerSecond[T] = readBandwidth(T, Reps);
    Bandwidth[std::to_string(T)] = BytesPerSecond[T] / 1e9;
  }
  ForwardOptions Opts;
  Opts.WalkK = WalkK;
  json::Array Results;
  for (KernelPath Path : Paths)
    for (unsigned T : Threads) {
      setKernelPath(Path);
      Session S(*M, T);
      // One untimed token first, as llama-bench's warm-up run: it reads
      // every weight, so the first timed prompt does not pay for faulting
      // in the mapped file (about 2 s per GiB on a fresh VM page).
      S.reset();
      S.run({Ids[0]}, Opts);
      for (unsigned P : Prompts) {
        double Best = 1e30, BestCPU = 1e30;
        for (unsigned R = 0; R < Reps; ++R) {
          S.reset();
          auto Start = std::chrono::steady_clock::now();
          std::clock_t CPU0 = std::clock();
          S.run(ArrayRef(Ids).take_front(P), Opts);
          Best = std::min(Best, seconds(Start));
          BestCPU =
              std::min(BestCPU, double(std::clock() - CPU0) / CLOCKS_PER_SEC);
        }
        Results.push_back(json::Object{{"test", "pp" + std::to_string(P)},
                                       {"kernels", kernelPathName(Path)},
                                       {"threads", T},
                                       {"tokens_per_s", P / Best},
                                       {"tokens_per_cpu_s", P / BestCPU}});
      }
      double Best = 1e30, BestCPU = 1e30;
      for (unsigned R = 0; R < Reps; ++R) {
        S.reset();
        std::clock_t CPU0 = 0;
        std::vector<float> Logits = S.run({Ids[0]}, Opts).Logits;
        auto Start = std::chrono::steady_clock::now();
        CPU0 = std::clock();
        for (unsigned G = 0; G < GenTokens; ++G)
          Logits = S.run({int32_t(argmax(Logits))}, Opts).Logits;
        Best = std::min(Best, seconds(Start));
        BestCPU =
            std::min(BestCPU, double(std::clock() - CPU0) / CLOCKS_PER_SEC);
      }
      double Bound = BytesPerSecond[T] / double(WeightBytes);
      Results.push_back(
          json::Object{{"test", "tg" + std::to_string(GenTokens)},
                       {"kernels", kernelPathName(Path)},
                       {"threads", T},
                       {"tokens_per_s", GenTokens / Best},
                       {"tokens_per_cpu_s", GenTokens / BestCPU},
                       {"bandwidth_bound_tokens_per_s", Bound},
                       {"fraction_of_bound", GenTokens / Best / Bound}});
    }
  json::Object Out{{"benchmark", "forward"},
                   {"vindex", Input.getValue()},
                   {"architecture", M->config().Architecture},
                   {"layers", M->config().NumLayers},
                   {"walk_k", WalkK.getValue()},
                   {"weight_bytes_per_token", WeightBytes},
                   {"read_bandwidth_gb_per_s", std::move(Bandwidth)},
                   {"results", std::move(Results)}};
  outs() << json::Value(std::move(Out)) << "\n";
  return 0;
}
