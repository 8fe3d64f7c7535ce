// The verifier of larql.select: what the grammar cannot check.
// RUN: larql-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'larql.select' op unknown table 'edge' (expected edges, features, entities)}}
larql.select "edge"

// -----

// expected-error @+1 {{'larql.select' op unknown column 'laer' in table 'features'}}
larql.select "features" {columns = ["laer"]}

// -----

// expected-error @+1 {{'larql.select' op LIMIT must be positive, not 0}}
larql.select "features" {limit = 0 : i64}

// -----

// expected-error @+1 {{'larql.select' op 'layer' is the layer of NEAREST TO and needs 'nearest'}}
larql.select "features" {layer = 3 : i64}

// -----

// expected-error @+1 {{'larql.select' op layer must be non-negative, not -2}}
larql.select "features" {nearest = "France", layer = -2 : i64}

// -----

// expected-error @+1 {{'larql.select' op ORDER BY direction must be "asc" or "desc", not "up"}}
larql.select "edges" {order_by = [["score", "up"]]}

// -----

// expected-error @+1 {{'larql.select' op ORDER BY key must be [column, "asc"|"desc"], not "score"}}
larql.select "edges" {order_by = ["score"]}

// -----

// expected-error @+1 {{'larql.select' op unknown column 'top_output' in table 'edges'}}
larql.select "edges" {order_by = [["top_output", "asc"]]}

// -----

// expected-error @+1 {{'larql.select' op 'columns' must not be empty (leave it out for *)}}
larql.select "edges" {columns = []}
