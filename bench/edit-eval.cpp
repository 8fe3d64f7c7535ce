//===- edit-eval.cpp - Quality of knowledge edits, printed as JSON --------===//
//
// vindex-bench-edit-eval --before B.vindex [--after A.vindex]
//                        [--fixtures test/fixtures] [--facts FACTS.tsv]
//
// What an edit did to a model, from the two V-indexes (the edited one
// usually B plus the patches larql-opt -o recorded; see
// bench/edit-eval.sh for the batches and the timing):
//   - trained: recall of the model's trained single-valued facts, the whole
//     target generated greedily after the canonical prompt
//     (corpus/eval_canonical.jsonl) and after the relation's held-out prompt
//     (corpus/eval_heldout.jsonl), before and after;
//   - kl: the mean KL(before || after) of the next-token distributions at
//     every prefix of the held-out corpus sentences (corpus/heldout.txt);
//   - inserted (--facts, `entity<TAB>relation<TAB>target` with a header
//     line): efficacy (the canonical prompt of facts/templates.json
//     generates the whole target) and paraphrase (the same with the
//     relation's heldout_prompt), with the target's first-token
//     probability, before and after;
//   - each recall also by relation (`by_relation`): the model's own
//     held-out recall per relation is the ceiling of the inserted facts'
//     paraphrase;
//   - the FFN width of every layer before and after.
// With --answers P.tsv (`prompt<TAB>target` lines) it prints instead one
// JSON line per prompt of the --before V-index, with the fields
// utils/llama-answers prints for a GGUF in llama.cpp (match, p_first,
// generated), so that the two engines can be compared line by line.
// "The whole target": the ids that encoding "prompt target" adds after the
// prompt's own ids, generated one after another by argmax.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <map>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Before("before", cl::Required,
                                   cl::desc("The unedited V-index"));
static cl::opt<std::string>
    After("after", cl::desc("The edited V-index (omit to measure the "
                            "unedited model alone)"));
static cl::opt<std::string> Fixtures("fixtures", cl::init("test/fixtures"),
                                     cl::desc("The fixtures directory"));
static cl::opt<std::string>
    Facts("facts", cl::desc("Inserted facts: entity, relation, target TSV"));
static cl::opt<unsigned>
    KLSentences("kl-sentences", cl::init(0),
                cl::desc("Held-out sentences for the KL (0: all)"));
static cl::opt<bool>
    Details("details", cl::desc("Per-fact results of the inserted facts"));
static cl::opt<std::string>
    Answers("answers", cl::desc("Print the answers to these prompts "
                                "(prompt<TAB>target lines) and stop"));
static cl::opt<unsigned> Threads("engine-threads", cl::init(1),
                                 cl::desc("Engine threads"));

namespace {

ExitOnError ExitOnErr("vindex-bench-edit-eval: error: ");

[[noreturn]] void fail(const Twine &Msg) {
  ExitOnErr(createStringError(Msg));
  llvm_unreachable("ExitOnError exits");
}

std::string fixture(StringRef Rel) {
  SmallString<256> P(Fixtures);
  sys::path::append(P, Rel);
  return std::string(P);
}

std::unique_ptr<MemoryBuffer> readFile(const std::string &Path) {
  auto B = MemoryBuffer::getFile(Path);
  if (!B)
    fail("cannot read " + Path + ": " + B.getError().message());
  return std::move(*B);
}

struct Item {
  std::string Entity, Relation, Target, Prompt;
};

/// The items of an eval_*.jsonl file whose relation is single-valued (no
/// item of it has several targets: borders is multi-valued, even for a
/// country with one neighbour).
std::vector<Item> readEvalItems(const std::string &Path) {
  std::vector<Item> Items;
  StringSet<> MultiValued;
  SmallVector<StringRef> Lines;
  auto Buf = readFile(Path);
  Buf->getBuffer().split(Lines, '\n', -1, false);
  for (StringRef Line : Lines) {
    json::Value V = ExitOnErr(json::parse(Line));
    const json::Object *O = V.getAsObject();
    const json::Array *Targets = O ? O->getArray("targets") : nullptr;
    if (!Targets || Targets->empty())
      fail("bad line in " + Path);
    Item I{O->getString("entity").value_or("").str(),
           O->getString("relation").value_or("").str(),
           (*Targets)[0].getAsString().value_or("").str(),
           O->getString("prompt").value_or("").str()};
    if (Targets->size() > 1)
      MultiValued.insert(I.Relation);
    Items.push_back(std::move(I));
  }
  llvm::erase_if(
      Items, [&](const Item &I) { return MultiValued.contains(I.Relation); });
  return Items;
}

struct Template {
  std::string Canonical, Heldout;
};

StringMap<Template> readTemplates() {
  auto Buf = readFile(fixture("facts/templates.json"));
  json::Value V = ExitOnErr(json::parse(Buf->getBuffer()));
  StringMap<Template> Out;
  for (const auto &[Rel, T] : *V.getAsObject()) {
    const json::Object *O = T.getAsObject();
    Out[Rel.str()] = {O->getString("canonical").value_or("").str(),
                      O->getString("heldout_prompt").value_or("").str()};
  }
  return Out;
}

std::string fill(StringRef Template, StringRef Entity) {
  std::string S = Template.str();
  size_t At = S.find("{e}");
  if (At == std::string::npos)
    fail("template '" + Template + "' has no {e}");
  return S.replace(At, 3, Entity.str());
}

/// The facts of a TSV (entity, relation, target; the first line a header).
std::vector<Item> readFacts(const std::string &Path) {
  std::vector<Item> Items;
  SmallVector<StringRef> Lines;
  auto Buf = readFile(Path);
  Buf->getBuffer().split(Lines, '\n', -1, false);
  for (StringRef Line : ArrayRef(Lines).drop_front()) {
    SmallVector<StringRef, 3> F;
    Line.rtrim("\r").split(F, '\t');
    if (F.size() != 3)
      fail("bad line in " + Path + ": " + Line);
    Items.push_back({F[0].str(), F[1].str(), F[2].str(), ""});
  }
  return Items;
}

/// One V-index with its engine and tokenizer.
struct Loaded {
  std::unique_ptr<Vindex> V;
  std::unique_ptr<VindexSession> VS;
  const Model *M = nullptr;
  const Tokenizer *Tok = nullptr;

  explicit Loaded(StringRef Path) {
    V = ExitOnErr(Vindex::open(Path));
    VS = std::make_unique<VindexSession>(*V);
    M = &ExitOnErr(VS->model());
    Tok = &ExitOnErr(VS->tokenizer());
  }

  json::Array widths() const {
    json::Array W;
    for (unsigned L = 0; L < M->numLayers(); ++L)
      W.push_back(int64_t(VS->view().ffnWidth(L)));
    return W;
  }
};

struct Answer {
  bool Match = false;
  double PFirst = 0;
  std::string Generated;
};

/// Whether Prompt greedily continues with the whole of " Target".
Answer ask(const Loaded &X, Session &S, StringRef Prompt, StringRef Target) {
  std::vector<int32_t> P = X.Tok->encode(Prompt);
  std::vector<int32_t> All = X.Tok->encode((Prompt + " " + Target).str());
  if (All.size() <= P.size() || !std::equal(P.begin(), P.end(), All.begin()))
    fail("the target of '" + Prompt + "' does not encode after the prompt");
  ArrayRef<int32_t> T = ArrayRef(All).drop_front(P.size());
  S.reset();
  std::vector<float> Logits = S.run(P).Logits;
  Answer A;
  {
    float Max = Logits[argmax(Logits)];
    double Sum = 0;
    for (float L : Logits)
      Sum += std::exp(double(L) - Max);
    A.PFirst = std::exp(double(Logits[T[0]]) - Max) / Sum;
  }
  std::vector<int32_t> Gen;
  A.Match = true;
  for (size_t I = 0; I < T.size(); ++I) {
    int32_t Next = int32_t(argmax(Logits));
    Gen.push_back(Next);
    if (Next != T[I]) {
      A.Match = false;
      break;
    }
    if (I + 1 < T.size())
      Logits = S.run({Next}).Logits;
  }
  A.Generated = X.Tok->decode(Gen);
  return A;
}

struct Recall {
  size_t Hits = 0, Total = 0;
  double PFirstSum = 0, PFirstMin = 1;
  std::vector<Answer> Answers;
  /// Hits and items per relation, in name order.
  std::map<std::string, std::pair<size_t, size_t>> ByRelation;

  void add(Answer A, const std::string &Relation) {
    Hits += A.Match;
    ++Total;
    PFirstSum += A.PFirst;
    PFirstMin = std::min(PFirstMin, A.PFirst);
    auto &[RelHits, RelTotal] = ByRelation[Relation];
    RelHits += A.Match;
    ++RelTotal;
    Answers.push_back(std::move(A));
  }
  double rate() const { return Total ? double(Hits) / double(Total) : 0; }
  json::Object json() const {
    json::Object Rel;
    for (const auto &[Name, Counts] : ByRelation)
      Rel[Name] = json::Object{{"hits", int64_t(Counts.first)},
                               {"total", int64_t(Counts.second)}};
    return json::Object{{"hits", int64_t(Hits)},
                        {"total", int64_t(Total)},
                        {"recall", rate()},
                        {"p_first_mean", Total ? PFirstSum / Total : 0},
                        {"p_first_min", PFirstMin},
                        {"by_relation", std::move(Rel)}};
  }
};

/// Items given as (prompt, target), with their relation.
struct PromptedItem {
  std::string Prompt, Target, Relation;
};
using Prompted = std::vector<PromptedItem>;

Recall recall(const Loaded &X, const Prompted &Items) {
  Session S(*X.M, Threads);
  Recall R;
  for (const PromptedItem &I : Items)
    R.add(ask(X, S, I.Prompt, I.Target), I.Relation);
  return R;
}

/// log-softmax of a row of logits.
void logSoftmax(ArrayRef<float> Logits, std::vector<double> &Out) {
  Out.resize(Logits.size());
  float Max = Logits[argmax(Logits)];
  double Sum = 0;
  for (float L : Logits)
    Sum += std::exp(double(L) - Max);
  double LogSum = std::log(Sum) + Max;
  for (size_t I = 0; I < Logits.size(); ++I)
    Out[I] = double(Logits[I]) - LogSum;
}

/// Mean and max KL(before || after) over every position of the sentences.
json::Object klDivergence(const Loaded &B, const Loaded &A) {
  auto Buf = readFile(fixture("corpus/heldout.txt"));
  SmallVector<StringRef> Lines;
  Buf->getBuffer().split(Lines, '\n', -1, false);
  if (KLSentences && KLSentences < Lines.size())
    Lines.resize(KLSentences);
  Session SB(*B.M, Threads), SA(*A.M, Threads);
  ForwardOptions All;
  All.AllLogits = true;
  size_t Vocab = B.M->config().VocabSize;
  double Sum = 0, Max = 0;
  size_t Positions = 0;
  std::vector<double> LB, LA;
  for (StringRef Line : Lines) {
    std::vector<int32_t> Ids = B.Tok->encode(Line);
    SB.reset();
    SA.reset();
    std::vector<float> PB = SB.run(Ids, All).Logits;
    std::vector<float> PA = SA.run(Ids, All).Logits;
    for (size_t T = 0; T < Ids.size(); ++T) {
      logSoftmax(ArrayRef(PB).slice(T * Vocab, Vocab), LB);
      logSoftmax(ArrayRef(PA).slice(T * Vocab, Vocab), LA);
      double KL = 0;
      for (size_t I = 0; I < Vocab; ++I)
        KL += std::exp(LB[I]) * (LB[I] - LA[I]);
      Sum += KL;
      Max = std::max(Max, KL);
      ++Positions;
    }
  }
  return json::Object{{"sentences", int64_t(Lines.size())},
                      {"positions", int64_t(Positions)},
                      {"mean", Positions ? Sum / Positions : 0},
                      {"max", Max}};
}

Prompted asPrompted(const std::vector<Item> &Items) {
  Prompted P;
  for (const Item &I : Items)
    P.push_back({I.Prompt, I.Target, I.Relation});
  return P;
}

json::Object trained(const Loaded &X, const Prompted &Canonical,
                     const Prompted &Heldout) {
  return json::Object{{"canonical", recall(X, Canonical).json()},
                      {"heldout", recall(X, Heldout).json()}};
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "knowledge-edit evaluation\n");
  auto Start = std::chrono::steady_clock::now();
  Loaded B(Before);
  if (!Answers.empty()) {
    auto Buf = readFile(Answers);
    SmallVector<StringRef> Lines;
    Buf->getBuffer().split(Lines, '\n', -1, false);
    Session S(*B.M, Threads);
    for (StringRef Line : Lines) {
      auto [Prompt, Target] = Line.split('\t');
      Answer Ans = ask(B, S, Prompt, Target);
      outs() << json::Value(json::Object{{"prompt", Prompt},
                                         {"target", Target},
                                         {"match", Ans.Match},
                                         {"p_first", Ans.PFirst},
                                         {"generated", Ans.Generated}})
             << "\n";
    }
    return 0;
  }
  std::unique_ptr<Loaded> A;
  if (!After.empty())
    A = std::make_unique<Loaded>(After);

  Prompted Canonical =
      asPrompted(readEvalItems(fixture("corpus/eval_canonical.jsonl")));
  Prompted Heldout =
      asPrompted(readEvalItems(fixture("corpus/eval_heldout.jsonl")));

  json::Object Out{{"benchmark", "edit-eval"},
                   {"before", Before.getValue()},
                   {"architecture", B.M->config().Architecture}};
  json::Object Widths{{"before", B.widths()}};
  if (A) {
    Out["after"] = After.getValue();
    Widths["after"] = A->widths();
  }
  Out["ffn_width"] = std::move(Widths);

  json::Object Trained{{"items", int64_t(Canonical.size())},
                       {"before", trained(B, Canonical, Heldout)}};
  if (A)
    Trained["after"] = trained(*A, Canonical, Heldout);
  Out["trained"] = std::move(Trained);

  if (!Facts.empty()) {
    StringMap<Template> Templates = readTemplates();
    std::vector<Item> F = readFacts(Facts);
    Prompted Canon, Para;
    for (const Item &I : F) {
      auto T = Templates.find(I.Relation);
      if (T == Templates.end())
        fail("unknown relation '" + I.Relation + "' in " + Facts);
      Canon.push_back(
          {fill(T->second.Canonical, I.Entity), I.Target, I.Relation});
      Para.push_back({fill(T->second.Heldout, I.Entity), I.Target, I.Relation});
    }
    auto Measure = [&](const Loaded &L) {
      Recall E = recall(L, Canon), P = recall(L, Para);
      json::Object O{{"efficacy", E.json()}, {"paraphrase", P.json()}};
      if (Details) {
        json::Array D;
        for (size_t I = 0; I < F.size(); ++I)
          D.push_back(
              json::Object{{"entity", F[I].Entity},
                           {"relation", F[I].Relation},
                           {"target", F[I].Target},
                           {"canonical", E.Answers[I].Match},
                           {"p_first", E.Answers[I].PFirst},
                           {"generated", E.Answers[I].Generated},
                           {"paraphrase", P.Answers[I].Match},
                           {"paraphrase_generated", P.Answers[I].Generated}});
        O["facts"] = std::move(D);
      }
      return O;
    };
    json::Object Ins{{"facts", int64_t(F.size())},
                     {"path", Facts.getValue()},
                     {"before", Measure(B)}};
    if (A)
      Ins["after"] = Measure(*A);
    Out["inserted"] = std::move(Ins);
  }

  if (A)
    Out["kl"] = klDivergence(B, *A);
  Out["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
          .count();
  outs() << formatv("{0:2}", json::Value(std::move(Out))) << "\n";
  return 0;
}
