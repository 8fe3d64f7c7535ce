// The verifiers of the vindex ops.
// RUN: larql-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'vindex.remove_feature' op layer must be non-negative, not -1}}
vindex.remove_feature {layer = -1, feature = 0}

// -----

// expected-error @+1 {{'vindex.remove_feature' op feature must be non-negative, not -3}}
vindex.remove_feature {layer = 0, feature = -3}

// -----

// expected-error @+1 {{'vindex.install_feature' op slot must be non-negative, not -2}}
vindex.install_feature {layer = 0, slot = -2, gate = dense<1.0> : tensor<2xf32>, up = dense<1.0> : tensor<2xf32>, down = dense<1.0> : tensor<2xf32>}

// -----

// expected-error @+1 {{'vindex.install_feature' op gate, up and down must have one length, not 2, 3 and 2}}
vindex.install_feature {layer = 0, slot = 1, gate = dense<1.0> : tensor<2xf32>, up = dense<1.0> : tensor<3xf32>, down = dense<1.0> : tensor<2xf32>}

// -----

// expected-error @+1 {{'vindex.install_feature' op down must be a 1-D vector, not 'tensor<2x2xf32>'}}
vindex.install_feature {layer = 0, slot = 1, gate = dense<1.0> : tensor<2xf32>, up = dense<1.0> : tensor<2xf32>, down = dense<1.0> : tensor<2x2xf32>}

// -----

// expected-error @+1 {{'vindex.install_feature' op gate must hold floats, not 'i32'}}
vindex.install_feature {layer = 0, slot = 1, gate = dense<1> : tensor<2xi32>, up = dense<1.0> : tensor<2xf32>, down = dense<1.0> : tensor<2xf32>}

// -----

// expected-error @+1 {{'vindex.update_weights' op row range [3, 3) is empty}}
vindex.update_weights "t" {row_begin = 3, row_end = 3, values = dense<1.0> : tensor<1x2xf32>}

// -----

// expected-error @+1 {{'vindex.update_weights' op values has 1 rows but the range [0, 2) has 2}}
vindex.update_weights "t" {row_begin = 0, row_end = 2, values = dense<1.0> : tensor<1x2xf32>}

// -----

// expected-error @+1 {{'vindex.update_weights' op tensor name must not be empty}}
vindex.update_weights "" {row_begin = 0, row_end = 1, values = dense<1.0> : tensor<1x2xf32>}

// -----

// expected-error @+1 {{'vindex.set_label' op layer must be non-negative, not -1}}
vindex.set_label {layer = -1, feature = 0, key = "k", value = "v"}

// -----

// expected-error @+1 {{'vindex.set_label' op label key must not be empty}}
vindex.set_label {layer = 0, feature = 0, key = "", value = "v"}

// -----

// expected-error @+1 {{'vindex.untie_output' op creates the output matrix, lm_head.weight, not 'model.embed_tokens.weight'}}
vindex.untie_output "model.embed_tokens.weight"
