//===- FactEdits.cpp - The facts an edit op names -------------------------===//
#include "FactEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Formats/Tokenizer.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace vindex {

namespace {

/// ["=", COLUMN, "text"] -> (COLUMN, text).
std::optional<std::pair<StringRef, StringRef>> equality(Attribute A) {
  auto E = dyn_cast<ArrayAttr>(A);
  if (!E || E.size() != 3)
    return std::nullopt;
  auto Op = dyn_cast<StringAttr>(E[0]);
  auto Col = dyn_cast<StringAttr>(E[1]);
  auto Val = dyn_cast<StringAttr>(E[2]);
  if (!Op || Op.getValue() != "=" || !Col || !Val)
    return std::nullopt;
  return std::pair(Col.getValue(), Val.getValue());
}

/// True if the expression mentions COLUMN anywhere.
bool mentions(Attribute A, StringRef Column) {
  auto E = dyn_cast<ArrayAttr>(A);
  if (!E)
    return false;
  for (Attribute X : E)
    if (auto S = dyn_cast<StringAttr>(X); S && S.getValue() == Column)
      return true;
    else if (mentions(X, Column))
      return true;
  return false;
}

/// WHERE entity = E AND relation = R (either order).
std::optional<std::pair<std::string, std::string>> pinnedFact(ArrayAttr W) {
  if (W.size() != 3)
    return std::nullopt;
  auto Kind = dyn_cast<StringAttr>(W[0]);
  if (!Kind || Kind.getValue() != "and")
    return std::nullopt;
  auto A = equality(W[1]), B = equality(W[2]);
  if (!A || !B)
    return std::nullopt;
  if (A->first == "relation")
    std::swap(A, B);
  if (A->first != "entity" || B->first != "relation")
    return std::nullopt;
  return std::pair(A->second.str(), B->second.str());
}

} // namespace

LogicalResult factRows(Operation *Op, std::vector<FactRow> &Rows) {
  Rows.clear();
  if (auto I = dyn_cast<larql::InsertOp>(Op)) {
    size_t N = 0;
    for (Attribute R : I.getRows()) {
      auto Row = cast<DictionaryAttr>(R);
      auto Text = [&](StringRef C) {
        auto S = dyn_cast_or_null<StringAttr>(Row.get(C));
        return S ? S.getValue().trim().str() : std::string();
      };
      Rows.push_back({++N, Text("entity"), Text("relation"), Text("target")});
    }
    return success();
  }
  ArrayAttr Where;
  if (auto D = dyn_cast<larql::DeleteOp>(Op))
    Where = D.getWhere();
  else if (auto U = dyn_cast<larql::UpdateOp>(Op))
    Where = U.getWhere();
  else
    return success();
  if (!mentions(Where, "entity") && !mentions(Where, "relation") &&
      isa<larql::DeleteOp>(Op))
    return success(); // DELETE by layer and feature
  std::optional<std::pair<std::string, std::string>> ER = pinnedFact(Where);
  if (!ER)
    return Op->emitError()
           << "an edit of a fact needs WHERE entity = '...' AND relation = "
              "'...'";
  FactRow R{0, ER->first, ER->second, ""};
  if (auto U = dyn_cast<larql::UpdateOp>(Op)) {
    auto T = dyn_cast_or_null<StringAttr>(U.getSet().get("target"));
    if (!T || U.getSet().size() != 1)
      return Op->emitError() << "UPDATE of a fact sets target (and only it)";
    R.Target = T.getValue().trim().str();
    if (R.Target.empty())
      return Op->emitError() << "the target is empty";
  }
  Rows.push_back(std::move(R));
  return success();
}

InFlightDiagnostic factError(Operation *Op, size_t Index) {
  if (Index)
    return larql::rowError(Op, Index);
  return Op->emitError();
}

ElementsAttr floatResource(MLIRContext *Ctx, StringRef Name,
                           ArrayRef<float> V) {
  auto Ty = RankedTensorType::get({int64_t(V.size())}, Float32Type::get(Ctx));
  Attribute A = DenseF32ResourceElementsAttr::get(
      Ty, Name, HeapAsmResourceBlob::allocateAndCopyInferAlign(V));
  return cast<ElementsAttr>(A);
}

void createInstallFeature(OpBuilder &B, Location Loc,
                          const edit::PlannedFeature &F, StringRef Prefix,
                          StringRef Record) {
  MLIRContext *Ctx = B.getContext();
  std::string Name = (Prefix + "L" + Twine(F.Layer) + "_" + Twine(F.Slot)).str();
  auto I = B.create<vx::InstallFeatureOp>(
      Loc, int64_t(F.Layer), int64_t(F.Slot),
      floatResource(Ctx, Name + "_gate", F.Gate),
      floatResource(Ctx, Name + "_up", F.Up),
      floatResource(Ctx, Name + "_down", F.Down));
  I->setAttr(BalanceAttr, StringAttr::get(Ctx, Record));
}

FailureOr<edit::Fact> resolveFact(const Tokenizer &Tok, uint64_t EmbeddingRows,
                                  llvm::ArrayRef<std::string> Templates,
                                  StringRef Entity, StringRef Relation,
                                  std::optional<StringRef> Target,
                                  std::string &Why) {
  auto InEmbedding = [&](llvm::ArrayRef<int32_t> Ids, const Twine &What) {
    if (llvm::Error E = Tok.checkInEmbedding(Ids, EmbeddingRows, What.str())) {
      Why = llvm::toString(std::move(E));
      return false;
    }
    return true;
  };
  edit::Fact F;
  F.Entity = Entity.str();
  F.Relation = Relation.str();
  for (const std::string &T : Templates) {
    std::string Prompt = edit::fillTemplate(T, Entity);
    F.Prompts.push_back(Tok.encode(Prompt));
    if (!InEmbedding(F.Prompts.back(), "the prompt '" + Prompt + "'"))
      return failure();
  }
  if (!Target)
    return F;
  std::string Canonical = edit::fillTemplate(Templates.front(), Entity);
  std::vector<int32_t> P = Tok.encode(Canonical);
  std::vector<int32_t> Whole = Tok.encode((Canonical + " " + *Target).str());
  if (Whole.size() > P.size() && std::equal(P.begin(), P.end(), Whole.begin()))
    F.Target.assign(Whole.begin() + P.size(), Whole.end());
  else
    F.Target = Tok.encode((" " + *Target).str(), /*AddSpecial=*/false);
  std::string Back = Tok.decode(F.Target);
  if (F.Target.empty() || StringRef(Back).trim() != Target->trim()) {
    Why = llvm::formatv("the tokenizer cannot encode the target '{0}' (its "
                        "pieces decode as '{1}')",
                        *Target, Back)
              .str();
    return failure();
  }
  if (!InEmbedding(F.Target, "the target '" + *Target + "'"))
    return failure();
  F.TargetText = Target->str();
  return F;
}

} // namespace vindex
