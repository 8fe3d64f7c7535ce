//===- LarqlDialect.cpp - The larql dialect -------------------------------===//
#include "vindex/Dialect/Larql/LarqlDialect.h"
#include "vindex/Dialect/Larql/LarqlOps.h"

using namespace mlir;
using namespace vindex::larql;

#include "vindex/Dialect/Larql/LarqlOpsDialect.cpp.inc"

void LarqlDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "vindex/Dialect/Larql/LarqlOps.cpp.inc"
      >();
}
