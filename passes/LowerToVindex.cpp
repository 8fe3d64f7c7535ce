//===- LowerToVindex.cpp - larql-lower-to-vindex --------------------------===//
//
// larql.delete {where = ["and", ["=", "layer", L], ["=", "feature", F]]}
// (the two terms in either order) -> vindex.remove_feature {layer = L,
// feature = F}. Nothing else changes.
//
//===----------------------------------------------------------------------===//
#include "vindex/Passes/Passes.h"
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"

#include "mlir/IR/Builders.h"

#include <optional>

namespace vindex {
#define GEN_PASS_DEF_LARQLLOWERTOVINDEX
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;

namespace {

/// ["=", COLUMN, integer] -> the integer.
std::optional<int64_t> pinned(Attribute A, StringRef Column) {
  auto E = dyn_cast<ArrayAttr>(A);
  if (!E || E.size() != 3)
    return std::nullopt;
  auto Op = dyn_cast<StringAttr>(E[0]);
  auto Col = dyn_cast<StringAttr>(E[1]);
  auto Val = dyn_cast<IntegerAttr>(E[2]);
  if (!Op || Op.getValue() != "=" || !Col || Col.getValue() != Column || !Val)
    return std::nullopt;
  return Val.getInt();
}

/// The (layer, feature) a WHERE pins exactly, if it does.
std::optional<std::pair<int64_t, int64_t>> layerAndFeature(ArrayAttr Where) {
  if (Where.size() != 3)
    return std::nullopt;
  auto Kind = dyn_cast<StringAttr>(Where[0]);
  if (!Kind || Kind.getValue() != "and")
    return std::nullopt;
  for (auto [A, B] : {std::pair(Where[1], Where[2]),
                      std::pair(Where[2], Where[1])}) {
    std::optional<int64_t> L = pinned(A, "layer"), F = pinned(B, "feature");
    if (L && F && *L >= 0 && *F >= 0)
      return std::pair(*L, *F);
  }
  return std::nullopt;
}

struct LowerToVindex
    : vindex::impl::LarqlLowerToVindexBase<LowerToVindex> {
  void runOnOperation() override {
    SmallVector<vindex::larql::DeleteOp> Deletes;
    getOperation().walk(
        [&](vindex::larql::DeleteOp D) { Deletes.push_back(D); });
    for (vindex::larql::DeleteOp D : Deletes) {
      std::optional<std::pair<int64_t, int64_t>> LF =
          layerAndFeature(D.getWhere());
      if (!LF)
        continue;
      OpBuilder B(D);
      B.create<vindex::vx::RemoveFeatureOp>(D.getLoc(), LF->first,
                                            LF->second);
      D.erase();
    }
  }
};

} // namespace
