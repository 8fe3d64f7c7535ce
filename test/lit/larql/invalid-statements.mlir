// The verifiers of larql.show, describe, infer, walk, compile and the patch ops.
// RUN: larql-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'larql.show' op cannot show 'tables' (expected relations, layers, entities, features, patches, model)}}
larql.show "tables"

// -----

// expected-error @+1 {{'larql.show' op SHOW FEATURES needs a 'layer'}}
larql.show "features"

// -----

// expected-error @+1 {{'larql.show' op only SHOW FEATURES takes a 'layer'}}
larql.show "model" {layer = 1 : i64}

// -----

// expected-error @+1 {{'larql.describe' op unknown band 'semantic' (expected syntax, knowledge, output)}}
larql.describe "France" {band = "semantic"}

// -----

// expected-error @+1 {{'larql.infer' op TOP must be positive, not 0}}
larql.infer "p" {top = 0 : i64}

// -----

// expected-error @+1 {{'larql.walk' op WITH K needs at least one feature}}
larql.walk "p" {top = 5 : i64, k = 0 : i64}

// -----

// expected-error @+1 {{'larql.infer' op requires attribute 'top'}}
larql.infer "p"

// -----

// expected-error @+1 {{'larql.compile' op unknown FORMAT 'onnx' (expected gguf, safetensors)}}
larql.compile "model" "m.onnx" {format = "onnx"}

// -----

// expected-error @+1 {{'larql.compile' op COMPILE INTO MODEL needs a FORMAT (gguf, safetensors)}}
larql.compile "model" "m.gguf"

// -----

// expected-error @+1 {{'larql.compile' op COMPILE INTO VINDEX takes no FORMAT}}
larql.compile "vindex" "v.vindex" {format = "gguf"}

// -----

// expected-error @+1 {{'larql.compile' op COMPILE INTO VINDEX takes no FORMAT or TYPE}}
larql.compile "vindex" "v.vindex" {type = "bf16"}

// -----

// expected-error @+1 {{'larql.compile' op TYPE is for FORMAT gguf, not safetensors}}
larql.compile "model" "m" {format = "safetensors", type = "bf16"}

// -----

// expected-error @+1 {{'larql.compile' op unknown GGUF TYPE 'q4_k' (expected auto, f32, f16, bf16, q8_0)}}
larql.compile "model" "m.gguf" {format = "gguf", type = "q4_k"}

// -----

// expected-error @+1 {{'larql.compile' op unknown target 'binary' (expected vindex, model)}}
larql.compile "binary" "x"

// -----

// expected-error @+1 {{'larql.begin_patch' op needs a patch name}}
larql.begin_patch ""

// -----

// expected-error @+1 {{'larql.apply_patch' op needs a path}}
larql.apply_patch ""
