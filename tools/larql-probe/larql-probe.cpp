//===- larql-probe.cpp - Label the features of a V-index ------------------===//
//
// Reads the facts and templates, checks them all before any work, runs the
// probe (lib/Probe) and writes a copy of the V-index with labels.vfb. The
// labels are described in docs/user-guide.md.
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Memit.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Probe/Probe.h"
#include "vindex/Store/Copy.h"
#include "vindex/Store/KeyStats.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Depfile.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/MappedFile.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <sys/resource.h>

#include <chrono>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Input(cl::Positional, cl::Required,
                                  cl::desc("IN.vindex"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Output("o", cl::desc("Output V-index"),
                                   cl::value_desc("OUT.vindex"),
                                   cl::cat(toolOptions()));
static cl::opt<std::string> Facts("facts",
                                  cl::desc("Facts (entity, relation, "
                                           "target) as TSV"),
                                  cl::value_desc("FACTS.tsv"),
                                  cl::cat(toolOptions()));
static cl::opt<std::string> Templates("templates",
                                      cl::desc("Prompt templates per relation"),
                                      cl::value_desc("TEMPLATES.json"),
                                      cl::cat(toolOptions()));
static FileToolOptions Common;
static cl::opt<bool> Force("force",
                           cl::desc("Probe a V-index that is already probed "
                                    "(its labels are replaced in the output)"),
                           cl::cat(toolOptions()));
static cl::opt<unsigned>
    TopTokens("top-tokens", cl::desc("Input/output tokens kept per feature"),
              cl::init(ProbeOptions().TopTokens), cl::cat(toolOptions()));
static cl::opt<unsigned>
    TopContributors("top-contributors", cl::desc("Features credited per fact"),
                    cl::init(ProbeOptions().TopContributors),
                    cl::cat(toolOptions()));
static cl::opt<unsigned>
    MinEntities("min-entities",
                cl::desc("Distinct entities a relation label needs"),
                cl::init(ProbeOptions().MinEntities), cl::cat(toolOptions()));
static cl::opt<float>
    MinConfidence("min-confidence",
                  cl::desc("Share of the relation's entities a label needs"),
                  cl::init(ProbeOptions().MinConfidence),
                  cl::cat(toolOptions()));
static cl::opt<std::string>
    TimingJSON("timing-json",
               cl::desc("Write timings and counts as JSON ('-': stdout)"),
               cl::value_desc("FILE"), cl::cat(toolOptions()));

static cl::opt<std::string>
    KeyStats("key-stats",
             cl::desc("Measure MODE memit's key statistics over the lines "
                      "of CORPUS.txt and store them (stats/) instead of "
                      "labelling"),
             cl::value_desc("CORPUS.txt"), cl::cat(toolOptions()));
static cl::list<unsigned>
    KeyStatsLayers("key-stats-layers",
                   cl::desc("Layers of --key-stats (default: MODE memit's "
                            "edit layers)"),
                   cl::CommaSeparated, cl::value_desc("L,L,..."),
                   cl::cat(toolOptions()));

static cl::opt<bool>
    Summary("summary",
            cl::desc("Print a summary of IN.vindex's labels and exit"),
            cl::cat(toolOptions()));

static const char *Overview = R"(larql-probe: label the features of a V-index

Writes a copy of IN.vindex with labels.vfb beside its manifest:
  - every FFN feature's top input tokens (what its gate reads) and top
    output tokens (what its down vector writes through the final norm);
  - with --facts: each fact's canonical prompt is run through the model and
    the target's first-token logit is credited to the features that
    produced it; a feature carries a relation where it was among the top
    contributors for several entities of that relation (entity count, mean
    attribution and confidence kept per label; a feature may carry several);
  - the relations' templates, the entities, and per layer a band (syntax,
    knowledge, output) computed from where the attribution concentrates and
    where the logit lens first ranks the target in its top 10.

Usage:
  larql-probe IN.vindex -o OUT.vindex [--facts FACTS.tsv]
              [--templates TEMPLATES.json] [--jobs N] [--depfile F] [--force]
              [--timing-json F] [--top-tokens 8] [--top-contributors 16]
              [--min-entities 3] [--min-confidence 0.02]
  larql-probe --summary OUT.vindex

With --key-stats CORPUS.txt it labels nothing: it streams the corpus line
by line through the model and stores, per layer (MODE memit's edit layers,
or --key-stats-layers), E[k k^T] of the FFN keys in double under stats/,
with the corpus' SHA-256, the positions counted and an identity of the
weights the keys depend on; INSERT ... MODE memit then uses them
(docs/lql.md, "MODE memit"; docs/vindex-format.md, "Key statistics").
  larql-probe IN.vindex -o OUT.vindex --key-stats CORPUS.txt
              [--key-stats-layers L,L,...]

Facts are TSV lines entity<TAB>relation<TAB>target after a header line;
templates are JSON, per relation {"canonical": "... {e} ...", "train": [...],
"heldout_prompt": "..."}. The output appears atomically; the same inputs give
byte-identical output whatever --jobs is.

Exit status: 0 success, 1 bad input, 2 bad command line.
)";

static const char *Tool = "larql-probe";

/// A file read whole, with its provenance record.
static Expected<std::unique_ptr<MappedFile>>
readInput(StringRef Path, StringRef Role, std::vector<ProbeInput> &Inputs) {
  Expected<std::unique_ptr<MappedFile>> F = MappedFile::open(Path);
  if (!F)
    return F.takeError();
  Inputs.push_back({Role.str(), Path.str(), (*F)->size(), sha256Hex(**F)});
  return F;
}

static StringRef text(const MappedFile &F) { return toStringRef(F.bytes()); }

static long peakRSSKiB() {
  struct rusage U;
  getrusage(RUSAGE_SELF, &U);
  return U.ru_maxrss;
}

/// The --timing-json object, on standard output for "-".
static Error writeTimingJSON(json::Object O) {
  std::string Text = formatv("{0}", json::Value(std::move(O))).str() + "\n";
  if (TimingJSON == "-") {
    outs() << Text;
    return Error::success();
  }
  std::error_code EC;
  raw_fd_ostream OS(TimingJSON, EC);
  if (EC)
    return fileError(TimingJSON, "cannot write: {0}", EC.message());
  OS << Text;
  return Error::success();
}

static Error writeStats(const ProbeStats &S, double Seconds) {
  json::Object O{
      {"facts", int64_t(S.Facts)},
      {"features_token_labelled", int64_t(S.FeaturesTokenLabelled)},
      {"features_with_relations", int64_t(S.FeaturesWithRelations)},
      {"relation_labels", int64_t(S.RelationLabels)},
      {"token_seconds", S.TokenSeconds},
      {"forward_seconds", S.ForwardSeconds},
      {"attribution_seconds", S.AttributionSeconds},
      {"lens_seconds", S.LensSeconds},
      {"reduce_seconds", S.ReduceSeconds},
      {"total_seconds", Seconds},
      {"peak_rss_mib", double(peakRSSKiB()) / 1024},
  };
  return writeTimingJSON(std::move(O));
}

/// The labels, one line per layer and per relation.
static void printLabels(const Labels *L) {
  size_t WithRelations = 0;
  for (const FeatureLabel &F : L->Features)
    WithRelations += !F.Relations.empty();
  outs() << formatv("labels: {0} relations, {1} entities, {2} facts, {3} "
                    "features, {4} with relations\n",
                    L->Relations.size(), L->Entities.size(), L->Facts,
                    L->Features.size(), WithRelations);
  for (const LayerLabel &Y : L->Layers)
    outs() << formatv("layer {0}: band={1} relation_features={2} "
                      "attribution_share={3:f3} lens_top10_first={4}\n",
                      Y.Index,
                      Y.Band == Band::Unlabelled ? "-" : bandName(Y.Band),
                      Y.RelationFeatures, Y.AttributionShare, Y.LensTop10First);
  std::vector<uint32_t> Counts = L->relationFeatureCounts();
  std::vector<std::vector<uint32_t>> Layers = L->relationLayers();
  for (size_t R = 0; R < L->Relations.size(); ++R) {
    outs() << formatv("relation {0}: features={1} ", L->Relations[R].Name,
                      Counts[R]);
    if (!L->Relations[R].Entities.empty())
      outs() << formatv("entities={0} ", L->Relations[R].Entities.size());
    outs() << "layers=";
    interleave(Layers[R], outs(), ",");
    outs() << " prompt=\"" << L->Relations[R].Canonical << "\"\n";
    // Its strongest features: most entities, then attribution.
    std::vector<std::pair<const FeatureLabel *, const RelationLabel *>> Top;
    for (const FeatureLabel &F : L->Features)
      for (const RelationLabel &RL : F.Relations)
        if (RL.Relation == R)
          Top.push_back({&F, &RL});
    llvm::stable_sort(Top, [](const auto &A, const auto &B) {
      if (A.second->Entities != B.second->Entities)
        return A.second->Entities > B.second->Entities;
      return A.second->MeanAttribution > B.second->MeanAttribution;
    });
    for (size_t I = 0; I < Top.size() && I < 3; ++I) {
      const auto &[F, RL] = Top[I];
      outs() << formatv("  L{0}:{1} entities={2} confidence={3:f2} "
                        "attribution={4:f3} examples=",
                        F->Layer, F->Feature, RL->Entities, RL->Confidence,
                        RL->MeanAttribution);
      interleave(RL->Examples, outs(), "|");
      outs() << " out=";
      interleave(
          F->OutputTokens, outs(),
          [&](const TokenScore &T) { outs() << L->tokenText(T.Token); }, "|");
      outs() << "\n";
    }
  }
}

/// --summary: what the labels of a probed V-index hold, one line per
/// layer and per relation, then one line per layer's key statistics
/// (stable text, for people and tests).
static Error printSummary() {
  Expected<std::unique_ptr<Vindex>> V = Vindex::open(Input);
  if (!V)
    return V.takeError();
  const Labels *L = (*V)->labels();
  if (!L && (*V)->manifest().KeyStats.empty())
    return fileError(Input, "is not probed (run larql-probe on it)");
  if (L)
    printLabels(L);
  // The key statistics, each checked against the weights as they are.
  TensorView View(**V);
  for (const KeyStatsRecord &R : (*V)->manifest().KeyStats) {
    Expected<uint64_t> Id = keyStatsWeightsIdentity(View, R.Layer);
    if (!Id)
      return Id.takeError();
    outs() << formatv("key statistics: layer {0} file={1} features={2} "
                      "positions={3} corpus={4} sha256={5} weights={6:x16} "
                      "{7}\n",
                      R.Layer, R.File, R.Features, R.Positions, R.Corpus,
                      R.CorpusSha256, R.Weights,
                      *Id == R.Weights ? "current" : "stale");
  }
  return Error::success();
}

/// --key-stats-layers, sorted and unique (MODE memit's default edit layers
/// when none is given), checked against the model.
static Expected<std::vector<unsigned>> keyStatsLayers(const Model &M) {
  std::vector<unsigned> Layers(KeyStatsLayers.begin(), KeyStatsLayers.end());
  llvm::sort(Layers);
  Layers.erase(std::unique(Layers.begin(), Layers.end()), Layers.end());
  if (Layers.empty())
    Layers = edit::memitLayers(edit::MemitOptions(), M.numLayers());
  for (unsigned L : Layers)
    if (L >= M.numLayers())
      return makeError("--key-stats-layers: no layer {0} (the model has {1})",
                       L, M.numLayers());
  return std::move(Layers);
}

/// The command line a stats/ record keeps: only what determines the bytes.
static std::string keyStatsCommandLine(ArrayRef<unsigned> Layers) {
  std::string CommandLine =
      std::string(Tool) + " " + Input.getValue() + " --key-stats " + KeyStats;
  if (!KeyStatsLayers.empty()) {
    CommandLine += " --key-stats-layers=";
    for (size_t I = 0; I < Layers.size(); ++I)
      CommandLine += formatv("{0}{1}", I ? "," : "", Layers[I]).str();
  }
  return CommandLine;
}

/// --key-stats: the statistics of each layer over the corpus' lines, one
/// line in memory at a time, stored in a copy of the V-index.
static Error runKeyStats() {
  auto Start = std::chrono::steady_clock::now();
  if (!Facts.empty() || !Templates.empty())
    return makeError("--key-stats labels nothing: give --facts and "
                     "--templates to a run of their own");
  Expected<std::unique_ptr<Vindex>> V = Vindex::open(Input);
  if (!V)
    return V.takeError();
  Expected<std::unique_ptr<MappedFile>> Corpus = MappedFile::open(KeyStats);
  if (!Corpus)
    return Corpus.takeError();
  std::string Sha = sha256Hex(**Corpus);
  VindexSession Session(**V);
  Expected<const Model &> M = Session.model();
  if (!M)
    return M.takeError();
  Expected<const Tokenizer &> Tok = Session.tokenizer();
  if (!Tok)
    return Tok.takeError();
  Expected<std::vector<unsigned>> ChosenLayers = keyStatsLayers(*M);
  if (!ChosenLayers)
    return ChosenLayers.takeError();
  const std::vector<unsigned> &Layers = *ChosenLayers;
  // The lines one at a time, as `corpus=F` reads them.
  std::vector<StringRef> Lines;
  edit::forEachCorpusLine(text(**Corpus),
                          [&](StringRef L) { Lines.push_back(L); });
  size_t Next = 0;
  Expected<edit::KeyStatistics> S = edit::keyStatistics(
      *M,
      [&](std::vector<int32_t> &Ids) {
        if (Next == Lines.size())
          return false;
        Ids = Tok->encode(Lines[Next++]);
        return true;
      },
      Layers, KeyStats, /*NormKeys=*/false, Common.threads());
  if (!S)
    return fileError(KeyStats, "{0}", toString(S.takeError()));

  std::string CommandLine = keyStatsCommandLine(Layers);
  std::vector<KeyStatsFileData> Files;
  for (size_t I = 0; I < Layers.size(); ++I) {
    KeyStatsFileData D;
    D.Record.Layer = Layers[I];
    D.Record.Features = M->layer(Layers[I]).Down.Rows;
    D.Record.Positions = S->Positions;
    Expected<uint64_t> Id = keyStatsWeightsIdentity(Session.view(), Layers[I]);
    if (!Id)
      return Id.takeError();
    D.Record.Weights = *Id;
    D.Record.Corpus = KeyStats;
    D.Record.CorpusSha256 = Sha;
    D.Record.CommandLine = CommandLine;
    D.Bytes = serializeKeyStats(S->Moment[I], D.Record.Features);
    S->Moment[I] = {};
    Files.push_back(std::move(D));
  }
  if (Error E = copyVindexWithKeyStats(**V, Output, Files))
    return E;
  if (!Common.Depfile.empty()) {
    std::vector<std::string> Deps = (*V)->files();
    Deps.push_back(KeyStats);
    if (Error E = writeDepfile(Common.Depfile, Output, Deps))
      return E;
  }
  if (!TimingJSON.empty()) {
    json::Object O{
        {"layers", int64_t(Layers.size())},
        {"lines", int64_t(Lines.size())},
        {"positions", int64_t(S->Positions)},
        {"total_seconds", std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - Start)
                              .count()},
        {"peak_rss_mib", double(peakRSSKiB()) / 1024},
    };
    return writeTimingJSON(std::move(O));
  }
  return Error::success();
}

/// --templates (the relations, into L) and --facts, each recorded in
/// L.Inputs.
static Expected<std::vector<Fact>> readFactsAndTemplates(Labels &L) {
  std::vector<Fact> FactList;
  if (!Templates.empty()) {
    Expected<std::unique_ptr<MappedFile>> F =
        readInput(Templates, "templates", L.Inputs);
    if (!F)
      return F.takeError();
    Expected<std::vector<RelationInfo>> R =
        parseTemplates(text(**F), Templates);
    if (!R)
      return R.takeError();
    L.Relations = std::move(*R);
  }
  if (!Facts.empty()) {
    Expected<std::unique_ptr<MappedFile>> F =
        readInput(Facts, "facts", L.Inputs);
    if (!F)
      return F.takeError();
    Expected<std::vector<Fact>> Parsed = parseFacts(text(**F), Facts);
    if (!Parsed)
      return Parsed.takeError();
    FactList = std::move(*Parsed);
  }
  return std::move(FactList);
}

/// What labels.vfb records of how it was made: only what determines the
/// bytes (not -o, --jobs, --depfile, --force), and the inputs read.
static LabelsFileRecord labelsRecord(const Labels &L) {
  LabelsFileRecord Record;
  Record.CommandLine = std::string(Tool) + " " + Input.getValue();
  if (!Facts.empty())
    Record.CommandLine += " --facts " + Facts;
  if (!Templates.empty())
    Record.CommandLine += " --templates " + Templates;
  ProbeOptions Defaults;
  if (TopTokens != Defaults.TopTokens)
    Record.CommandLine += formatv(" --top-tokens={0}", TopTokens).str();
  if (TopContributors != Defaults.TopContributors)
    Record.CommandLine +=
        formatv(" --top-contributors={0}", TopContributors).str();
  if (MinEntities != Defaults.MinEntities)
    Record.CommandLine += formatv(" --min-entities={0}", MinEntities).str();
  if (MinConfidence != Defaults.MinConfidence)
    Record.CommandLine +=
        formatv(" --min-confidence={0}", float(MinConfidence)).str();
  for (const ProbeInput &I : L.Inputs)
    Record.Sources.push_back({I.Path, I.Size, I.Sha256});
  return Record;
}

static Error run() {
  auto Start = std::chrono::steady_clock::now();
  Expected<std::unique_ptr<Vindex>> V = Vindex::open(Input);
  if (!V)
    return V.takeError();
  if ((*V)->labels() && !Force)
    return fileError(Input,
                     "is already probed (it has {0}, from {1} facts); "
                     "--force re-probes it into the new output",
                     kLabelsFileName, (*V)->labels()->Facts);
  if (!Facts.empty() && Templates.empty())
    return makeError("--facts needs --templates (the prompt of each "
                     "relation)");

  Labels L;
  Expected<std::vector<Fact>> Read = readFactsAndTemplates(L);
  if (!Read)
    return Read.takeError();
  std::vector<Fact> FactList = std::move(*Read);

  VindexSession Session(**V);
  Expected<const Model &> M = Session.model();
  if (!M)
    return M.takeError();
  Expected<const Tokenizer &> Tok = Session.tokenizer();
  if (!Tok)
    return Tok.takeError();
  if (Error E = checkFacts(FactList, L.Relations, *Tok, M->config(), Facts))
    return E;

  ProbeOptions Opts;
  Opts.Jobs = Common.threads();
  Opts.TopTokens = TopTokens;
  Opts.TopContributors = TopContributors;
  Opts.MinEntities = MinEntities;
  Opts.MinConfidence = MinConfidence;
  ProbeStats Stats;
  if (Error E = probe(*M, *Tok, FactList, Opts, L, Stats))
    return E;

  if (Error E = copyVindexWithLabels(**V, Output, L, labelsRecord(L)))
    return E;

  if (!Common.Depfile.empty()) {
    std::vector<std::string> Deps = (*V)->files();
    for (const ProbeInput &I : L.Inputs)
      Deps.push_back(I.Path);
    if (Error E = writeDepfile(Common.Depfile, Output, Deps))
      return E;
  }
  if (!TimingJSON.empty())
    return writeStats(Stats, std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - Start)
                                 .count());
  return Error::success();
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  // Labels are written from engine results: exact kernels only.
  requireExactKernels();
  if (Summary)
    return exitWith(Tool, printSummary());
  if (Output.empty()) {
    errs() << Tool << ": error: -o OUT.vindex is required\n";
    return ExitUsageError;
  }
  return exitWith(Tool, KeyStats.empty() ? run() : runKeyStats());
}
