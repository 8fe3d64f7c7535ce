//===- VindexDialect.h - The vindex dialect ---------------------*- C++ -*-===//
#ifndef VINDEX_DIALECT_VINDEX_VINDEXDIALECT_H
#define VINDEX_DIALECT_VINDEX_VINDEXDIALECT_H

#include "mlir/IR/Dialect.h"

namespace vindex {
class VindexSession; // vindex/Model/VindexSession.h
} // namespace vindex

#include "vindex/Dialect/Vindex/VindexOpsDialect.h.inc"

#endif // VINDEX_DIALECT_VINDEX_VINDEXDIALECT_H
