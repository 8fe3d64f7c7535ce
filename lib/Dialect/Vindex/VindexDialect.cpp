//===- VindexDialect.cpp - The vindex dialect -----------------------------===//
#include "vindex/Dialect/Vindex/VindexDialect.h"
#include "vindex/Dialect/Vindex/VindexOps.h"

using namespace mlir;
using namespace vindex::vx;

#include "vindex/Dialect/Vindex/VindexOpsDialect.cpp.inc"

void VindexDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "vindex/Dialect/Vindex/VindexOps.cpp.inc"
      >();
}
