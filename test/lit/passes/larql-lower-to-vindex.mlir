// larql-lower-to-vindex: a DELETE pinning one layer and one feature (either
// order) becomes vindex.remove_feature; everything else stays.
// RUN: larql-opt %s --pass-pipeline='builtin.module(larql-lower-to-vindex)' | FileCheck %s
// The pinned DELETE is gone (an op the CHECK-NEXT chain above could miss if
// the printer wrapped it):
// RUN: larql-opt %s --pass-pipeline='builtin.module(larql-lower-to-vindex)' | FileCheck %s --check-prefix=GONE
// RUN: larql-opt %s --pass-pipeline='builtin.module(larql-lower-to-vindex)' --mlir-print-ir-after-all 2>&1 >/dev/null | FileCheck %s --check-prefix=AFTER

// CHECK-LABEL: module {
// CHECK-NEXT: vindex.remove_feature {feature = 17 : i64, layer = 3 : i64}
larql.delete {where = ["and", ["=", "layer", 3], ["=", "feature", 17]]}
// CHECK-NEXT: vindex.remove_feature {feature = 5 : i64, layer = 0 : i64}
larql.delete {where = ["and", ["=", "feature", 5], ["=", "layer", 0]]}
// Only a layer: stays.
// CHECK-NEXT: larql.delete {where = ["=", "layer", 3]}
larql.delete {where = ["=", "layer", 3]}
// A range, not a pin: stays.
// CHECK-NEXT: larql.delete {where = ["and", ["=", "layer", 3], [">", "feature", 17]]}
larql.delete {where = ["and", ["=", "layer", 3], [">", "feature", 17]]}
// OR: stays.
// CHECK-NEXT: larql.delete {where = ["or", ["=", "layer", 3], ["=", "feature", 17]]}
larql.delete {where = ["or", ["=", "layer", 3], ["=", "feature", 17]]}
// Keys, not a feature: stays.
// CHECK-NEXT: larql.delete {where = ["=", "entity", "Atlantis"]}
larql.delete {where = ["=", "entity", "Atlantis"]}
// INSERT and UPDATE are later passes' work.
// CHECK-NEXT: larql.insert
larql.insert {rows = [{entity = "a", relation = "r", target = "t"}]}
// CHECK-NEXT: larql.update
larql.update {set = {target = "u"}, where = ["=", "entity", "a"]}
// CHECK-NEXT: larql.select "features"
larql.select "features" {where = ["and", ["=", "layer", 3], ["=", "feature", 17]]}
// CHECK-NEXT: {{^}}}
// GONE-NOT: larql.delete {where = ["and", ["=", "layer", 3], ["=", "feature", 17]]}
// GONE-NOT: larql.delete {where = ["and", ["=", "feature", 5], ["=", "layer", 0]]}

// AFTER: IR Dump After LarqlLowerToVindex (larql-lower-to-vindex)
// AFTER: vindex.remove_feature {feature = 17 : i64, layer = 3 : i64}
