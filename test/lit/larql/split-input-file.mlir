// -split-input-file processes each chunk on its own and prints them back
// separated by the marker.
// RUN: larql-opt %s -split-input-file | FileCheck %s

// CHECK: larql.show "model"
// CHECK: // -----
// CHECK: larql.show "layers"
larql.show "model"
// -----
larql.show "layers"
