//===- LarqlOps.h - larql ops -----------------------------------*- C++ -*-===//
#ifndef VINDEX_DIALECT_LARQL_LARQLOPS_H
#define VINDEX_DIALECT_LARQL_LARQLOPS_H

#include "vindex/Dialect/Larql/LarqlDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"

#define GET_OP_CLASSES
#include "vindex/Dialect/Larql/LarqlOps.h.inc"

#endif
