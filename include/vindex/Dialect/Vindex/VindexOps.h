//===- VindexOps.h - vindex ops ---------------------------------*- C++ -*-===//
#ifndef VINDEX_DIALECT_VINDEX_VINDEXOPS_H
#define VINDEX_DIALECT_VINDEX_VINDEXOPS_H

#include "vindex/Dialect/Vindex/VindexDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"

#define GET_OP_CLASSES
#include "vindex/Dialect/Vindex/VindexOps.h.inc"

#endif // VINDEX_DIALECT_VINDEX_VINDEXOPS_H
