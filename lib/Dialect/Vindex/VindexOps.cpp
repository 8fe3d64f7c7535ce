//===- VindexOps.cpp - vindex op verifiers --------------------------------===//
//
// Non-negative layers, features and slots; vectors of floats of one length;
// a row range that matches its values.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Vindex/VindexOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace vindex::vx;

#define GET_OP_CLASSES
#include "vindex/Dialect/Vindex/VindexOps.cpp.inc"

namespace {

LogicalResult checkNonNegative(Operation *Op, StringRef Name, int64_t V) {
  if (V < 0)
    return Op->emitOpError() << Name << " must be non-negative, not " << V;
  return success();
}

/// A 1-D elements attribute of floats; its length in LEN.
LogicalResult checkVector(Operation *Op, StringRef Name, ElementsAttr A,
                          int64_t &Len) {
  auto T = dyn_cast<ShapedType>(A.getType());
  if (!T || !T.hasRank() || T.getRank() != 1 || !T.hasStaticShape())
    return Op->emitOpError() << Name << " must be a 1-D vector, not "
                             << A.getType();
  if (!isa<FloatType>(T.getElementType()))
    return Op->emitOpError() << Name << " must hold floats, not "
                             << T.getElementType();
  Len = T.getDimSize(0);
  if (Len == 0)
    return Op->emitOpError() << Name << " must not be empty";
  return success();
}

} // namespace

LogicalResult RemoveFeatureOp::verify() {
  return failure(failed(checkNonNegative(*this, "layer", getLayer())) ||
                 failed(checkNonNegative(*this, "feature", getFeature())));
}

LogicalResult InstallFeatureOp::verify() {
  if (failed(checkNonNegative(*this, "layer", getLayer())) ||
      failed(checkNonNegative(*this, "slot", getSlot())))
    return failure();
  int64_t G, U, D;
  if (failed(checkVector(*this, "gate", getGate(), G)) ||
      failed(checkVector(*this, "up", getUp(), U)) ||
      failed(checkVector(*this, "down", getDown(), D)))
    return failure();
  if (G != U || G != D)
    return emitOpError() << "gate, up and down must have one length, not "
                         << G << ", " << U << " and " << D;
  return success();
}

LogicalResult UntieOutputOp::verify() {
  if (!getTensor().ends_with("lm_head.weight"))
    return emitOpError() << "creates the output matrix, lm_head.weight, not '"
                         << getTensor() << "'";
  return success();
}

LogicalResult UpdateWeightsOp::verify() {
  if (getTensor().empty())
    return emitOpError("tensor name must not be empty");
  if (failed(checkNonNegative(*this, "row_begin", getRowBegin())))
    return failure();
  if (getRowEnd() <= getRowBegin())
    return emitOpError() << "row range [" << getRowBegin() << ", "
                         << getRowEnd() << ") is empty";
  auto T = dyn_cast<ShapedType>(getValues().getType());
  if (!T || !T.hasRank() || T.getRank() != 2 || !T.hasStaticShape())
    return emitOpError() << "values must be a 2-D elements attribute, not "
                         << getValues().getType();
  if (!isa<FloatType>(T.getElementType()))
    return emitOpError() << "values must hold floats, not "
                         << T.getElementType();
  if (T.getDimSize(0) != getRowEnd() - getRowBegin())
    return emitOpError() << "values has " << T.getDimSize(0)
                         << " rows but the range [" << getRowBegin() << ", "
                         << getRowEnd() << ") has "
                         << getRowEnd() - getRowBegin();
  return success();
}

LogicalResult SetLabelOp::verify() {
  if (failed(checkNonNegative(*this, "layer", getLayer())) ||
      failed(checkNonNegative(*this, "feature", getFeature())))
    return failure();
  if (getKey().empty())
    return emitOpError("label key must not be empty");
  return success();
}
