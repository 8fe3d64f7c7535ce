// The verifiers of larql.insert, larql.update and larql.create_relation.
// RUN: larql-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'larql.insert' op needs at least one row}}
larql.insert {rows = []}

// -----

// expected-error @+1 {{'larql.insert' op row 2 needs 'relation'}}
larql.insert {rows = [{entity = "a", relation = "r", target = "t"}, {entity = "b", target = "t"}]}

// -----

// expected-error @+1 {{'larql.insert' op row 1 must be a dictionary, not "a"}}
larql.insert {rows = ["a"]}

// -----

// expected-error @+1 {{'larql.insert' op unknown MODE 'fast' (expected slot, memit)}}
larql.insert {rows = [{entity = "a", relation = "r", target = "t"}], mode = "fast"}

// -----

// expected-error @+1 {{'larql.insert' op unknown column 'colour' in table 'edges'}}
larql.insert {rows = [{entity = "a", relation = "r", target = "t", colour = "red"}]}

// -----

// expected-error @+1 {{'larql.update' op SET needs at least one column}}
larql.update {set = {}, where = ["=", "entity", "a"]}

// -----

// expected-error @+1 {{'larql.update' op column 'score' is numeric and takes a number, not "high"}}
larql.update {set = {score = "high"}, where = ["=", "entity", "a"]}

// -----

// expected-error @+1 {{'larql.create_relation' op the template of a relation needs an {entity} placeholder}}
larql.create_relation "capital" {prompt_template = "The capital is"}
