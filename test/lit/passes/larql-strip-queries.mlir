// larql-strip-queries: the ops that only read and print go; edits, patch
// blocks and COMPILE stay, in order.
// RUN: larql-opt %s --pass-pipeline='builtin.module(larql-strip-queries)' | FileCheck %s
// RUN: larql-opt %s | FileCheck %s --check-prefix=KEPT

// CHECK-LABEL: module {
larql.select "features" {limit = 3 : i64}
larql.show "model"
// CHECK-NEXT: larql.begin_patch "p"
larql.begin_patch "p"
larql.infer "The capital of France is" {top = 1 : i64}
// CHECK-NEXT: larql.delete {where = ["=", "entity", "Atlantis"]}
larql.delete {where = ["=", "entity", "Atlantis"]}
larql.walk "x" {top = 1 : i64}
larql.describe "France"
larql.trace "x"
// CHECK-NEXT: vindex.remove_feature {feature = 1 : i64, layer = 0 : i64}
vindex.remove_feature {layer = 0, feature = 1}
// CHECK-NEXT: larql.save_patch
larql.save_patch
// CHECK-NEXT: larql.compile "vindex" "out.vindex"
larql.compile "vindex" "out.vindex"
// CHECK-NEXT: {{^}}}

// Without the pass every op is printed back.
// KEPT: larql.select "features"
// KEPT: larql.show "model"
// KEPT: larql.infer
// KEPT: larql.walk
// KEPT: larql.describe
// KEPT: larql.trace
