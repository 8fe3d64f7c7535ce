// WHERE expressions: shape, operators, columns and literal types.
// RUN: larql-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'larql.delete' op malformed WHERE expression ["=", "entity"]: expected [op, lhs, rhs]}}
larql.delete {where = ["=", "entity"]}

// -----

// expected-error @+1 {{'larql.delete' op unknown WHERE operator '=='}}
larql.delete {where = ["==", "entity", "a"]}

// -----

// expected-error @+1 {{'larql.delete' op unknown column 'gate_norm' in table 'edges'}}
larql.delete {where = ["and", ["=", "entity", "a"], [">", "gate_norm", 1.0]]}

// -----

// expected-error @+1 {{'larql.select' op column 'layer' is numeric and takes a number, not "3"}}
larql.select "features" {where = ["=", "layer", "3"]}

// -----

// expected-error @+1 {{'larql.update' op column 'entity' is text and takes a string, not 3 : i64}}
larql.update {set = {target = "t"}, where = ["or", ["=", "entity", "a"], ["=", "entity", 3]]}

// -----

// expected-error @+1 {{'larql.select' op IN needs a non-empty list of values}}
larql.select "features" {where = ["in", "layer", []]}

// -----

// expected-error @+1 {{'larql.select' op LIKE needs a text column; 'layer' is numeric}}
larql.select "features" {where = ["like", "layer", "1%"]}

// -----

// expected-error @+1 {{'larql.select' op WHERE compares a column name, not 3 : i64}}
larql.select "features" {where = ["=", 3, 3]}
