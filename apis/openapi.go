// Package apis holds Parley's API contracts: the protos under parley/, the Go
// code generated from them under gen/go (messages, gRPC stubs, grpc-gateway
// handlers) and the merged OpenAPI document, which this package embeds so the
// gateway can serve it without reading files at run time.
//
// Regenerate everything with scripts/generate.sh from the repository root.
package apis

import (
	"bytes"
	_ "embed"
)

// openAPIDocument is only ever read: go:embed needs a package-level variable,
// and OpenAPIDocument hands out copies so that it stays unmodified.
//
//go:embed gen/openapi/parley.swagger.json
var openAPIDocument []byte

// OpenAPIDocument returns the OpenAPI v2 (Swagger) document of the REST API as
// JSON, generated from the protos with every service merged into one file.
// Each call returns a fresh copy, which the caller may modify.
func OpenAPIDocument() []byte {
	return bytes.Clone(openAPIDocument)
}
