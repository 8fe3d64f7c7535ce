//===- forward.cpp - Forward-pass throughput, printed as JSON -------------===//
//
// vindex-bench-forward IN.vindex [--jobs 1,2] [--reps N]
//
// Prompt processing of 64 and 512 tokens (tokens/s over the whole prompt,
// as llama-bench's pp) and generation of 128 tokens after a one-token
// prompt (tokens/s, as llama-bench's tg), best of --reps runs, for each
// thread count. Token ids are a fixed pseudo-random sequence.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

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

static double seconds(std::chrono::steady_clock::time_point Since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Since)
      .count();
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "forward-pass benchmark\n");
  auto V = Vindex::open(Input);
  if (!V) {
    WithColor::error(errs(), "bench") << toString(V.takeError()) << "\n";
    return 1;
  }
  auto M = Model::load(**V);
  if (!M) {
    WithColor::error(errs(), "bench") << toString(M.takeError()) << "\n";
    return 1;
  }
  std::vector<unsigned> Threads(ThreadCounts.begin(), ThreadCounts.end());
  if (Threads.empty())
    Threads = {1, 2};
  std::vector<unsigned> Prompts(PromptSizes.begin(), PromptSizes.end());
  if (Prompts.empty())
    Prompts = {64, 512};
  size_t Vocab = (*M)->config().VocabSize;
  std::vector<int32_t> Ids(*std::max_element(Prompts.begin(), Prompts.end()));
  uint64_t State = 12345;
  for (int32_t &Id : Ids) {
    State = State * 6364136223846793005ull + 1442695040888963407ull;
    Id = int32_t(4 + (State >> 33) % (Vocab - 4));
  }
  json::Array Results;
  for (unsigned T : Threads) {
    Session S(**M, T);
    for (unsigned P : Prompts) {
      double Best = 1e30;
      for (unsigned R = 0; R < Reps; ++R) {
        S.reset();
        auto Start = std::chrono::steady_clock::now();
        S.run(ArrayRef(Ids).take_front(P));
        Best = std::min(Best, seconds(Start));
      }
      Results.push_back(json::Object{{"test", "pp" + std::to_string(P)},
                                     {"threads", T},
                                     {"tokens_per_s", P / Best}});
    }
    double Best = 1e30;
    for (unsigned R = 0; R < Reps; ++R) {
      S.reset();
      std::vector<float> Logits = S.run({Ids[0]}).Logits;
      auto Start = std::chrono::steady_clock::now();
      for (unsigned G = 0; G < GenTokens; ++G)
        Logits = S.run({int32_t(argmax(Logits))}).Logits;
      Best = std::min(Best, seconds(Start));
    }
    Results.push_back(json::Object{{"test", "tg" + std::to_string(GenTokens)},
                                   {"threads", T},
                                   {"tokens_per_s", GenTokens / Best}});
  }
  json::Object Out{{"benchmark", "forward"},
                   {"vindex", Input.getValue()},
                   {"architecture", (*M)->config().Architecture},
                   {"layers", (*M)->config().NumLayers},
                   {"results", std::move(Results)}};
  outs() << json::Value(std::move(Out)) << "\n";
  return 0;
}
