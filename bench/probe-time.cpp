//===- probe-time.cpp - How fast larql-probe labels, and where the time goes
//
// vindex-bench-probe V.vindex [--facts F --templates T] [--layer N]
//                   [--prompts N] [--jobs J]
// Token labels for one layer (--layer) or all, then attribution of the
// first --prompts facts (relation labels, lens, bands), timed separately;
// prints one JSON object: features labelled per second, facts per second,
// the split of the attribution time, and peak RSS (getrusage) with the
// anonymous (non-file) part, since the weights are mapped files.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Probe/Probe.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <fstream>
#include <set>
#include <sys/resource.h>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("V.vindex"));
static cl::opt<std::string> FactsPath("facts", cl::desc("facts.tsv"));
static cl::opt<std::string> TemplatesPath("templates",
                                          cl::desc("templates.json"));
static cl::opt<int> Layer("layer", cl::init(-1),
                          cl::desc("Token-label this layer only (-1: all)"));
static cl::opt<bool> Tokens("tokens", cl::init(true),
                            cl::desc("Time the token labels (--tokens=false: "
                                     "attribution only)"));
static cl::opt<unsigned> Prompts("prompts", cl::init(0),
                                 cl::desc("Attribute the first N facts "
                                          "(0: all)"));
static cl::opt<unsigned> Jobs("jobs", cl::init(1), cl::desc("Threads"));
static cl::opt<bool> Quality(
    "quality",
    cl::desc("Also token-label during attribution and report, per "
             "relation, how often a labelled feature's output tokens hold a "
             "target of the relation, against all features"));

static double seconds(std::chrono::steady_clock::time_point T0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - T0)
      .count();
}

static double peakRSSMiB() {
  struct rusage U;
  getrusage(RUSAGE_SELF, &U);
  return U.ru_maxrss / 1024.0;
}

/// RssAnon of /proc/self/status (MiB): memory that is not mapped files.
static double anonRSSMiB() {
  std::ifstream S("/proc/self/status");
  std::string Line;
  while (std::getline(S, Line))
    if (StringRef(Line).starts_with("RssAnon:")) {
      unsigned long KiB = 0;
      StringRef(Line).drop_front(8).trim().consumeInteger(10, KiB);
      return KiB / 1024.0;
    }
  return 0;
}

static ExitOnError ExitOnErr("vindex-bench-probe: error: ");

static std::string readText(StringRef Path) {
  auto B = MemoryBuffer::getFile(Path);
  if (!B)
    ExitOnErr(createFileError(Path, B.getError()));
  return (*B)->getBuffer().str();
}

/// Per relation: the share of features labelled with it whose top output
/// tokens include the first token of one of its targets, and the same
/// share over all features (the chance level). A label that means
/// something writes the relation's answers.
static json::Object quality(const Labels &L, ArrayRef<Fact> Facts,
                            const Tokenizer &Tok) {
  std::vector<std::set<uint32_t>> Targets(L.Relations.size());
  for (const Fact &F : Facts) {
    uint32_t R = *L.relation(F.Relation);
    int32_t T =
        factTokens(Tok, L.Relations[R].prompt(F.Entity), F.Target).Target;
    if (T >= 0)
      Targets[R].insert(T);
  }
  json::Object Out;
  for (size_t R = 0; R < L.Relations.size(); ++R) {
    auto Writes = [&](const FeatureLabel &F) {
      for (const TokenScore &T : F.OutputTokens)
        if (Targets[R].count(T.Token))
          return true;
      return false;
    };
    // Chance: how often any feature writes one of these targets.
    size_t Labelled = 0, LabelledHits = 0, All = 0, AllHits = 0;
    for (const FeatureLabel &F : L.Features) {
      bool Hit = Writes(F);
      ++All;
      AllHits += Hit;
      for (const RelationLabel &RL : F.Relations)
        if (RL.Relation == R) {
          ++Labelled;
          LabelledHits += Hit;
        }
    }
    Out[L.Relations[R].Name] =
        json::Object{{"labelled_features", int64_t(Labelled)},
                     {"labelled_write_a_target",
                      Labelled ? double(LabelledHits) / Labelled : 0},
                     {"all_write_a_target", All ? double(AllHits) / All : 0}};
  }
  return Out;
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "larql-probe timing\n");
  auto V = ExitOnErr(Vindex::open(Input));
  VindexSession S(*V);
  auto T0 = std::chrono::steady_clock::now();
  const Model &M = ExitOnErr(S.model());
  const Tokenizer &Tok = ExitOnErr(S.tokenizer());
  double LoadSeconds = seconds(T0);

  ProbeOptions Opts;
  Opts.Jobs = Jobs;
  Opts.ShowProgress = false;
  json::Object Out{{"model", Input.getValue()},
                   {"layers", int64_t(M.numLayers())},
                   {"features_per_layer", int64_t(M.layer(0).Gate.Rows)},
                   {"hidden", int64_t(M.config().HiddenSize)},
                   {"vocab", int64_t(M.lmHead().Rows)},
                   {"jobs", int64_t(Jobs)},
                   {"load_seconds", LoadSeconds}};

  // Token labels: one layer or all, a layer at a time.
  T0 = std::chrono::steady_clock::now();
  std::vector<FeatureLabel> Features;
  if (Tokens) {
    TokenLabeler Labeler(M, Tok, Opts);
    double Prep = seconds(T0);
    unsigned First = Layer < 0 ? 0 : Layer,
             Last = Layer < 0 ? M.numLayers() : Layer + 1;
    for (unsigned L = First; L < Last; ++L)
      Labeler.label(L, Features);
    double Secs = seconds(T0);
    Out["token_layers"] = int64_t(Last - First);
    Out["token_features"] = int64_t(Features.size());
    Out["token_prepare_seconds"] = Prep;
    Out["token_seconds"] = Secs;
    Out["features_labelled_per_second"] = Features.size() / Secs;
    Out["rss_anon_after_tokens_mib"] = anonRSSMiB();
  }
  Features.clear();
  Features.shrink_to_fit();

  if (!FactsPath.empty()) {
    std::vector<Fact> Facts =
        ExitOnErr(parseFacts(readText(FactsPath), FactsPath));
    Labels L;
    L.Relations =
        ExitOnErr(parseTemplates(readText(TemplatesPath), TemplatesPath));
    if (Prompts && Prompts < Facts.size())
      Facts.resize(Prompts);
    if (Error E = checkFacts(Facts, L.Relations, Tok, M.config(), FactsPath))
      ExitOnErr(std::move(E));
    Opts.TokenLabels = Quality;
    ProbeStats Stats;
    T0 = std::chrono::steady_clock::now();
    if (Error E = probe(M, Tok, Facts, Opts, L, Stats))
      ExitOnErr(std::move(E));
    double Secs = seconds(T0);
    Out["facts"] = int64_t(Facts.size());
    Out["attribution_total_seconds"] = Secs;
    Out["facts_per_second"] = Facts.size() / Secs;
    Out["forward_seconds"] = Stats.ForwardSeconds;
    Out["attribution_seconds"] = Stats.AttributionSeconds;
    Out["lens_seconds"] = Stats.LensSeconds;
    Out["reduce_seconds"] = Stats.ReduceSeconds;
    Out["features_with_relations"] = int64_t(Stats.FeaturesWithRelations);
    Out["relation_labels"] = int64_t(Stats.RelationLabels);
    if (Quality)
      Out["quality"] = quality(L, Facts, Tok);
  }
  Out["peak_rss_mib"] = peakRSSMiB();
  Out["rss_anon_end_mib"] = anonRSSMiB();
  outs() << formatv("{0}", json::Value(std::move(Out))) << "\n";
  return 0;
}
