//===- Applier.cpp - vindex ops into a patch ------------------------------===//
#include "vindex/Exec/Applier.h"

#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Store/Patch.h"
#include "vindex/Support/Error.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Location.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

using namespace llvm;
using namespace mlir;

namespace vindex {

namespace {

/// The floats of an elements attribute (dense, or a dense f32/f64 resource).
Expected<std::vector<float>> floats(ElementsAttr A, StringRef Name) {
  std::vector<float> Out;
  if (auto D = dyn_cast<DenseElementsAttr>(A)) {
    if (!isa<FloatType>(D.getElementType()))
      return makeError("{0} must hold floats", Name);
    for (APFloat F : D.getValues<APFloat>()) {
      bool Lost;
      F.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &Lost);
      Out.push_back(F.convertToFloat());
    }
    return Out;
  }
  if (auto R = dyn_cast<DenseF32ResourceElementsAttr>(A)) {
    if (std::optional<ArrayRef<float>> V = R.tryGetAsArrayRef())
      return std::vector<float>(V->begin(), V->end());
    return makeError("{0}: the resource has no data", Name);
  }
  if (auto R = dyn_cast<DenseF64ResourceElementsAttr>(A)) {
    if (std::optional<ArrayRef<double>> V = R.tryGetAsArrayRef())
      return std::vector<float>(V->begin(), V->end());
    return makeError("{0}: the resource has no data", Name);
  }
  return makeError("{0}: unsupported elements attribute (dense, or a dense "
                   "f32/f64 resource)",
                   Name);
}

/// A layer attribute as an index (the verifier made it non-negative).
Expected<unsigned> layer(int64_t L) {
  if (L < 0 || L > int64_t(UINT32_MAX))
    return makeError("layer {0} is out of range", L);
  return unsigned(L);
}

Error removeFeature(vx::RemoveFeatureOp Op, PatchBuilder &P) {
  Expected<unsigned> L = layer(Op.getLayer());
  if (!L)
    return L.takeError();
  return P.removeFeature(*L, uint64_t(Op.getFeature()));
}

Error installFeature(vx::InstallFeatureOp Op, PatchBuilder &P) {
  Expected<unsigned> L = layer(Op.getLayer());
  if (!L)
    return L.takeError();
  Expected<std::vector<float>> G = floats(Op.getGate(), "gate");
  if (!G)
    return G.takeError();
  Expected<std::vector<float>> U = floats(Op.getUp(), "up");
  if (!U)
    return U.takeError();
  Expected<std::vector<float>> D = floats(Op.getDown(), "down");
  if (!D)
    return D.takeError();
  return P.setFeature(*L, uint64_t(Op.getSlot()), *G, *U, *D);
}

Error updateWeights(vx::UpdateWeightsOp Op, PatchBuilder &P) {
  StringRef Tensor = Op.getTensor();
  auto T = cast<ShapedType>(Op.getValues().getType());
  uint64_t Cols = uint64_t(T.getDimSize(1));
  if (!P.rows(Tensor))
    return makeError("the V-index has no tensor '{0}'", Tensor);
  if (Cols != P.rowElements(Tensor))
    return makeError("values has {0} columns but a row of tensor '{1}' has "
                     "{2} elements",
                     Cols, Tensor, P.rowElements(Tensor));
  Expected<std::vector<float>> V = floats(Op.getValues(), "values");
  if (!V)
    return V.takeError();
  return P.setRows(Tensor, uint64_t(Op.getRowBegin()), *V);
}

Error untieOutput(vx::UntieOutputOp Op, PatchBuilder &P) {
  Expected<std::string> Made = P.untieOutput();
  if (!Made)
    return Made.takeError();
  if (*Made != Op.getTensor())
    return makeError("the output matrix is '{0}' on this model, not '{1}'",
                     *Made, Op.getTensor());
  return Error::success();
}

/// "file:line:col" for a location from a script, else the location printed.
std::string locationText(Location Loc) {
  if (auto F = Loc->findInstanceOf<FileLineColLoc>())
    return formatv("{0}:{1}:{2}", F.getFilename().getValue(), F.getLine(),
                   F.getColumn())
        .str();
  std::string S;
  raw_string_ostream OS(S);
  Loc.print(OS);
  return S;
}

} // namespace

Error applyVindexOp(Operation *Op, PatchBuilder &P) {
  Error E =
      llvm::TypeSwitch<Operation *, Error>(Op)
          .Case([&](vx::RemoveFeatureOp O) { return removeFeature(O, P); })
          .Case([&](vx::InstallFeatureOp O) { return installFeature(O, P); })
          .Case([&](vx::UpdateWeightsOp O) { return updateWeights(O, P); })
          .Case([&](vx::UntieOutputOp O) { return untieOutput(O, P); })
          .Case([&](vx::SetLabelOp) {
            return makeError("vindex.set_label does not run: labels are "
                             "written by larql-probe (labels.vfb), not by "
                             "patches");
          })
          .Default([&](Operation *) {
            return makeError("is not an op of the vindex dialect, which is "
                             "what applies to a V-index");
          });
  if (!E)
    return E;
  return makeError("'{0}' op {1}", Op->getName().getStringRef(),
                   toString(std::move(E)));
}

Error applyVindexOps(ArrayRef<Operation *> Ops, PatchBuilder &P) {
  for (Operation *Op : Ops)
    if (Error E = applyVindexOp(Op, P))
      return makeError("{0}: {1}", locationText(Op->getLoc()),
                       toString(std::move(E)));
  return Error::success();
}

} // namespace vindex
