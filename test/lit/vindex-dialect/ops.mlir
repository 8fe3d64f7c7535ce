// Every vindex op parses, verifies and prints back identically
// (parse -> print -> parse -> print).
// RUN: larql-opt %s > %t.1.mlir
// RUN: larql-opt %t.1.mlir > %t.2.mlir
// RUN: diff %t.1.mlir %t.2.mlir
// RUN: FileCheck %s < %t.1.mlir

// CHECK-LABEL: module {
// CHECK-NEXT: vindex.remove_feature {feature = 17 : i64, layer = 3 : i64}
vindex.remove_feature {layer = 3, feature = 17}
// CHECK-NEXT: vindex.install_feature {down = dense<[5.000000e-01, 0.000000e+00, 1.000000e+00]> : tensor<3xf32>, gate = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>, layer = 2 : i64, slot = 40 : i64, up = dense<1.000000e+00> : tensor<3xf32>}
vindex.install_feature {layer = 2, slot = 40, gate = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>, up = dense<1.0> : tensor<3xf32>, down = dense<[0.5, 0.0, 1.0]> : tensor<3xf32>}
// CHECK-NEXT: vindex.install_feature {down = dense_resource<d> : tensor<2xf16>, gate = dense_resource<g> : tensor<2xf16>, layer = 0 : i64, slot = 0 : i64, up = dense_resource<u> : tensor<2xf16>}
vindex.install_feature {layer = 0, slot = 0, gate = dense_resource<g> : tensor<2xf16>, up = dense_resource<u> : tensor<2xf16>, down = dense_resource<d> : tensor<2xf16>}
// CHECK-NEXT: vindex.update_weights "layers.1.ffn_gate" {row_begin = 4 : i64, row_end = 6 : i64, values = dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>}
vindex.update_weights "layers.1.ffn_gate" {row_begin = 4, row_end = 6, values = dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>}
// CHECK-NEXT: vindex.untie_output "lm_head.weight"
vindex.untie_output "lm_head.weight"
// CHECK-NEXT: vindex.set_label {feature = 9 : i64, key = "relation", layer = 1 : i64, value = "capital"}
vindex.set_label {layer = 1, feature = 9, key = "relation", value = "capital"}
// CHECK-NEXT: }

{-#
  dialect_resources: {
    builtin: {
      g: "0x020000000000003C",
      u: "0x02000000003C0000",
      d: "0x02000000003C003C"
    }
  }
#-}
