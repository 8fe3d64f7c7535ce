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

LogicalResult lowerMemit(Operation *Op, llvm::ArrayRef<edit::Fact> Facts,
                         edit::Editor &Ed, const Tokenizer &Tok,
                         MemitContext &Ctx, llvm::raw_ostream *Verbose) {
  if (!Ctx.Stats && failed(measureStats(Op, Ed, Tok, Ctx, Verbose)))
    return failure();
  llvm::Expected<edit::MemitPlan> Plan = edit::planMemit(
      Ed.view(), Tok, Facts, *Ctx.Stats, Ctx.Options, Verbose);
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
