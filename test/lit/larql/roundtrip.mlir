// Hand-written larql IR with every op parses, verifies and prints back
// identically (parse -> print -> parse -> print).
// RUN: larql-opt %s > %t.1.mlir
// RUN: larql-opt %t.1.mlir > %t.2.mlir
// RUN: diff %t.1.mlir %t.2.mlir
// RUN: FileCheck %s < %t.1.mlir

// CHECK-LABEL: module {
module {
  // CHECK-NEXT: larql.select "edges" {columns = ["entity"], layer = 3 : i64, limit = 5 : i64, nearest = "France", order_by = {{\[\[}}"score", "desc"]], where = ["or", ["in", "relation", ["capital"]], ["like", "entity", "Fr%"]]}
  larql.select "edges" {columns = ["entity"], nearest = "France", layer = 3 : i64, where = ["or", ["in", "relation", ["capital"]], ["like", "entity", "Fr%"]], order_by = [["score", "desc"]], limit = 5 : i64}
  // CHECK-NEXT: larql.select "features" {where = [">", "down_norm", 2.500000e-01]}
  larql.select "features" {where = [">", "down_norm", 0.25]}
  // CHECK-NEXT: larql.describe "France" {band = "output", layer = 2 : i64}
  larql.describe "France" {layer = 2 : i64, band = "output"}
  // CHECK-NEXT: larql.show "features" {layer = 0 : i64}
  larql.show "features" {layer = 0 : i64}
  // CHECK-NEXT: larql.infer "p" {top = 5 : i64}
  larql.infer "p" {top = 5 : i64}
  // CHECK-NEXT: larql.walk "p" {k = 64 : i64, top = 1 : i64}
  larql.walk "p" {top = 1 : i64, k = 64 : i64}
  // CHECK-NEXT: larql.trace "p"
  larql.trace "p"
  // CHECK-NEXT: larql.insert {layer = 1 : i64, mode = "slot", rows = [{entity = "a", relation = "r", target = "t"}]}
  larql.insert {rows = [{target = "t", relation = "r", entity = "a"}], layer = 1 : i64, mode = "slot"}
  // CHECK-NEXT: larql.delete {where = ["=", "entity", "a"]}
  larql.delete {where = ["=", "entity", "a"]}
  // CHECK-NEXT: larql.update {set = {target = "u"}, where = ["!=", "layer", 3]}
  larql.update {set = {target = "u"}, where = ["!=", "layer", 3]}
  // CHECK-NEXT: larql.create_relation "capital" {prompt_template = "The capital of {entity} is"}
  larql.create_relation "capital" {prompt_template = "The capital of {entity} is"}
  // CHECK-NEXT: larql.compile "model" "m.safetensors" {format = "safetensors"}
  larql.compile "model" "m.safetensors" {format = "safetensors"}
  // CHECK-NEXT: larql.begin_patch "p"
  larql.begin_patch "p"
  // CHECK-NEXT: larql.save_patch{{$}}
  larql.save_patch
  // CHECK-NEXT: larql.apply_patch "p.lqlp"
  larql.apply_patch "p.lqlp"
}
// CHECK-NEXT: }
