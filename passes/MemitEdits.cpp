//===- MemitEdits.cpp - larql-plan-edits' MODE memit ----------------------===//
#include "MemitEdits.h"
#include "FactEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Patch.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace vindex {

bool isMemit(Operation *Op) {
  auto I = dyn_cast<larql::InsertOp>(Op);
  return I && I.getMode() && *I.getMode() == "memit";
}

static LogicalResult measureStats(Operation *Op, const edit::Editor &Ed,
                                  const Tokenizer &Tok, MemitContext &Ctx,
                                  llvm::raw_ostream *Verbose) {
  llvm::Expected<std::unique_ptr<Model>> M = Model::load(Ed.view());
  if (!M) {
    Op->emitError() << llvm::toString(M.takeError());
    return failure();
  }
  std::vector<std::vector<int32_t>> Texts;
  std::string Source;
  if (!Ctx.Corpus.empty()) {
    for (const std::string &L : Ctx.Corpus)
      Texts.push_back(Tok.encode(L));
    Source = llvm::formatv("corpus '{0}' ({1} lines)", Ctx.CorpusName,
                           Ctx.Corpus.size())
                 .str();
  } else {
    Texts = edit::greedyTexts(**M, Tok, 192, 32);
    Source = llvm::formatv("the model's greedy text ({0} texts)", Texts.size())
                 .str();
  }
  std::vector<unsigned> Layers =
      edit::memitLayers(Ctx.Options, (*M)->numLayers());
  llvm::Expected<edit::KeyStatistics> S =
      edit::keyStatistics(**M, Texts, Layers, Source);
  if (!S) {
    Op->emitError() << llvm::toString(S.takeError());
    return failure();
  }
  if (Verbose)
    *Verbose << llvm::formatv("memit: key statistics of layers {0} over {1} "
                              "positions of {2}\n",
                              llvm::join(llvm::map_range(Layers,
                                                         [](unsigned L) {
                                                           return std::to_string(L);
                                                         }),
                                         ","),
                              S->Positions, Source);
  Ctx.Stats = std::move(*S);
  return success();
}

/// The guard texts: each relation's canonical prompt with each known
/// entity, and the model's greedy answer (3 pieces) after it.
static LogicalResult measureGuards(Operation *Op, const edit::Editor &Ed,
                                   const Tokenizer &Tok, MemitContext &Ctx) {
  llvm::Expected<std::unique_ptr<Model>> M = Model::load(Ed.view());
  if (!M) {
    Op->emitError() << llvm::toString(M.takeError());
    return failure();
  }
  std::vector<std::string> Known = Ctx.Known;
  if (Known.empty())
    Known = edit::vocabularyEntities(Tok, 256);
  std::vector<MemitContext::Guard> Guards;
  Session S(**M, 1);
  for (const auto &[Relation, Templates] : Ctx.Relations) {
    if (Templates.empty())
      continue;
    for (const std::string &E : Known) {
      MemitContext::Guard G;
      G.Entity = E;
      G.Relation = Relation;
      G.Text.Ids = Tok.encode(edit::fillTemplate(Templates.front(), E));
      if (G.Text.Ids.empty())
        continue;
      G.Text.From = G.Text.Ids.size() - 1;
      S.reset();
      std::vector<int32_t> Answer = S.generate(G.Text.Ids, 3, {});
      // Keys after the prompt and after each answer piece but the last.
      if (!Answer.empty())
        G.Text.Ids.insert(G.Text.Ids.end(), Answer.begin(), Answer.end() - 1);
      Guards.push_back(std::move(G));
    }
  }
  Ctx.Guards = std::move(Guards);
  return success();
}

LogicalResult lowerMemit(Operation *Op, llvm::ArrayRef<edit::Fact> Facts,
                         edit::Editor &Ed, const Tokenizer &Tok,
                         MemitContext &Ctx, llvm::raw_ostream *Verbose) {
  if (!Ctx.Stats && failed(measureStats(Op, Ed, Tok, Ctx, Verbose)))
    return failure();
  if (!Ctx.Guards && Ctx.Options.PreserveWeight > 0 &&
      failed(measureGuards(Op, Ed, Tok, Ctx)))
    return failure();
  // The guards but those this statement edits.
  std::vector<edit::PreservedText> Preserved;
  if (Ctx.Guards)
    for (const MemitContext::Guard &G : *Ctx.Guards)
      if (llvm::none_of(Facts, [&](const edit::Fact &F) {
            return F.Entity == G.Entity && F.Relation == G.Relation;
          }))
        Preserved.push_back(G.Text);
  llvm::Expected<edit::MemitPlan> Plan = edit::planMemit(
      Ed.view(), Tok, Facts, *Ctx.Stats, Preserved, Ctx.Options, Verbose,
      [&](int32_t Token, std::string &Rec) {
        return Ed.liftOutputRow(Token, Rec);
      });
  if (!Plan) {
    Op->emitError() << llvm::toString(Plan.takeError());
    return failure();
  }
  std::string Record = llvm::join(Plan->Record, "\n");
  Record += "\nmemit: key statistics over " +
            std::to_string(Ctx.Stats->Positions) + " positions of " +
            Ctx.Stats->Source;
  OpBuilder B(Op);
  MLIRContext *C = Op->getContext();
  // Lifted output rows (already on Ed's scratch view), then the updates.
  for (const edit::PlannedRow &R : Plan->Rows) {
    std::string Name = llvm::formatv("memit_row_{0}", R.Row).str();
    auto Ty = RankedTensorType::get({1, int64_t(R.Values.size())},
                                    Float32Type::get(C));
    Attribute V = DenseF32ResourceElementsAttr::get(
        Ty, Name,
        HeapAsmResourceBlob::allocateAndCopyInferAlign(
            llvm::ArrayRef<float>(R.Values)));
    auto W = B.create<vx::UpdateWeightsOp>(Op->getLoc(), R.Tensor,
                                           int64_t(R.Row), int64_t(R.Row + 1),
                                           cast<ElementsAttr>(V));
    W->setAttr(BalanceAttr, StringAttr::get(C, Record));
  }
  for (const edit::DownUpdate &U : Plan->Updates) {
    size_t D = U.Values.size() / U.Rows;
    auto Ty = RankedTensorType::get({int64_t(U.Rows), int64_t(D)},
                                    Float32Type::get(C));
    std::string Name = llvm::formatv("memit_down_L{0}", U.Layer).str();
    Attribute V = DenseF32ResourceElementsAttr::get(
        Ty, Name,
        HeapAsmResourceBlob::allocateAndCopyInferAlign(
            llvm::ArrayRef<float>(U.Values)));
    auto W = B.create<vx::UpdateWeightsOp>(Op->getLoc(), U.Tensor, int64_t(0),
                                           int64_t(U.Rows),
                                           cast<ElementsAttr>(V));
    W->setAttr(BalanceAttr, StringAttr::get(C, Record));
    if (llvm::Error E = Ed.apply([&](PatchBuilder &P) {
          return P.setRows(U.Tensor, 0, U.Values);
        })) {
      Op->emitError() << llvm::toString(std::move(E));
      return failure();
    }
  }
  Op->erase();
  return success();
}

} // namespace vindex
