//===- LarqlDialect.h - The larql dialect -----------------------*- C++ -*-===//
#ifndef VINDEX_DIALECT_LARQL_LARQLDIALECT_H
#define VINDEX_DIALECT_LARQL_LARQLDIALECT_H

#include "mlir/IR/Dialect.h"

#include "vindex/Dialect/Larql/LarqlOpsDialect.h.inc"

#endif
