//===- walk.cpp - How many features the walk FFN needs, as JSON -----------===//
//
// vindex-bench-walk IN.vindex PROMPTS.txt
//
// For K in {F/64, F/16, F/8, F/4, F/2, F}: over every prompt (one per line), the
// fraction whose top-1 next token through the walk FFN (per layer only the K
// features with the highest gate scores fire) equals the dense model's, the
// mean KL(dense || walk) of the next-token distributions, and the largest
// logit difference (0 at K = F: the walk with every feature is the dense
// FFN, exactly).
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("IN.vindex"));
static cl::opt<std::string> Prompts(cl::Positional, cl::Required,
                                    cl::desc("PROMPTS.txt"));

static std::vector<double> softmax(ArrayRef<float> L) {
  double Max = *std::max_element(L.begin(), L.end()), Sum = 0;
  std::vector<double> P(L.size());
  for (size_t I = 0; I < L.size(); ++I)
    Sum += P[I] = std::exp(L[I] - Max);
  for (double &X : P)
    X /= Sum;
  return P;
}

static ExitOnError ExitOnErr("vindex-bench-walk: error: ");

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "walk FFN benchmark\n");
  std::unique_ptr<Vindex> V = ExitOnErr(Vindex::open(Input));
  std::unique_ptr<Model> M = ExitOnErr(Model::load(*V));
  Tokenizer Tok = ExitOnErr(Tokenizer::fromFile(V->path("tokenizer.json")));
  auto Buf = MemoryBuffer::getFile(Prompts);
  if (!Buf)
    ExitOnErr(createFileError(Prompts, Buf.getError()));
  SmallVector<StringRef> Lines;
  (*Buf)->getBuffer().split(Lines, '\n', -1, false);

  size_t F = M->config().IntermediateSize;
  Session S(*M, 1);
  std::vector<std::vector<float>> Dense;
  std::vector<std::vector<int32_t>> Ids;
  for (StringRef L : Lines) {
    Ids.push_back(Tok.encode(L));
    S.reset();
    Dense.push_back(S.run(Ids.back()).Logits);
  }
  json::Array Rows;
  for (size_t Div : {64, 16, 8, 4, 2, 1}) {
    size_t K = std::max<size_t>(1, F / Div);
    ForwardOptions Opts;
    Opts.WalkK = K;
    size_t Agree = 0;
    double KL = 0, MaxDiff = 0;
    for (size_t P = 0; P < Ids.size(); ++P) {
      S.reset();
      std::vector<float> W = S.run(Ids[P], Opts).Logits;
      Agree += argmax(W) == argmax(Dense[P]);
      std::vector<double> PD = softmax(Dense[P]), PW = softmax(W);
      for (size_t I = 0; I < PD.size(); ++I) {
        if (PD[I] > 0)
          KL += PD[I] * (std::log(PD[I]) - std::log(std::max(PW[I], 1e-300)));
        MaxDiff = std::max(MaxDiff, double(std::fabs(W[I] - Dense[P][I])));
      }
    }
    Rows.push_back(json::Object{{"k", int64_t(K)},
                                {"fraction_of_features", double(K) / F},
                                {"top1_agreement", double(Agree) / Ids.size()},
                                {"mean_kl", KL / Ids.size()},
                                {"max_abs_logit_diff", MaxDiff}});
  }
  json::Object Out{{"benchmark", "walk"},
                   {"vindex", Input.getValue()},
                   {"features_per_layer", int64_t(F)},
                   {"prompts", int64_t(Ids.size())},
                   {"results", std::move(Rows)}};
  outs() << json::Value(std::move(Out)) << "\n";
  return 0;
}
