//===- Executor.cpp - Dispatch; INFER and WALK ----------------------------===//
#include "vindex/Exec/Executor.h"
#include "FeatureWeights.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Exec/Applier.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <numeric>

using namespace llvm;
using mlir::Operation;

namespace vindex::lql {

namespace {

struct Candidate {
  int32_t Id;
  float Logit;
  double Prob;
};

std::vector<Candidate> topCandidates(ArrayRef<float> Logits, unsigned N) {
  float Max = *std::max_element(Logits.begin(), Logits.end());
  double Sum = 0;
  for (float L : Logits)
    Sum += std::exp(double(L) - Max);
  std::vector<int32_t> Ids(Logits.size());
  std::iota(Ids.begin(), Ids.end(), 0);
  N = std::min<unsigned>(N, Ids.size());
  std::partial_sort(
      Ids.begin(), Ids.begin() + N, Ids.end(), [&](int32_t A, int32_t B) {
        return Logits[A] > Logits[B] || (Logits[A] == Logits[B] && A < B);
      });
  std::vector<Candidate> Out;
  for (unsigned I = 0; I < N; ++I)
    Out.push_back(
        {Ids[I], Logits[Ids[I]], std::exp(double(Logits[Ids[I]]) - Max) / Sum});
  return Out;
}

/// True if the piece begins a new word (SentencePiece's U+2581 or GPT-2's
/// byte-level space 'Ġ').
bool startsWord(StringRef Piece) {
  return Piece.starts_with("\xE2\x96\x81") || Piece.starts_with("\xC4\xA0") ||
         Piece.starts_with(" ");
}

} // namespace

char LoadError::ID = 0;

Executor::Executor(VindexSession &VS, raw_ostream &OS, ResultFormat Format,
                   unsigned Threads, OriginFn Origin)
    : VS(VS), V(VS.vindex()), View(&VS.view()), Origin(std::move(Origin)),
      OS(OS), Format(Format), Threads(Threads) {}

Executor::~Executor() = default;

Error Executor::applyEdit(Operation &Op) {
  // One patch per statement, named after the open BEGIN PATCH block if
  // any: the ops a statement was lowered to share its location, and a
  // batch of facts lowers to thousands (one per appended feature), each of
  // which carried the statement's text when each was a patch.
  if (Pending && PendingLoc != Op.getLoc())
    if (Error E = flushEdits())
      return E;
  // The statement's text, then each distinct balancer record of its ops
  // (uniqued attributes: a memit statement's ops share one). The origin,
  // which hashes the script, is asked only for a record not yet seen.
  mlir::Attribute Balance = Op.getAttr("balance");
  if (!Pending) {
    PatchOrigin O = Origin ? Origin(Op) : PatchOrigin();
    if (Recording)
      O.Name = PatchName;
    Pending = std::make_unique<PatchBuilder>(*View, std::move(O));
    PendingLoc = Op.getLoc();
    PendingBalances = {Balance};
  } else if (Origin && !llvm::is_contained(PendingBalances, Balance)) {
    std::string Statement = Origin(Op).Statement;
    Pending->origin().Statement += Statement.substr(
        std::min(Statement.size(), Statement.find("\n-- balance: ")));
    PendingBalances.push_back(Balance);
  }
  // A statement applies whole or not at all: its earlier ops go with it.
  if (Error E = applyVindexOp(&Op, *Pending)) {
    Pending.reset();
    PendingLoc.reset();
    PendingBalances.clear();
    return E;
  }
  return Error::success();
}

Error Executor::flushEdits() {
  if (!Pending)
    return Error::success();
  std::unique_ptr<PatchBuilder> B = std::move(Pending);
  PendingLoc.reset();
  PendingBalances.clear();
  return View->push(B->finish());
}

Expected<const Model &> Executor::model() {
  Expected<const Model &> M = VS.model();
  if (!M)
    return make_error<LoadError>(M.takeError());
  return *M;
}

Expected<const Tokenizer &> Executor::tokenizer() {
  Expected<const Tokenizer &> T = VS.tokenizer();
  if (!T)
    return make_error<LoadError>(T.takeError());
  return *T;
}

/// The statement an op stands for, as docs/lql.md writes it
/// (larql.create_relation -> CREATE RELATION).
static std::string keyword(Operation &Op) {
  StringRef Name = Op.getName().stripDialect();
  std::string K = Name.upper();
  std::replace(K.begin(), K.end(), '_', ' ');
  return K;
}

Error Executor::run(Operation &Op) {
  if (!isEdit(Op))
    if (Error E = flushEdits())
      return E;
  if (auto I = dyn_cast<larql::InferOp>(Op)) {
    std::optional<unsigned> Generate;
    if (std::optional<uint64_t> G = I.getGenerate())
      Generate = unsigned(*G);
    return infer("INFER", I.getPrompt(), I.getTokens(), unsigned(I.getTop()),
                 Generate, std::nullopt);
  }
  if (auto W = dyn_cast<larql::WalkOp>(Op)) {
    std::optional<size_t> K;
    if (std::optional<uint64_t> WK = W.getK())
      K = size_t(*WK);
    return infer("WALK", W.getPrompt(), W.getTokens(), unsigned(W.getTop()),
                 std::nullopt, K);
  }
  if (isa<larql::SelectOp>(Op))
    return select(Op);
  if (isa<larql::ShowOp>(Op))
    return show(Op);
  if (isa<larql::DescribeOp>(Op))
    return describe(Op);
  if (isa<larql::CompileOp>(Op))
    return compile(Op);
  if (isEdit(Op))
    return edit(Op);
  if (isa<larql::BeginPatchOp>(Op))
    return beginPatch(Op);
  if (isa<larql::SavePatchOp>(Op))
    return savePatch(Op);
  if (isa<larql::ApplyPatchOp>(Op))
    return applyPatch(Op);
  // An edit, and the relation it needs, run once passes have lowered them
  // to vindex ops: the pipeline given instead of the default one did not.
  if (isa<larql::DeleteOp, larql::InsertOp, larql::UpdateOp,
          larql::CreateRelationOp>(Op))
    return createStringError(inconvertibleErrorCode(),
                             "%s runs once lowered to vindex ops: the "
                             "default pipeline, builtin.module(%s), lowers it",
                             keyword(Op).c_str(), kDefaultPipeline);
  return createStringError(inconvertibleErrorCode(),
                           "%s does not run against a V-index yet (this "
                           "build parses, checks and lowers it: --emit=mlir)",
                           keyword(Op).c_str());
}

Error Executor::infer(StringRef Kind, StringRef Prompt,
                      std::optional<ArrayRef<int32_t>> Tokens, unsigned Top,
                      std::optional<unsigned> Generate,
                      std::optional<size_t> WithK) {
  Expected<const Model &> LoadedM = model();
  if (!LoadedM)
    return LoadedM.takeError();
  const Model &M = *LoadedM;
  const Tokenizer &Tok = cantFail(VS.tokenizer()); // model() loaded it
  // WALK fires K features per layer (a quarter of them by default); more
  // features than the layer has is all of them: the dense FFN. INFER: 0.
  size_t WalkK = 0;
  if (Kind == "WALK") {
    size_t F = M.maxFFNWidth();
    WalkK = WithK ? std::min<size_t>(*WithK, F) : std::max<size_t>(1, F / 4);
  }
  // The ids a pass resolved are the program's; whoever wrote them, each
  // must be a row of the embedding.
  std::vector<int32_t> Ids =
      Tokens ? std::vector<int32_t>(Tokens->begin(), Tokens->end())
             : Tok.encode(Prompt);
  if (Ids.empty())
    return createStringError(inconvertibleErrorCode(),
                             "the prompt encodes to no tokens");
  if (Error E = Tok.checkInEmbedding(Ids, M.config().VocabSize, "the prompt"))
    return E;
  Session Forward(M, Threads);
  ForwardOptions Opts;
  Opts.WalkK = WalkK;
  std::vector<float> Logits = Forward.run(Ids, Opts).Logits;
  std::vector<Candidate> Cands = topCandidates(Logits, Top);

  // Greedy generation of Generate tokens, extended to the end of the last
  // word (never more than 32 extra tokens) so the text is whole words.
  std::vector<int32_t> Generated;
  if (Generate) {
    ArrayRef<int64_t> Stop = M.config().EosIds;
    uint64_t Max = M.config().generationPositions();
    uint64_t Limit = std::min<uint64_t>(
        uint64_t(*Generate) + 32, Max > Ids.size() ? Max - Ids.size() : 0);
    for (uint64_t Step = 0; Step < Limit; ++Step) {
      int32_t Next = int32_t(argmax(Logits));
      bool Eos = is_contained(Stop, int64_t(Next)) || Tok.isSpecial(Next);
      if (Eos || (Step >= *Generate && startsWord(Tok.piece(Next))))
        break;
      Generated.push_back(Next);
      Logits = Forward.run({Next}, Opts).Logits;
    }
  }
  std::string Text = Tok.decode(Generated);

  if (Format == ResultFormat::JSON) {
    json::Array TopJ;
    for (const Candidate &C : Cands)
      TopJ.push_back(json::Object{{"id", C.Id},
                                  {"token", Tok.decode({C.Id})},
                                  {"piece", Tok.piece(C.Id)},
                                  {"prob", C.Prob},
                                  {"logit", double(C.Logit)}});
    json::Object Obj{{"statement", Kind},
                     {"prompt", Prompt},
                     {"tokens", json::Array(Ids)},
                     {"top", std::move(TopJ)}};
    if (WalkK)
      Obj["k"] = int64_t(WalkK);
    if (Generate)
      Obj["generated"] =
          json::Object{{"ids", json::Array(Generated)}, {"text", Text}};
    OS << json::Value(std::move(Obj)) << "\n";
    return Error::success();
  }
  if (Format == ResultFormat::CSV) {
    if (!CSVHeaderDone)
      OS << "statement,prompt,rank,id,token,prob,logit\n";
    CSVHeaderDone = true;
    auto Quote = [](StringRef S) {
      std::string Q = "\"";
      for (char C : S)
        Q += C == '"' ? std::string("\"\"") : std::string(1, C);
      return Q + "\"";
    };
    for (size_t R = 0; R < Cands.size(); ++R)
      OS << Kind << "," << Quote(Prompt) << "," << R + 1 << "," << Cands[R].Id
         << "," << Quote(Tok.decode({Cands[R].Id})) << ","
         << format("%.6f", Cands[R].Prob) << ","
         << format("%.4f", Cands[R].Logit) << "\n";
    return Error::success();
  }
  OS << Kind << " '" << Prompt << "'  (" << Ids.size() << " tokens";
  if (WalkK)
    OS << ", K = " << WalkK;
  OS << ")\n";
  OS << "  rank  token                 prob      logit\n";
  for (size_t R = 0; R < Cands.size(); ++R)
    OS << format("  %4zu  %-18s  %8.4f  %9.3f\n", R + 1,
                 Tok.decode({Cands[R].Id}).c_str(), Cands[R].Prob,
                 double(Cands[R].Logit));
  if (Generate)
    OS << "  generated: " << Text << "\n";
  return Error::success();
}

} // namespace vindex::lql
